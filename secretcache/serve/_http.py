"""The HTTP front end of ``secretcache serve``: the standard library's threading server, trimmed.

Chosen by measurement over uvicorn (docs/serve.md): every read is a dict lookup, so the server's own
cost decides, and one pre-built response per request written with one ``send`` is enough for the target.
A thread per connection, at most ``max_conn`` of them (more are answered 429 and closed, as the Agent
does); an idle keep-alive connection is closed after ``idle_timeout``; a client that connects and sends
nothing holds one slot and no one else's time. ``drain()`` stops accepting, lets requests in flight
finish, closes idle connections and returns when all are done (or at the deadline).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

from ._app import AgentApi, Response

__all__ = ["AgentHttpServer", "AgentUnixServer", "make_server"]

log = logging.getLogger("secretcache.serve")

_REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
            429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Unavailable", 504: "Gateway Timeout"}
_MAX_LINE = 65537
_LIMIT = (b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain\r\nContent-Length: 25\r\n"
          b"Connection: close\r\n\r\nConnection limit exceeded")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "secretcache"
    server: _ServerMixin  # type: ignore[assignment]

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.idle_timeout)

    def handle_one_request(self) -> None:
        """One request on this connection; the wait for its first line is the only idle time."""
        server = self.server
        try:
            self.raw_requestline = self.rfile.readline(_MAX_LINE)
        except (TimeoutError, OSError):
            self.close_connection = True
            return
        if not self.raw_requestline:
            self.close_connection = True
            return
        server.busy(self.connection, True)
        try:
            if len(self.raw_requestline) >= _MAX_LINE:
                self._send(Response(414, b"Request-URI Too Long"), close=True)
                return
            if not self.parse_request():  # it sent its own error (400, 505...)
                return
            response = server.api.handle(self.command, self.path, self.headers.get)
            assert response is not None  # nosec B101 - only fresh_only=True answers None
            self._send(response, close=self.close_connection or server.draining)
        except (TimeoutError, OSError):
            self.close_connection = True
        finally:
            server.busy(self.connection, False)
            if server.draining:
                self.close_connection = True

    def _send(self, response: Response, *, close: bool) -> None:
        status, body, content_type = response
        head = (f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\n{'Connection: close' if close else 'Connection: keep-alive'}"
                "\r\n\r\n").encode("ascii")
        self.wfile.write(head + body if self.command != "HEAD" else head)
        if close:
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        # The stdlib logs malformed requests here (the request line names a secret id, never a value).
        log.debug("serve: " + format, *args)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # no access log: a read is a few microseconds; a log line would cost more than the read


class _ServerMixin:
    """Connection bookkeeping shared by the TCP and Unix-socket servers."""

    api: AgentApi
    max_conn: int
    idle_timeout: float
    draining: bool
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def _init_bookkeeping(self, api: AgentApi, max_conn: int, idle_timeout: float) -> None:
        self.api = api
        self.max_conn = max_conn
        self.idle_timeout = idle_timeout
        self.draining = False
        self._lock = threading.Lock()
        self._conns: dict[socket.socket, bool] = {}  # connection -> busy
        self._idle_done = threading.Condition(self._lock)

    def busy(self, conn: socket.socket, busy: bool) -> None:
        with self._lock:
            if conn in self._conns:
                self._conns[conn] = busy
            if not busy:
                self._idle_done.notify_all()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._lock:
            full = len(self._conns) >= self.max_conn or self.draining
            if not full:
                self._conns[request] = False
        if full:
            try:
                request.settimeout(1.0)
                request.sendall(_LIMIT)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)  # type: ignore[misc]

    def shutdown_request(self, request: Any) -> None:
        with self._lock:
            self._conns.pop(request, None)
            self._idle_done.notify_all()
        super().shutdown_request(request)  # type: ignore[misc]

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("serve: connection error (%s)", "see debug")  # never the traceback's locals

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._conns)

    def drain(self, deadline: float) -> bool:
        """After ``shutdown()``: finish requests in flight, close idle connections; True when all closed
        before ``deadline`` (a ``time.monotonic()`` value)."""
        with self._lock:
            self.draining = True
        while True:
            with self._lock:
                idle = [conn for conn, busy in self._conns.items() if not busy]
                if not self._conns:
                    return True
            for conn in idle:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)  # wakes its reader, which then closes it
            with self._lock:
                left = deadline - time.monotonic()
                if left <= 0:
                    return not self._conns
                self._idle_done.wait(min(left, 0.05))


class AgentHttpServer(_ServerMixin, socketserver.ThreadingTCPServer):
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], api: AgentApi, *, max_conn: int, idle_timeout: float) -> None:
        self._init_bookkeeping(api, max_conn, idle_timeout)
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)


class AgentUnixServer(_ServerMixin, socketserver.ThreadingUnixStreamServer):
    def __init__(self, path: str, api: AgentApi, *, max_conn: int, idle_timeout: float) -> None:
        self._init_bookkeeping(api, max_conn, idle_timeout)
        super().__init__(path, _Handler)


def make_server(api: AgentApi, *, host: str, port: int, unix_socket: str | None, max_conn: int,
                idle_timeout: float) -> AgentHttpServer | AgentUnixServer:
    if unix_socket is not None:
        return AgentUnixServer(unix_socket, api, max_conn=max_conn, idle_timeout=idle_timeout)
    return AgentHttpServer((host, port), api, max_conn=max_conn, idle_timeout=idle_timeout)
