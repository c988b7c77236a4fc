"""secretcache.credentials.login with a client of our own: the database factories' guarantees, over TCP.

A tiny line-based server (a thread on 127.0.0.1, an ephemeral port) accepts one password at a time;
the test rotates it as Secrets Manager's single-user rotation does (createSecret puts AWSPENDING,
setSecret changes the server, finishSecret moves AWSCURRENT), while eight threads log in and out
continuously through ``login`` with a cache whose ttl outlasts the test. Nothing here is timed: traffic
is paced by counting completed sessions.
"""

from __future__ import annotations

import json
import socket
import socketserver
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from secretcache import SecretCache
from secretcache.config import CacheConfig
from secretcache.credentials import auth_stats, login
from secretcache.model import SecretValue
from secretcache.testing import InMemoryBackend
from tests.fixtures.fakes import wait_until
from tests.fixtures.fix_canary import CANARY, canary_value

SECRET = "svc/tcp"
GET = "GetSecretValue"
WORKERS = 8
ROTATIONS = 10
SESSIONS_PER_STEP = 2 * WORKERS


class LoginRefused(Exception):
    """The client's own error for a refused password."""


def is_refused(error: BaseException) -> bool:
    return isinstance(error, LoginRefused)


class PasswordServer(socketserver.ThreadingTCPServer):
    """``AUTH <user> <password>`` -> ``OK`` or ``DENIED``; then ``PING`` -> ``PONG``."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # eight eager clients: a full backlog drops SYNs, retried a second later

    def __init__(self, password: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.password = password
        self.accepted = self.refused = 0

    def set_password(self, password: str) -> None:
        with self.lock:
            self.password = password

    def check(self, password: str) -> bool:
        with self.lock:
            ok = password == self.password
            if ok:
                self.accepted += 1
            else:
                self.refused += 1
            return ok


class _Handler(socketserver.StreamRequestHandler):
    server: PasswordServer

    def handle(self) -> None:
        words = self.rfile.readline().decode().split(" ", 2)
        if len(words) != 3 or words[0] != "AUTH" or not self.server.check(words[2].rstrip("\n")):
            self.wfile.write(b"DENIED\n")
            return
        self.wfile.write(b"OK\n")
        if self.rfile.readline() == b"PING\n":
            self.wfile.write(b"PONG\n")


def session(port: int, secret: SecretValue) -> socket.socket:
    """The client: log in with the secret's ``username`` and ``password``; LoginRefused when denied."""
    creds = json.loads(secret.secret_string or "{}")
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        sock.sendall(f"AUTH {creds['username']} {creds['password']}\n".encode())
        reply = sock.makefile("rb").readline()
        if reply != b"OK\n":
            raise LoginRefused(f"server said {reply.decode().strip() or 'nothing'}")
    except BaseException:
        sock.close()
        raise
    return sock


def ping(sock: socket.socket) -> None:
    with sock, sock.makefile("rwb") as stream:
        stream.write(b"PING\n")
        stream.flush()
        assert stream.readline() == b"PONG\n"


def doc(password: str) -> str:
    return json.dumps({"username": "app", "password": password})


@pytest.fixture
def server() -> Iterator[PasswordServer]:
    srv = PasswordServer(canary_value("pw0"))
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(10)


@pytest.fixture
def world(server: PasswordServer) -> Iterator[tuple[InMemoryBackend, SecretCache]]:
    backend = InMemoryBackend()
    backend.put_secret(SECRET, doc(server.password))
    with SecretCache(backend, config=CacheConfig(ttl=3600)) as cache:
        yield backend, cache


