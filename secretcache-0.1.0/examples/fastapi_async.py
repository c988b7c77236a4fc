"""FastAPI-style async endpoints that get their secrets from ``@inject_secret``.

With FastAPI you write exactly these functions under ``@app.get(...)``. So that this file runs anywhere,
the small ``Router`` below stands in for FastAPI, and reads each endpoint the way FastAPI does: it
looks at ``inspect.signature(endpoint)`` to decide which query parameters to pass. ``@inject_secret``
removes the injected parameters from that signature, so the framework never asks clients for them.

- A secret already in the cache is served on the event loop (a dict lookup); a miss is read in a worker
  thread, so a slow Secrets Manager never blocks other requests.
- Every request reads through the cache: after a rotation the new value is used once the cache's ttl
  passes (5 minutes by default), or at once after ``cache.refresh(...)``.

Run it: ``python examples/fastapi_async.py`` (an in-memory store stands in for Secrets Manager; in
production the default cache reads AWS with the usual credentials).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import inspect
import json
from collections.abc import Awaitable, Callable
from typing import Any

import secretcache
from secretcache import inject_secret

Endpoint = Callable[..., Awaitable[dict[str, Any]]]


class Router:
    """A stand-in for ``fastapi.FastAPI``: routes GET requests to endpoints by their signatures."""

    def __init__(self) -> None:
        self.routes: dict[str, Endpoint] = {}

    def get(self, path: str) -> Callable[[Endpoint], Endpoint]:
        def register(endpoint: Endpoint) -> Endpoint:
            self.routes[path] = endpoint
            return endpoint

        return register

    async def request(self, path: str, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        endpoint = self.routes[path]
        params = inspect.signature(endpoint).parameters  # what FastAPI reads, too
        unknown = sorted(set(query) - set(params))
        missing = sorted(n for n, p in params.items() if p.default is p.empty and n not in query)
        if unknown or missing:
            return 422, {"detail": {"unknown": unknown, "missing": missing}}
        return 200, await endpoint(**query)


app = Router()


@app.get("/orders")
@inject_secret("prod/db", fields={"db_user": "username", "db_password": "password"})
async def list_orders(customer: str, limit: str = "10", *, db_user: str, db_password: str) -> dict[str, Any]:
    # A real endpoint: `async with await psycopg.AsyncConnection.connect(user=db_user, password=db_password)`.
    await asyncio.sleep(0)
    orders = [{"id": i, "customer": customer} for i in range(min(int(limit), 2))]
    return {"orders": orders, "as_user": db_user}


@app.get("/webhooks/verify")
@inject_secret("prod/webhook#signing_key", into="signing_key")
async def verify_webhook(body: str, signature: str, *, signing_key: str) -> dict[str, Any]:
    expected = hmac.new(signing_key.encode(), body.encode(), hashlib.sha256).hexdigest()
    return {"valid": hmac.compare_digest(expected, signature)}


async def demo() -> list[tuple[int, dict[str, Any]]]:
    """A few concurrent requests, as a server would see them."""
    good = hmac.new(b"demo-signing-key", b"{}", hashlib.sha256).hexdigest()
    return list(await asyncio.gather(
        app.request("/orders", {"customer": "c1", "limit": "2"}),
        app.request("/orders", {"customer": "c2"}),
        app.request("/orders", {"customer": "c3", "db_password": "guess"}),  # not a request parameter: 422
        app.request("/webhooks/verify", {"body": "{}", "signature": good}),
        app.request("/webhooks/verify", {"body": "{}", "signature": "forged"}),
    ))


def main() -> None:
    from secretcache.testing import InMemoryBackend

    store = InMemoryBackend({
        "prod/db": json.dumps({"username": "app", "password": "demo-password"}),
        "prod/webhook": json.dumps({"signing_key": "demo-signing-key"}),
    })
    previous = secretcache.set_default_cache(secretcache.SecretCache(store))
    try:
        for status, body in asyncio.run(demo()):
            print(status, json.dumps(body, sort_keys=True))
        print("signature of list_orders:", inspect.signature(list_orders))
        print("Secrets Manager calls:", sum(store.calls.values()))
    finally:
        secretcache.set_default_cache(previous)


if __name__ == "__main__":
    main()
