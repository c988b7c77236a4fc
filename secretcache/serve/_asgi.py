"""The uvicorn front end of ``secretcache serve`` (the ``[serve]`` extra), chosen by measurement
(docs/serve.md): one event loop answers hits inline, misses and ``refreshNow`` go to a thread pool
(they wait on Secrets Manager for up to ``fetch_timeout``).

uvicorn's own HTTP protocol, subclassed for the Agent's connection rules: over ``max_conn`` open
connections a new one is answered ``429 Connection limit exceeded`` and closed; a connection that
sends nothing within ``idle_timeout`` is closed (uvicorn's keep-alive timeout covers the idle time
between requests). SIGTERM: uvicorn's graceful shutdown (stop accepting, finish requests in flight,
close idle connections).
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio

from ._app import AgentApi

__all__ = ["make_app", "make_protocol", "run_uvicorn"]

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
        response = api.handle(method, target, headers.get, fresh_only=True)
        if response is None:
            import asyncio

            loop = asyncio.get_running_loop()
            response = await loop.run_in_executor(pool, lambda: api.handle(method, target, headers.get))
            assert response is not None  # nosec B101
        status, body, content_type = response
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", content_type.encode()),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return app


def make_protocol(max_conn: int, idle_timeout: float) -> type[asyncio.Protocol]:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class AgentProtocol(HttpToolsProtocol):
        _silent: asyncio.TimerHandle | None = None

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

        def data_received(self, data: bytes) -> None:
            if self._silent is not None:
                self._silent.cancel()
                self._silent = None
            super().data_received(data)

        def connection_lost(self, exc: Exception | None) -> None:
            if self._silent is not None:
                self._silent.cancel()
                self._silent = None
            super().connection_lost(exc)

    return AgentProtocol


def run_uvicorn(api: AgentApi, sock: socket.socket, *, max_conn: int, idle_timeout: float,
                on_started: Callable[[], None]) -> None:
    """Serve on ``sock`` (bound and listening) until SIGTERM/SIGINT; returns after the graceful drain."""
    import uvicorn

    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:
        loop = "asyncio"
    with ThreadPoolExecutor(max_workers=64, thread_name_prefix="secretcache-serve") as pool:
        config = uvicorn.Config(
            make_app(api, pool), http=make_protocol(max_conn, idle_timeout), loop=loop, lifespan="off",
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
