"""A tiny WSGI app for ``gunicorn --preload``: ONE SecretCache, created and warmed in the master before fork.

Configured by the environment: ``SC_FORK_ENDPOINT`` (the Secrets Manager endpoint, a FaultProxy in front of
moto's HTTP server) and ``SC_FORK_SECRETS`` (comma-separated secret names, all read once at import so the
cache holds them and the backend holds a warm keep-alive connection when gunicorn forks its workers).

``GET /secret?id=NAME&mode=get|refresh`` answers ``{"pid", "id", "value"}`` (or ``"error"``, the error's type
name); ``GET /ping`` answers ``{"pid"}``. Test code only: it returns secret values over HTTP.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from botocore.config import Config

from secretcache import SecretCache
from secretcache.backends.aws import AwsBackend
from secretcache.config import CacheConfig
from secretcache.errors import SecretCacheError

SECRETS = [s for s in os.environ.get("SC_FORK_SECRETS", "").split(",") if s]

cache = SecretCache(
    AwsBackend(
        endpoint_url=os.environ["SC_FORK_ENDPOINT"],
        region_name="us-east-1",
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=2, read_timeout=5),
    ),
    config=CacheConfig(ttl=300.0, stale_while_revalidate=60.0),
)
for _name in SECRETS:
    cache.get_secret_string(_name)  # warm: entries cached, one keep-alive connection open, before fork


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    query = parse_qs(environ.get("QUERY_STRING", ""))
    answer: dict[str, Any] = {"pid": os.getpid()}
    if environ.get("PATH_INFO") == "/secret":
        secret_id = query.get("id", [""])[0]
        answer["id"] = secret_id
        try:
            if query.get("mode", ["get"])[0] == "refresh":
                answer["value"] = cache.refresh(secret_id).secret_string
            else:
                answer["value"] = cache.get_secret_string(secret_id)
        except SecretCacheError as e:
            answer["error"] = type(e).__name__
    body = json.dumps(answer).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
