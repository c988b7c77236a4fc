"""A loopback proxy that lets ``redshift_connector`` talk to a plain PostgreSQL server (tests only).

Amazon Redshift speaks the PostgreSQL wire protocol (version 3) with two differences that stop
``redshift_connector`` against PostgreSQL: its StartupMessage carries Redshift-only parameters
(``client_protocol_version``, ``driver_version``, ``os_version``, ...) that PostgreSQL refuses
(``unrecognized configuration parameter``), and the driver parses the ``server_version`` the server reports
as a Redshift version (PostgreSQL's ``15.x (Debian ...)`` is an ``InvalidVersion``). The proxy keeps only
the startup parameters PostgreSQL knows, rewrites the server's ``server_version`` ParameterStatus to
Redshift's ``8.0.2``, ends the SCRAM mechanism list the way Redshift does (the driver would read
PostgreSQL's empty terminator as a mechanism name), and passes every other byte through untouched, the
SCRAM-SHA-256 exchange included. Shown to work with redshift_connector 2.2 and PostgreSQL 15.
Never shipped in the package.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from types import TracebackType

__all__ = ["KEPT_PARAMETERS", "REDSHIFT_VERSION", "RedshiftProxy"]

KEPT_PARAMETERS = frozenset({b"user", b"database", b"application_name", b"client_encoding"})
REDSHIFT_VERSION = b"8.0.2"
_PROTOCOL_3 = 196608
_SSL_REQUEST = 80877103
_AUTH_SASL = 10
_TIMEOUT = 30.0


def _read_exactly(sock: socket.socket, n: int) -> bytes:
    chunks = []
    while n:
        chunk = sock.recv(n)
        if not chunk:
            raise ConnectionError("peer closed")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _startup(client: socket.socket) -> bytes:
    """Read the client's StartupMessage (refusing an SSLRequest, as a server without TLS does) and return
    it with the Redshift-only parameters dropped."""
    while True:
        length, code = struct.unpack("!ii", _read_exactly(client, 8))
        if code == _SSL_REQUEST:
            client.sendall(b"N")
            continue
        body = _read_exactly(client, length - 8)
        break
    if code != _PROTOCOL_3:
        raise ConnectionError(f"unsupported protocol {code}")
    parts = body.split(b"\0")
    kept = []
    for key, value in zip(parts[0::2], parts[1::2], strict=False):
        if key in KEPT_PARAMETERS:
            kept += [key, value]
    payload = b"".join(p + b"\0" for p in kept) + b"\0"
    return struct.pack("!ii", len(payload) + 8, _PROTOCOL_3) + payload


def _rewrite(message_type: bytes, body: bytes) -> bytes:
    if message_type == b"S" and body.startswith(b"server_version\0"):
        body = b"server_version\0" + REDSHIFT_VERSION + b"\0"
    elif message_type == b"R" and body[:4] == struct.pack("!i", _AUTH_SASL):
        # PostgreSQL ends the mechanism list with an empty name; the driver reads the list as Redshift
        # sends it (names up to the last byte), so an empty name would reach scramp as a mechanism.
        names = [n for n in body[4:].split(b"\0") if n]
        body = body[:4] + b"\0".join(names) + b"\0"
    return message_type + struct.pack("!i", len(body) + 4) + body


class RedshiftProxy:
    """``with RedshiftProxy(pg_host, pg_port) as proxy:`` then connect ``redshift_connector`` to
    ``127.0.0.1:proxy.port``. Each client connection gets its own upstream connection and two threads."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port: int = self.listener.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._acceptor = threading.Thread(target=self._accept, name="redshift-proxy", daemon=True)

    def __enter__(self) -> RedshiftProxy:
        self._acceptor.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        self.listener.close()
        self._acceptor.join(5)
        with self._lock:
            sockets, threads = list(self._sockets), list(self._threads)
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        for t in threads:
            t.join(5)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._session, args=(client,), daemon=True)
            with self._lock:
                self.connections += 1
                self._sockets.append(client)
                self._threads.append(t)
            t.start()

    def _session(self, client: socket.socket) -> None:
        client.settimeout(_TIMEOUT)
        try:
            startup = _startup(client)
            server = socket.create_connection(self.upstream, timeout=_TIMEOUT)
        except (OSError, ConnectionError, struct.error):
            client.close()
            return
        server.settimeout(None)
        client.settimeout(None)
        with self._lock:
            self._sockets.append(server)
        server.sendall(startup)
        upward = threading.Thread(target=self._pipe, args=(client, server), daemon=True)
        upward.start()
        try:
            while True:  # server -> client, message by message
                header = _read_exactly(server, 5)
                length = struct.unpack("!i", header[1:])[0]
                client.sendall(_rewrite(header[:1], _read_exactly(server, length - 4)))
        except (OSError, ConnectionError):
            pass
        finally:
            for s in (client, server):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            upward.join(5)
            client.close()
            server.close()

    @staticmethod
    def _pipe(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                target.shutdown(socket.SHUT_WR)
