"""Fixtures for the serve and events tests: moto's HTTP server, a fault proxy in front, an admin client."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from devtools.faults import FaultProxy
from devtools.moto_helpers import moto_server


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """One moto server for tests/serve (every test names its own secrets and queues)."""
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def proxy(moto_url: str) -> Iterator[FaultProxy]:
    with FaultProxy(moto_url, slow_seconds=1.5) as fault_proxy:
        yield fault_proxy


@pytest.fixture(autouse=True)
def _clear_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "proxy" in request.fixturenames:
        request.getfixturevalue("proxy").clear()


@pytest.fixture(scope="module")
def admin(moto_url: str) -> Any:
    import boto3

    return boto3.client("secretsmanager", region_name="us-east-1", endpoint_url=moto_url)


def unique(prefix: str = "serve/s") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
