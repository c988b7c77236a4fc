"""The uvicorn front end of ``secretcache serve`` (the ``[serve]`` extra), chosen by measurement
(docs/serve.md): one event loop answers hits inline, misses and ``refreshNow`` go to a thread pool
(they wait on Secrets Manager for up to ``fetch_timeout``).

uvicorn's own HTTP protocol (httptools, i.e. llhttp: each byte parsed once, a body read as a body and
discarded, chunked bodies decoded, ``Content-Length``/``Transfer-Encoding`` conflicts refused with 400
and the connection closed), subclassed for the Agent's connection rules and what faces the network:

- over ``max_conn`` open connections a new one is answered ``429 Connection limit exceeded`` and closed;
- a connection that sends nothing within ``idle_timeout`` is closed (uvicorn's keep-alive timeout covers
  the idle time between requests);
- a request whose request line and headers are not complete ``header_timeout`` seconds after their first
  byte is closed (uvicorn has no such bound: one byte cancels its keep-alive timer and nothing else runs);
- a request answered before its body has all arrived has its connection closed after the answer (the
  body is not wanted, and a body trickled a byte at a time would otherwise hold the slot);
- nothing a client sends reaches a log as an ERROR or a traceback: an exception out of the parser or the
  app is answered (400 / 500) and logged at DEBUG by type.

SIGTERM: uvicorn's graceful shutdown (stop accepting, finish requests in flight, close idle connections).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio

from ._app import AgentApi, Response

__all__ = ["make_app", "make_protocol", "run_uvicorn"]

log = logging.getLogger("secretcache.serve")

_BAD = (b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: 11\r\n"
        b"connection: close\r\n\r\nBad Request")
_LIMIT = (b"HTTP/1.1 429 Too Many Requests\r\ncontent-type: text/plain\r\ncontent-length: 25\r\n"
          b"connection: close\r\n\r\nConnection limit exceeded")

Scope = dict[str, Any]
App = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[dict[str, Any]], Awaitable[None]]], Awaitable[None]]


def make_app(api: AgentApi, pool: ThreadPoolExecutor) -> App:
    async def app(scope: Scope, receive: Callable[[], Awaitable[Any]],
                  send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        target = scope["raw_path"].decode("latin-1")
        if scope["query_string"]:
            target += "?" + scope["query_string"].decode("latin-1")
        method = scope["method"]
        try:
            response = api.handle(method, target, headers.get, fresh_only=True)
            if response is None:
                import asyncio

                loop = asyncio.get_running_loop()
                response = await loop.run_in_executor(pool, lambda: api.handle(method, target, headers.get))
                assert response is not None  # nosec B101
        except Exception as e:  # never uvicorn's ERROR log with a traceback, for anything a client sends
            log.debug("serve: %s answering a request: 500", type(e).__name__)
            response = Response(500, b"Internal error")
        status, body, content_type = response
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", content_type.encode()),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return app


def make_protocol(max_conn: int, idle_timeout: float, header_timeout: float) -> type[asyncio.Protocol]:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class AgentProtocol(HttpToolsProtocol):
        _silent: asyncio.TimerHandle | None = None
        _headers: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            if len(self.connections) >= max_conn:
                self.transport = transport
                transport.write(_LIMIT)
                transport.close()
                return
            super().connection_made(transport)
            self._silent = self.loop.call_later(idle_timeout, self._close_silent)

        def _close_silent(self) -> None:
            self._silent = None
            if not self.transport.is_closing():
                self.transport.close()

        def _close_incomplete(self) -> None:
            self._headers = None
            if not self.transport.is_closing():
                log.debug("serve: closing a connection whose request headers took over %gs", header_timeout)
                self.transport.close()

        def data_received(self, data: bytes) -> None:
            if self._silent is not None:
                self._silent.cancel()
                self._silent = None
            if self.parser is None:  # closed already (uvicorn drops its parser then)
                return
            try:
                super().data_received(data)
            except Exception as e:  # a parser callback's own error (uvicorn catches only httptools' errors)
                log.debug("serve: %s parsing a request: 400", type(e).__name__)
                if not self.transport.is_closing():
                    self.transport.write(_BAD)
                    self.transport.close()

        def on_message_begin(self) -> None:
            # The first byte of a request: its request line and headers must be complete in header_timeout.
            super().on_message_begin()
            if self._headers is None:
                self._headers = self.loop.call_later(header_timeout, self._close_incomplete)

        def on_headers_complete(self) -> None:
            if self._headers is not None:
                self._headers.cancel()
                self._headers = None
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            # Answered before its body was all in (a 405 to a POST, a GET with a body): the rest of the
            # body would be read only to be discarded, at the client's pace. Refuse it: close.
            cycle = self.cycle
            if cycle is not None and cycle.response_complete and cycle.more_body and not self.transport.is_closing():
                self.transport.close()
            super().on_response_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            for timer in (self._silent, self._headers):
                if timer is not None:
                    timer.cancel()
            self._silent = self._headers = None
            super().connection_lost(exc)

    return AgentProtocol


def _quiet_bad_requests(record: logging.LogRecord) -> bool:
    """uvicorn logs every unparsable request at WARNING: any client could fill the log. Such a record is
    demoted to DEBUG, and kept only when serve logs at DEBUG."""
    if record.getMessage().startswith(("Invalid HTTP request", "Unsupported upgrade request")):
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return log.isEnabledFor(logging.DEBUG)
    return True


def run_uvicorn(api: AgentApi, sock: socket.socket, *, max_conn: int, idle_timeout: float,
                header_timeout: float, on_started: Callable[[], None]) -> None:
    """Serve on ``sock`` (bound and listening) until SIGTERM/SIGINT; returns after the graceful drain."""
    import uvicorn

    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:
        loop = "asyncio"
    logging.getLogger("uvicorn.error").addFilter(_quiet_bad_requests)
    with ThreadPoolExecutor(max_workers=64, thread_name_prefix="secretcache-serve") as pool:
        config = uvicorn.Config(
            make_app(api, pool), http=make_protocol(max_conn, idle_timeout, header_timeout), loop=loop, lifespan="off",
            log_config=None, log_level="warning", access_log=False, proxy_headers=False,
            server_header=False, date_header=False, timeout_keep_alive=int(max(1, idle_timeout)),
            timeout_graceful_shutdown=10, backlog=2048,
        )
        server = uvicorn.Server(config)
        original = server.startup

        async def startup(sockets: list[socket.socket] | None = None) -> None:
            await original(sockets=sockets)
            on_started()

        server.startup = startup  # type: ignore[method-assign]
        server.run(sockets=[sock])
