"""The python block of docs/settings.md runs as written, on an in-memory store as the default cache."""

from __future__ import annotations

import json
import re
from pathlib import Path

import secretcache
from secretcache import SecretCache
from secretcache.testing import InMemoryBackend
from tests.fixtures.fix_canary import canary_value

DOC = Path(__file__).resolve().parents[2] / "docs" / "settings.md"


def test_the_python_block_runs() -> None:
    found = re.findall(r"(^<!-- fragment -->\n)?^```python\n(.*?)^```", DOC.read_text(encoding="utf-8"),
                       flags=re.DOTALL | re.MULTILINE)
    code = [block for marker, block in found if not marker]  # fragments run elsewhere (the parameters tests)
    key = canary_value("k")
    backend = InMemoryBackend({"prod/api-key": key, "prod/db": json.dumps({"password": canary_value("p"),
                                                                           "port": 5432})})
    cache = SecretCache(backend)
    previous = secretcache.set_default_cache(cache)
    try:
        namespace: dict[str, object] = {"__name__": "docs_settings"}
        for block in code:
            exec(compile(block, str(DOC), "exec"), namespace)
        settings = namespace["settings"]
        assert settings.api_key == key  # type: ignore[attr-defined]
        assert settings.db_port == 5432  # type: ignore[attr-defined]
        assert backend.calls["BatchGetSecretValue"] == 1
    finally:
        secretcache.set_default_cache(previous)
        cache.close()
