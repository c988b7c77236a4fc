"""secretcache.tls: real handshakes on 127.0.0.1 with certificates made by ``cryptography``, while the
secret holding them rotates."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from secretcache import CacheConfig, SecretCache
from secretcache.errors import SecretFormatError
from secretcache.testing import InMemoryBackend
from secretcache.tls import client_context, server_context
from tests.fixtures.fix_canary import CANARY
from tests.fixtures.tls_certs import CA, serial_of, trusting

SERVER = "tls/server"
CLIENT = "tls/client"
INTERVAL = 60.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class EchoServer:
    """A TLS echo server in threads: each connection's handshake runs in its own thread, and the
    client certificate each one saw is kept."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.stop = threading.Event()
        self.client_serials: list[int | None] = []
        self.errors: list[str] = []
        self.threads: list[threading.Thread] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self.threads.append(t)
            t.start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        try:
            with self.context.wrap_socket(conn, server_side=True) as tls:
                der = tls.getpeercert(binary_form=True)
                self.client_serials.append(serial_of(der) if der else None)
                while data := tls.recv(1024):
                    tls.sendall(data)
        except (ConnectionResetError, BrokenPipeError):
            # A client that read the certificate and hung up without close_notify (server_serial does); with
            # TLS 1.3 the server's session tickets can meet the closed socket. Not a failed handshake.
            pass
        except (OSError, ssl.SSLError) as e:
            self.errors.append(type(e).__name__)

    def close(self) -> None:
        self.stop.set()
        self.listener.close()
        self.thread.join(5)
        for t in self.threads:
            t.join(5)


@pytest.fixture
def ca() -> CA:
    return CA()


@pytest.fixture
def backend() -> InMemoryBackend:
    return InMemoryBackend()


@pytest.fixture
def cache(backend: InMemoryBackend) -> Iterator[SecretCache]:
    with SecretCache(backend, config=CacheConfig(ttl=0)) as c:  # every check reads the backend
        yield c


def connect(port: int, context: ssl.SSLContext) -> ssl.SSLSocket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return context.wrap_socket(sock, server_hostname="localhost")


def server_serial(port: int, context: ssl.SSLContext) -> int:
    with connect(port, context) as tls:
        return serial_of(tls.getpeercert(binary_form=True))


def until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


@pytest.fixture
def echo() -> Iterator[Callable[[ssl.SSLContext], EchoServer]]:
    servers: list[EchoServer] = []

    def start(context: ssl.SSLContext) -> EchoServer:
        servers.append(EchoServer(context))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


# -- server ---------------------------------------------------------------------------------------------

def test_new_handshakes_use_the_rotated_certificate_and_old_connections_keep_working(
        ca: CA, backend: InMemoryBackend, cache: SecretCache, echo: Callable[[ssl.SSLContext], EchoServer]) -> None:
    first, serial1 = ca.secret("server-1")
    backend.put_secret(SERVER, first)
    clock = Clock()
    context = server_context(SERVER, cache=cache, check_interval=INTERVAL, clock=clock)
    server = echo(context)
    client = trusting(ca)
    assert server_serial(server.port, client) == serial1
    old = connect(server.port, client)
    old.sendall(b"before\n")
    assert old.recv(64) == b"before\n"

    second, serial2 = ca.secret("server-2")
    backend.put_secret(SERVER, second)
    backend.reset_calls()
    for _ in range(5):  # within the interval: no check, the old certificate
        assert server_serial(server.port, client) == serial1
    assert backend.calls["GetSecretValue"] == 0

    clock.now += INTERVAL
    until(lambda: server_serial(server.port, client) == serial2, "the rotated certificate")
    assert backend.calls["GetSecretValue"] == 1  # one check for the whole interval
    current = next(v for v, stages in backend.version_stages(SERVER).items() if "AWSCURRENT" in stages)
    assert context.secret_version == current  # type: ignore[attr-defined]
    old.sendall(b"after\n")
    assert old.recv(64) == b"after\n"
    assert serial_of(old.getpeercert(binary_form=True)) == serial1
    old.close()
    assert server.errors == []


