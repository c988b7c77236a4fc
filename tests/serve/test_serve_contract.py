"""The core contract (tests/backends/test_contract.py) with ``serve`` in the middle: the same scenarios, read by
``AgentBackend`` and by ``SecretCache(AgentBackend(...))`` through ``secretcache serve --ttl 0`` (every
read reaches Secrets Manager, still single-flight), against moto's HTTP server behind the fault proxy.

Reused: every read scenario (names and ARNs, versions and stages, binary values, rotation, not found,
malformed ids, no value in any message). Not reused, by design: "access denied (or deleted), then
the next read passes once fixed" and the batch scenarios (the Agent's API has no batch call:
AgentBackend makes one GET per secret, so the batch call counts differ) and "a transient fault passes
on the next call" (serve is a cache: a failed key is backed off, so the next read within
``backoff_base`` gets the error again; the stale and error behaviour through serve is in
test_serve.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from devtools.faults import FaultProxy
from secretcache import CacheConfig, SecretCache
from secretcache.backends.agent import AgentBackend
from tests.fixtures.contract import (
    BotoStore,
    test_a_malformed_version_id_is_a_permanent_request_error,
    test_a_stage_not_on_the_given_version_is_not_found,
    test_binary_values_come_back_as_the_same_bytes,
    test_missing_secret_version_and_stage_are_not_found,
    test_moving_awscurrent_without_remove_from_version_id_is_refused,
    test_name_full_arn_and_partial_arn_read_the_same_version,
    test_no_error_message_or_repr_contains_the_value,
    test_plain_put_moves_awscurrent_and_marks_the_old_version_awsprevious,
    test_putting_awspending_leaves_awscurrent_alone,
    test_rotation_moves_awscurrent_and_plain_reads_follow_it,
    test_version_id_and_version_stage_select_versions,
)
from tests.fixtures.serving import TOKEN, Serve, serving

pytestmark = pytest.mark.integration

__all__ = [
    "test_a_malformed_version_id_is_a_permanent_request_error",
    "test_a_stage_not_on_the_given_version_is_not_found",
    "test_binary_values_come_back_as_the_same_bytes",
    "test_missing_secret_version_and_stage_are_not_found",
    "test_moving_awscurrent_without_remove_from_version_id_is_refused",
    "test_name_full_arn_and_partial_arn_read_the_same_version",
    "test_no_error_message_or_repr_contains_the_value",
    "test_plain_put_moves_awscurrent_and_marks_the_old_version_awsprevious",
    "test_putting_awspending_leaves_awscurrent_alone",
    "test_rotation_moves_awscurrent_and_plain_reads_follow_it",
    "test_version_id_and_version_stage_select_versions",
]

_PROXY_MODES = {"conn": "rst", "closed": "fin", "timeout": "hang"}


class _CachedReads:
    """Reads through ``SecretCache(AgentBackend)`` (ttl 0: each read fetches); batches straight through."""

    def __init__(self, agent: AgentBackend) -> None:
        self.agent = agent
        self.cache = SecretCache(agent, config=CacheConfig(ttl=0, backoff_base=0.001, backoff_max=0.001))
        self.get_secret_value = self.cache.get_secret_value
        self.batch_get_secret_values = agent.batch_get_secret_values


class ServeStore(BotoStore):
    """Writes go to moto directly; reads go through serve (``backend``), faults through the proxy."""

    def __init__(self, moto_url: str, proxy: FaultProxy, server: Serve, *, cached: bool) -> None:
        super().__init__(moto_url)
        self.proxy = proxy
        agent = AgentBackend(server.url, token=TOKEN)
        self.backend = _CachedReads(agent) if cached else agent  # type: ignore[assignment]

    def fault(self, *steps: str, op: str = "GetSecretValue") -> None:
        self.proxy.script(*(_PROXY_MODES.get(step, step) for step in steps))

    def calls(self, op: str) -> int:
        return self.proxy.count(op)


@pytest.fixture(scope="module")
def contract_serve(proxy: FaultProxy) -> Iterator[Serve]:
    # One attempt per fetch would be the contract's client; serve keeps AwsBackend's defaults, so a
    # scripted fault is scripted for every attempt (see fault()). backoff is the cache's own.
    with serving(proxy.url, "--ttl", "0") as server:
        yield server


@pytest.fixture(params=["AgentBackend", "SecretCache(AgentBackend)"])
def store(request: pytest.FixtureRequest, moto_url: str, proxy: FaultProxy, contract_serve: Serve) -> Iterator[Any]:
    proxy.reset_counts()
    built = ServeStore(moto_url, proxy, contract_serve, cached=request.param != "AgentBackend")
    yield built
    if isinstance(built.backend, _CachedReads):
        built.backend.cache.close()


def test_access_denied_is_typed_through_serve(store: Any) -> None:
    from secretcache.errors import SecretAccessDeniedError
    from tests.fixtures.contract import unique

    name = unique()
    store.create(name, "v1")
    store.fault("denied", "denied", "denied")
    with pytest.raises(SecretAccessDeniedError) as info:
        store.backend.get_secret_value(name)
    assert info.value.code == "AccessDeniedException"
    assert info.value.secret_id == name


def test_marked_for_deletion_is_deleted_through_serve(store: Any) -> None:
    from secretcache.errors import SecretDeletedError, SecretNotFoundError
    from tests.fixtures.contract import unique

    name, gone = unique(), unique()
    store.create(name, "v1")
    store.delete(name)
    with pytest.raises(SecretDeletedError) as info:
        store.backend.get_secret_value(name)
    assert info.value.code == "InvalidRequestException"
    store.create(gone, "v1")
    store.delete(gone, force=True)
    with pytest.raises(SecretNotFoundError):
        store.backend.get_secret_value(gone)
