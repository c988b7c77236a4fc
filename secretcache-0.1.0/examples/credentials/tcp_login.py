"""Your own protocol: a client that logs in over TCP with a password from Secrets Manager, through rotations.

The client below raises its own ``LoginRefused`` when the server denies the password; that is the one
thing ``login`` must be told (``is_auth_failure``). It then gives this client what the database
factories have: a refused password refreshes the secret once (shared by every thread failing at that
moment), tries AWSPENDING during a single-user rotation (and keeps using it until AWSCURRENT moves), and
gives up with the client's own error after at most three attempts. A network error is not a refusal:
it is raised at once and nothing is refreshed.

Run it: ``python examples/credentials/tcp_login.py``. The demo starts a line-based server on 127.0.0.1
(``AUTH <user> <password>`` -> ``OK`` / ``DENIED``, then ``PING`` -> ``PONG``), keeps the secret in an
in-memory store, and runs four threads through three single-user rotations.
"""

from __future__ import annotations

import json
import socket
import socketserver
import sys
import threading

from secretcache import SecretCache
from secretcache.config import CacheConfig
from secretcache.credentials import auth_stats, login
from secretcache.model import SecretValue
from secretcache.testing import InMemoryBackend

SECRET = "prod/ledger"  # JSON: {"host": ..., "port": ..., "username": ..., "password": ...}


class LoginRefused(Exception):
    """The server said DENIED: the password is wrong (or was rotated)."""


class Session:
    """One logged-in connection of the custom protocol."""

    def __init__(self, secret: SecretValue) -> None:
        conf = json.loads(secret.secret_string or "{}")
        self.sock = socket.create_connection((conf["host"], conf["port"]), timeout=10)
        self.stream = self.sock.makefile("rwb")
        try:
            if self.call(f"AUTH {conf['username']} {conf['password']}") != "OK":
                raise LoginRefused(f"user {conf['username']!r} was denied")  # never the password
        except BaseException:
            self.close()
            raise

    def call(self, line: str) -> str:
        self.stream.write(line.encode() + b"\n")
        self.stream.flush()
        return self.stream.readline().decode().strip()

    def close(self) -> None:
        self.stream.close()
        self.sock.close()


def connect(cache: SecretCache | None = None) -> Session:
    return login(SECRET, Session, is_auth_failure=lambda e: isinstance(e, LoginRefused), cache=cache)


# -- the demo: the server, a rotation, four threads --------------------------------------------------------


class DemoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, password: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.password = password


class _Handler(socketserver.StreamRequestHandler):
    server: DemoServer

    def handle(self) -> None:
        words = self.rfile.readline().decode().rstrip("\n").split(" ", 2)
        if words[:1] != ["AUTH"] or len(words) != 3 or words[2] != self.server.password:
            self.wfile.write(b"DENIED\n")
            return
        self.wfile.write(b"OK\n")
        for line in self.rfile:
            self.wfile.write(b"PONG\n" if line == b"PING\n" else b"ERR\n")


def main() -> None:
    server = DemoServer("password-0")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]

    def doc(password: str) -> str:
        return json.dumps({"host": host, "port": port, "username": "ledger", "password": password})

    backend = InMemoryBackend({SECRET: doc("password-0")})
    failures: list[BaseException] = []
    workers = 4
    done = [0] * workers  # sessions each thread completed
    began = [0] * workers  # per thread: the step its last completed session began in
    step = [0]
    stop = threading.Event()

    def worker(i: int) -> None:
        while not stop.is_set():
            started = step[0]
            try:
                session = connect(cache)
                assert session.call("PING") == "PONG"
                session.close()
            except Exception as e:  # reported below; the demo expects none
                failures.append(e)
                return
            done[i] += 1
            began[i] = started

    def traffic() -> None:
        """Pacing by behaviour, not by the clock: every thread completes a session begun after this call
        (rotation steps are seconds apart in real life; a login never spans two of them)."""
        step[0] += 1
        while min(began) < step[0] and not failures:
            stop.wait(0.001)

    with SecretCache(backend, config=CacheConfig(ttl=3600)) as cache:  # a ttl far longer than the demo
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(workers)]
        for t in threads:
            t.start()
        traffic()
        for n in range(1, 4):  # single-user rotations: createSecret, setSecret, finishSecret
            pending = backend.put_secret(SECRET, doc(f"password-{n}"), stages=("AWSPENDING",))
            server.password = f"password-{n}"
            traffic()
            current = next(v for v, stages in backend.version_stages(SECRET).items() if "AWSCURRENT" in stages)
            backend.update_version_stage(SECRET, "AWSCURRENT", move_to_version_id=pending,
                                         remove_from_version_id=current)
            traffic()
        stop.set()
        for t in threads:
            t.join()
        stats = auth_stats(SECRET, cache=cache)
        print(f"every thread logged in through 3 rotations: {min(done) >= 7}, failed logins: {len(failures)}")
        print(f"gave up: {stats.gave_up}, AWSPENDING logins: {stats.pending_logins > 0}")

        try:
            Session(SecretValue(name=SECRET, secret_string=doc("a-wrong-password")))
        except LoginRefused as e:
            print(f"a wrong password: LoginRefused ({e})")
    server.shutdown()
    server.server_close()
    if failures:
        raise failures[0]


if __name__ == "__main__":
    sys.exit(main())