def test_no_handshake_waits_for_the_check(ca: CA, backend: InMemoryBackend, cache: SecretCache,
                                          echo: Callable[[ssl.SSLContext], EchoServer]) -> None:
    first, serial1 = ca.secret("server-1")
    backend.put_secret(SERVER, first)
    clock = Clock()
    server = echo(server_context(SERVER, cache=cache, check_interval=INTERVAL, clock=clock))
    client = trusting(ca)
    second, serial2 = ca.secret("server-2")
    backend.put_secret(SERVER, second)
    gate = backend.hold(operation="GetSecretValue")
    clock.now += INTERVAL
    try:
        assert server_serial(server.port, client) == serial1  # starts the check, does not wait for it
        backend.wait_held(1)
        for _ in range(3):
            assert server_serial(server.port, client) == serial1  # Secrets Manager still answering
    finally:
        gate.set()
    until(lambda: server_serial(server.port, client) == serial2, "the rotated certificate")


@pytest.mark.parametrize("bad", ["malformed", "mismatched"])
def test_a_bad_rotated_pem_keeps_the_old_certificate_and_warns_without_key_material(
        ca: CA, backend: InMemoryBackend, cache: SecretCache, echo: Callable[[ssl.SSLContext], EchoServer],
        caplog: pytest.LogCaptureFixture, bad: str) -> None:
    caplog.set_level(logging.DEBUG)
    first, serial1 = ca.secret("server-1")
    backend.put_secret(SERVER, first)
    clock = Clock()
    server = echo(server_context(SERVER, cache=cache, check_interval=INTERVAL, clock=clock))
    client = trusting(ca)
    cert2, key2, _ = ca.issue("server-2")
    cert3, key3, serial3 = ca.issue("server-3")
    if bad == "malformed":
        broken = {"certificate": cert2[:-80], "private_key": f"-----BEGIN PRIVATE KEY-----\n{CANARY}\n", "ca": ca.pem}
    else:
        broken = {"certificate": cert2, "private_key": key3, "ca": ca.pem}  # another certificate's key
    backend.put_secret(SERVER, json.dumps(broken))
    clock.now += INTERVAL
    server_serial(server.port, client)

    def warned() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.name.startswith("secretcache") and r.levelno >= logging.WARNING]

    until(lambda: bool(warned()), "the WARNING")
    assert server_serial(server.port, client) == serial1
    for record in caplog.records:
        text = record.getMessage()
        assert CANARY not in text
        assert "PRIVATE KEY" not in text
        assert key2[40:80] not in text
        assert key3[40:80] not in text
    calls = backend.calls["GetSecretValue"]
    clock.now += INTERVAL  # the same bad version is read again but not rebuilt (nor logged) again
    server_serial(server.port, client)
    backend.wait_for_calls(calls + 1)
    time.sleep(0.2)
    assert len(warned()) == 1

    backend.put_secret(SERVER, json.dumps({"certificate": cert3, "private_key": key3, "ca": ca.pem}))
    clock.now += INTERVAL
    until(lambda: server_serial(server.port, client) == serial3, "the next good certificate")


def test_a_failed_check_keeps_the_certificate_and_is_tried_again_next_interval(
        ca: CA, backend: InMemoryBackend, echo: Callable[[ssl.SSLContext], EchoServer],
        caplog: pytest.LogCaptureFixture) -> None:
    first, serial1 = ca.secret("server-1")
    backend.put_secret(SERVER, first)
    clock = Clock()
    with SecretCache(backend, config=CacheConfig(ttl=0, stale_if_error=0, backoff_base=0, backoff_max=0)) as cache:
        server = echo(server_context(SERVER, cache=cache, check_interval=INTERVAL, clock=clock))
        client = trusting(ca)
        second, serial2 = ca.secret("server-2")
        backend.put_secret(SERVER, second)
        backend.fail_next("denied", operation="GetSecretValue")
        clock.now += INTERVAL
        server_serial(server.port, client)
        until(lambda: any(r.levelno == logging.WARNING and r.name == "secretcache.tls" for r in caplog.records),
              "the WARNING of the failed check")
        assert server_serial(server.port, client) == serial1
        clock.now += INTERVAL
        until(lambda: server_serial(server.port, client) == serial2, "the rotated certificate")