class Load:
    """Eight threads opening a session, pinging and closing it, until told to stop.

    The test paces the rotation by behaviour: :meth:`settle` returns once every worker has completed a
    session begun after the call, so no login straddles two rotation steps (a real rotation's steps are
    seconds apart, its rotations hours apart; a login that outlives two steps is outside the policy's promise).
    """

    def __init__(self, port: int, cache: SecretCache) -> None:
        self.port, self.cache = port, cache
        self.lock = threading.Lock()
        self.done = 0
        self.epoch = 0
        self.settled = [0] * WORKERS  # per worker: the epoch its last completed session began in
        self.failures: list[BaseException] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.work, args=(i,), daemon=True) for i in range(WORKERS)]

    def work(self, worker: int) -> None:
        while not self.stop.is_set():
            epoch = self.epoch
            try:
                ping(login(SECRET, lambda s: session(self.port, s), is_auth_failure=is_refused, cache=self.cache))
            except BaseException as e:  # counted and asserted by the test
                with self.lock:
                    self.failures.append(e)
                return
            with self.lock:
                self.done += 1
                self.settled[worker] = epoch

    def settle(self) -> None:
        with self.lock:
            self.epoch += 1
            epoch, target = self.epoch, self.done + SESSIONS_PER_STEP
        wait_until(lambda: (self.done >= target and min(self.settled) >= epoch) or bool(self.failures),
                   timeout=60, what="every worker's session after a rotation step")

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)


def test_ten_single_user_rotations_under_load_fail_no_login(
    server: PasswordServer, world: tuple[InMemoryBackend, SecretCache]
) -> None:
    backend, cache = world
    port = server.server_address[1]
    calls_per_rotation = []
    with Load(port, cache) as load:
        load.settle()
        for n in range(1, ROTATIONS + 1):
            before = backend.count()
            password = canary_value(f"pw{n}")
            pending = backend.put_secret(SECRET, doc(password), stages=("AWSPENDING",))  # createSecret
            server.set_password(password)  # setSecret: AWSCURRENT's password is dead from now on
            load.settle()
            current = next(v for v, s in backend.version_stages(SECRET).items() if "AWSCURRENT" in s)
            backend.update_version_stage(SECRET, "AWSCURRENT", move_to_version_id=pending,
                                         remove_from_version_id=current)  # finishSecret
            load.settle()
            calls_per_rotation.append(backend.count() - before)

    assert load.failures == [], f"{len(load.failures)} failed logins, first: {load.failures[0]!r}"
    assert max(calls_per_rotation) <= 3, calls_per_rotation
    stats = auth_stats(SECRET, cache=cache)
    assert stats.gave_up == 0
    assert stats.auth_failures <= ROTATIONS * (WORKERS + 1), stats
    assert server.refused == stats.auth_failures


def test_a_wrong_password_fails_with_the_clients_error_after_at_most_three_logins(
    server: PasswordServer, world: tuple[InMemoryBackend, SecretCache]
) -> None:
    backend, cache = world
    server.set_password("not-in-any-version")
    backend.put_secret(SECRET, doc(canary_value("pending")), stages=("AWSPENDING",))
    port = server.server_address[1]

    with pytest.raises(LoginRefused) as info:
        login(SECRET, lambda s: session(port, s), is_auth_failure=is_refused, cache=cache)

    assert 1 <= server.refused <= 3
    assert server.accepted == 0
    notes = " ".join(getattr(info.value, "__notes__", []))
    assert repr(SECRET) in notes
    assert CANARY not in notes + str(info.value)
    assert auth_stats(SECRET, cache=cache).gave_up == 1


def test_a_refused_connection_is_not_an_auth_failure_and_refreshes_nothing(
    world: tuple[InMemoryBackend, SecretCache],
) -> None:
    backend, cache = world
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    attempts: list[Any] = []

    def connect(secret: SecretValue) -> socket.socket:
        attempts.append(secret)
        return session(port, secret)

    with pytest.raises(ConnectionRefusedError):
        login(SECRET, connect, is_auth_failure=is_refused, cache=cache)

    assert len(attempts) == 1
    assert backend.count() == 1  # the cold read; no forced refresh, no AWSPENDING read
    stats = auth_stats(SECRET, cache=cache)
    assert (stats.auth_failures, stats.refreshes, stats.pending_fetches) == (0, 0, 0)
