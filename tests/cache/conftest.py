"""The secrets the cache tests read: one store for SecretCache and AsyncSecretCache alike."""

from __future__ import annotations

import json

import pytest

from secretcache.testing import InMemoryBackend
from tests.canary import CANARY, canary_value


@pytest.fixture
def password() -> str:
    return canary_value("pw")


@pytest.fixture
def store(password: str) -> InMemoryBackend:
    return InMemoryBackend({
        "app/api-key": canary_value("api"),
        "app/db": json.dumps({"username": "app", "password": password, "port": 5432, "ssl": True,
                              "options": {"a": 1}, "hosts": ["h1", "h2"], "nested": {"k": [1]}}),
        "app/blob": CANARY.encode() + b"\x00\xff",
        "app/text": "not json " + CANARY,
        "app/array": json.dumps([CANARY]),
        "app/plain": canary_value("plain"),
    })