def test_asyncio_start_server_follows_rotation(ca: CA, backend: InMemoryBackend, cache: SecretCache) -> None:
    first, serial1 = ca.secret("server-1")
    backend.put_secret(SERVER, first)
    clock = Clock()
    context = server_context(SERVER, cache=cache, check_interval=INTERVAL, clock=clock)
    client = trusting(ca)

    async def main() -> list[int]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(await reader.readline())
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
        port = server.sockets[0].getsockname()[1]

        async def seen() -> int:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client,
                                                          server_hostname="localhost")
            writer.write(b"hi\n")
            assert await reader.readline() == b"hi\n"
            der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
            writer.close()
            return serial_of(der)

        serials = [await seen()]
        backend.put_secret(SERVER, ca.secret("server-2")[0])
        clock.now += INTERVAL
        for _ in range(500):
            serials.append(await seen())
            if serials[-1] != serial1:
                break
            await asyncio.sleep(0.01)
        server.close()
        await server.wait_closed()
        return serials

    serials = asyncio.run(asyncio.wait_for(main(), 30))
    assert serials[0] == serial1
    assert serials[-1] != serial1


def test_settings_made_after_creation_carry_over_to_the_rotated_context(
        ca: CA, backend: InMemoryBackend, cache: SecretCache, echo: Callable[[ssl.SSLContext], EchoServer]) -> None:
    backend.put_secret(SERVER, ca.secret("server-1")[0])
    clock = Clock()
    context = server_context(SERVER, cache=cache, check_interval=INTERVAL, clock=clock)
    context.set_alpn_protocols(["h2", "http/1.1"])
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    server = echo(context)
    client = trusting(ca)
    client.set_alpn_protocols(["h2"])
    second, serial2 = ca.secret("server-2")
    backend.put_secret(SERVER, second)
    clock.now += INTERVAL
    until(lambda: server_serial(server.port, client) == serial2, "the rotated certificate")
    with connect(server.port, client) as tls:
        assert tls.selected_alpn_protocol() == "h2"
        assert tls.version() == "TLSv1.3"
    old_client = trusting(ca)
    old_client.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(ssl.SSLError):
        connect(server.port, old_client).close()


# -- mTLS -----------------------------------------------------------------------------------------------

def test_mtls_client_presents_the_rotated_client_certificate(
        ca: CA, backend: InMemoryBackend, cache: SecretCache, echo: Callable[[ssl.SSLContext], EchoServer]) -> None:
    backend.put_secret(SERVER, ca.secret("server")[0])
    client_secret1, client1 = ca.secret("client-1", client=True)
    backend.put_secret(CLIENT, client_secret1)
    clock = Clock()
    server = echo(server_context(SERVER, cache=cache, require_client_cert=True))
    client = client_context(CLIENT, cache=cache, check_interval=INTERVAL, clock=clock)

    def handshake() -> int | None:
        with connect(server.port, client) as tls:
            tls.sendall(b"x")
            assert tls.recv(1) == b"x"
        until(lambda: len(server.client_serials) >= count[0] + 1, "the server's record")
        count[0] += 1
        return server.client_serials[-1]

    count = [0]
    assert handshake() == client1
    client_secret2, client2 = ca.secret("client-2", client=True)
    backend.put_secret(CLIENT, client_secret2)
    assert handshake() == client1
    clock.now += INTERVAL
    until(lambda: handshake() == client2, "the rotated client certificate")

    plain = trusting(ca)  # no client certificate: refused by the server
    def refused() -> None:
        with connect(server.port, plain) as tls:
            tls.sendall(b"x")
            tls.recv(1)

    with pytest.raises((ssl.SSLError, ConnectionError)):
        refused()


