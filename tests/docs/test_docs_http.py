"""The python blocks of docs/http.md run as written, against a local token API and an in-memory store."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import secretcache
from secretcache import SecretCache
from tests.programs.oauth2_server import CLIENT_ID, oauth_server
from tests.programs.rotating_server import token_api

DOC = Path(__file__).resolve().parents[2] / "docs" / "http.md"


def blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", DOC.read_text(encoding="utf-8"), flags=re.DOTALL | re.MULTILINE)


@pytest.fixture
def default_cache() -> Iterator[None]:
    previous = secretcache.set_default_cache(None)
    yield
    secretcache.set_default_cache(previous)


def test_every_python_block_runs(default_cache: None) -> None:
    with token_api() as api, oauth_server() as oauth:
        api.backend.put_secret("prod/api-token", api.accepted)
        api.backend.put_secret("prod/reports-client", json.dumps(
            {"client_id": CLIENT_ID, "client_secret": oauth.accepted_secret}))
        api.backend.put_secret("prod/smtp", "the-current-password")
        cache = SecretCache(api.backend)
        secretcache.set_default_cache(cache)
        try:
            for block in blocks():
                code = block.replace("https://api.example.com", api.url)
                code = code.replace("https://auth.example.com/oauth2", oauth.url)
                code = code.replace("https://reports.example.com", oauth.url)
                exec(compile(code, str(DOC), "exec"), {"__name__": "docs_http"})
        finally:
            cache.close()
        assert api.ok >= 3
        assert oauth.api_ok == 2
        assert oauth.token_requests == 1
