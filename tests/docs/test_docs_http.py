"""The python blocks of docs/http.md run as written, against a local token API and an in-memory store."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import secretcache
from secretcache import SecretCache
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
    with token_api() as api:
        api.backend.put_secret("prod/api-token", api.accepted)
        api.backend.put_secret("prod/smtp", "the-current-password")
        cache = SecretCache(api.backend)
        secretcache.set_default_cache(cache)
        try:
            for block in blocks():
                code = block.replace("https://api.example.com", api.url)
                exec(compile(code, str(DOC), "exec"), {"__name__": "docs_http"})
        finally:
            cache.close()
        assert api.ok >= 3
