"""A FastAPI app calling an upstream API with a rotated token: ``SecretAuth`` on a shared httpx client.

When the upstream's token is rotated, the first refused call (401) refreshes it from Secrets Manager (or
uses AWSPENDING during a single-user rotation) and is sent again: no request of this app fails.

Run it: ``python examples/apps/fastapi_upstream.py`` (an in-memory store stands in for Secrets Manager and an
ASGI app for the upstream; in production: ``SecretAuth("prod/upstream-token")`` and a real base_url).
"""

from __future__ import annotations

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from secretcache import CacheConfig, SecretCache
from secretcache.http import SecretAuth
from secretcache.testing import InMemoryBackend

store = InMemoryBackend({"prod/upstream-token": "token-1"})
cache = SecretCache(store, config=CacheConfig(ttl=3600))

upstream = FastAPI()
accepted = {"token": "token-1"}


@upstream.get("/orders")
async def orders(request: Request) -> JSONResponse:
    if request.headers.get("authorization") != f"Bearer {accepted['token']}":
        return JSONResponse({"error": "unauthorized"}, status_code=401)
    return JSONResponse({"orders": [1, 2, 3]})


app = FastAPI()
client = httpx.AsyncClient(transport=httpx.ASGITransport(app=upstream), base_url="http://upstream",
                           auth=SecretAuth("prod/upstream-token", cache=cache))


@app.get("/summary")
async def summary() -> dict[str, int]:
    response = await client.get("/orders")
    response.raise_for_status()
    return {"orders": len(response.json()["orders"])}


def main() -> None:
    from fastapi.testclient import TestClient

    with TestClient(app) as test:
        print("before rotation:", test.get("/summary").json())
        store.rotate("prod/upstream-token", "token-2")  # Secrets Manager rotates...
        accepted["token"] = "token-2"  # ...and the upstream accepts only the new token
        print("after rotation:", test.get("/summary").json())
    print(f"Secrets Manager calls: {dict(store.calls)}")


if __name__ == "__main__":
    main()