def test_httpx_mtls_client_follows_rotation(ca: CA, backend: InMemoryBackend, cache: SecretCache) -> None:
    backend.put_secret(SERVER, ca.secret("server")[0])
    client_secret1, client1 = ca.secret("client-1", client=True)
    backend.put_secret(CLIENT, client_secret1)
    seen: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            der = self.request.getpeercert(binary_form=True)  # type: ignore[attr-defined]
            seen.append(serial_of(der))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.socket = server_context(SERVER, cache=cache, require_client_cert=True).wrap_socket(
        httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    clock = Clock()
    url = f"https://localhost:{httpd.server_address[1]}/"
    try:
        context = client_context(CLIENT, cache=cache, check_interval=INTERVAL, clock=clock)
        with httpx.Client(verify=context, timeout=10) as client:
            assert client.get(url).status_code == 200
        backend.put_secret(CLIENT, ca.secret("client-2", client=True)[0])
        clock.now += INTERVAL

        def new_client_cert() -> bool:
            with httpx.Client(verify=context, timeout=10) as c:  # a new connection each time
                assert c.get(url).status_code == 200
            return seen[-1] != client1

        until(new_client_cert, "the rotated client certificate")
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
    assert seen[0] == client1


def test_client_context_verifies_the_server_with_the_secrets_ca(
        ca: CA, backend: InMemoryBackend, cache: SecretCache, echo: Callable[[ssl.SSLContext], EchoServer]) -> None:
    other = CA("another CA")
    backend.put_secret(SERVER, other.secret("server")[0])
    backend.put_secret(CLIENT, ca.secret("client", client=True)[0])
    server = echo(server_context(SERVER, cache=cache))
    client = client_context(CLIENT, cache=cache)
    assert client.verify_mode == ssl.CERT_REQUIRED
    assert client.check_hostname
    with pytest.raises(ssl.SSLCertVerificationError):
        connect(server.port, client)


# -- bad input ------------------------------------------------------------------------------------------

def test_a_bad_first_version_is_a_format_error_naming_the_keys(ca: CA, backend: InMemoryBackend,
                                                             cache: SecretCache) -> None:
    backend.put_secret(SERVER, json.dumps({"certificate": "x", "key": CANARY}))
    with pytest.raises(SecretFormatError, match="private_key") as caught:
        server_context(SERVER, cache=cache)
    assert CANARY not in str(caught.value)
    cert, _, _ = ca.issue("server")
    backend.put_secret(SERVER, json.dumps({"certificate": cert, "private_key": CANARY}))
    with pytest.raises(SecretFormatError, match="do not load") as caught:
        server_context(SERVER, cache=cache)
    assert CANARY not in repr(caught.value)
    backend.put_secret(SERVER, ca.secret("server")[0].replace('"ca"', '"cax"'))
    with pytest.raises(SecretFormatError, match="require_client_cert"):
        server_context(SERVER, cache=cache, require_client_cert=True)
    with pytest.raises(ValueError, match="check_interval"):
        server_context(SERVER, cache=cache, check_interval=-1)


def test_uvicorn_ssl_context_factory_follows_rotation(ca: CA, backend: InMemoryBackend, cache: SecretCache) -> None:
    """uvicorn takes a context through ``ssl_context_factory``; its handshakes follow the rotation."""
    import uvicorn

    backend.put_secret(SERVER, ca.secret("server-1")[0])
    clock = Clock()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_level="warning", lifespan="off",
        ssl_context_factory=lambda config, default: server_context(SERVER, cache=cache, check_interval=INTERVAL,
                                                                   clock=clock),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    client = trusting(ca)

    def serial() -> int:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
                client.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            assert tls.recv(64).startswith(b"HTTP/1.1 200")
            return serial_of(tls.getpeercert(binary_form=True))

    try:
        until(lambda: server.started, "uvicorn to start")
        first = serial()
        second, serial2 = ca.secret("server-2")
        backend.put_secret(SERVER, second)
        clock.now += INTERVAL
        until(lambda: serial() == serial2, "the rotated certificate")
        assert first != serial2
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def test_an_async_cache_is_read_through_its_blocking_face(ca: CA, backend: InMemoryBackend,
                                                         echo: Callable[[ssl.SSLContext], EchoServer]) -> None:
    from secretcache import AsyncSecretCache

    first, serial1 = ca.secret("server-1")
    backend.put_secret(SERVER, first)
    clock = Clock()
    cache = AsyncSecretCache(backend, config=CacheConfig(ttl=0))
    try:
        server = echo(server_context(SERVER, cache=cache, check_interval=INTERVAL, clock=clock))
        client = trusting(ca)
        assert server_serial(server.port, client) == serial1
        second, serial2 = ca.secret("server-2")
        backend.put_secret(SERVER, second)
        clock.now += INTERVAL
        until(lambda: server_serial(server.port, client) == serial2, "the rotated certificate")
    finally:
        asyncio.run(cache.close())
