"""A WSGI application (the interface Flask and Django implement) checking an API token from Secrets Manager.

The helper that needs the secret takes it as a keyword argument and ``@inject_secret`` supplies it on
each call, through the process-wide cache: no request waits on Secrets Manager while the value is
fresh, and a rotated token is picked up within the cache's ttl. With Flask, call ``authorized(...)``
from a ``@app.before_request`` hook; nothing else changes.

At start-up, ``inject_env`` turns references in the environment into values, so libraries that read
``os.environ`` (here ``DATABASE_URL``) get the real thing; it fetches them all with one batch call.

Run it: ``python examples/flask_wsgi.py`` (a demo with an in-memory store) or
``python examples/flask_wsgi.py --serve`` (http://127.0.0.1:8000, Ctrl-C to stop).
"""

from __future__ import annotations

import hmac
import io
import json
import os
import sys
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.util import setup_testing_defaults

import secretcache
from secretcache import inject_env, inject_secret

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


@inject_secret("prod/api-token", into="api_token")
def authorized(environ: dict[str, Any], *, api_token: str) -> bool:
    """True when the request carries ``Authorization: Bearer <the current token>``."""
    sent = environ.get("HTTP_AUTHORIZATION", "")
    return hmac.compare_digest(sent.encode(), f"Bearer {api_token}".encode())


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    def reply(status: str, body: dict[str, Any]) -> list[bytes]:
        data = json.dumps(body).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]

    if environ.get("PATH_INFO") == "/health":
        return reply("200 OK", {"ok": True})
    if not authorized(environ):
        return reply("401 Unauthorized", {"error": "unauthorized"})
    database = os.environ.get("DATABASE_URL", "").partition("@")[2]  # where, never the credentials
    return reply("200 OK", {"hello": "world", "database": database})


def call(path: str, token: str | None = None) -> str:
    """Call ``app`` the way a WSGI server would; return the status line."""
    environ: dict[str, Any] = {"PATH_INFO": path, "wsgi.input": io.BytesIO()}
    if token is not None:
        environ["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    setup_testing_defaults(environ)
    seen: list[str] = []
    body = b"".join(app(environ, lambda status, headers: seen.append(status)))
    return f"{seen[0]} {body.decode()}"


def main(argv: list[str]) -> None:
    from secretcache.testing import InMemoryBackend

    store = InMemoryBackend({
        "prod/api-token": "demo-token",
        "prod/db": json.dumps({"username": "app", "password": "demo-password", "host": "db.internal"}),
    })
    secretcache.set_default_cache(secretcache.SecretCache(store))
    os.environ["DATABASE_URL"] = ("postgresql://app:{{resolve:secretsmanager:prod/db:SecretString:password}}"
                                  "@db.internal:5432/app")
    inject_env()  # at start-up: references in os.environ become values
    if "--serve" in argv:
        from wsgiref.simple_server import make_server

        with make_server("127.0.0.1", 8000, app) as server:
            print("serving on http://127.0.0.1:8000 (token: demo-token)")
            server.serve_forever()
        return
    print(call("/health"))
    print(call("/", token="demo-token"))
    print(call("/", token="wrong"))
    store.rotate("prod/api-token", "rotated-token")
    secretcache.default_cache().refresh("prod/api-token")  # or wait for the ttl
    print(call("/", token="demo-token"))
    print(call("/", token="rotated-token"))


if __name__ == "__main__":
    main(sys.argv[1:])
