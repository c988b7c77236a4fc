"""Backends after a real ``os.fork()``: the child never uses the parent's sockets or locks.

Each test forks; the child runs a small check, reports a JSON line over a pipe and leaves with
``os._exit`` (never returning into pytest). Every wait has a timeout. The end-to-end fork tests through
the cache and gunicorn live elsewhere; these are at the backend level.
"""

from __future__ import annotations

import json
import os
import select
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from devtools.moto_helpers import moto_server
from secretcache.backends.agent import AgentBackend
from secretcache.backends.aws import AwsBackend
from tests.fixtures.fix_canary import canary_value

REGION = "us-east-1"
WAIT = 60.0

pytestmark = pytest.mark.integration  # moto's HTTP server


def in_child(check: Callable[[], dict[str, Any]], *, alongside: Callable[[], None] | None = None) -> dict[str, Any]:
    """Fork; the child runs ``check`` and reports its result (or its error); the parent runs
    ``alongside`` meanwhile, then waits (bounded) for the report and the child's exit."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 0
        try:
            os.close(read_end)
            try:
                report = check()
            except BaseException as e:  # report it rather than die silently
                report = {"error": f"{type(e).__name__}: {e}"}
                code = 1
            os.write(write_end, json.dumps(report).encode() + b"\n")
        finally:
            os._exit(code)
    os.close(write_end)
    try:
        if alongside is not None:
            alongside()
        data = b""
        deadline = time.monotonic() + WAIT
        while not data.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            assert remaining > 0, "the child never reported (deadlock?)"
            ready, _, _ = select.select([read_end], [], [], remaining)
            if ready:
                chunk = os.read(read_end, 65536)
                if not chunk:
                    break
                data += chunk
        assert data, "the child exited without a report"
        return dict(json.loads(data))
    finally:
        os.close(read_end)
        _reap(pid)


def _reap(pid: int) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return
        threading.Event().wait(0.01)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    raise AssertionError("the child did not exit")


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, dict[str, str]]]:
    """moto's HTTP server with a few secrets, behind the tests' HTTP/1.1 proxy: moto's server closes
    every connection, the proxy keeps them alive, as Secrets Manager does. (endpoint, {name: value})."""
    import boto3

    from devtools.faults import FaultProxy

    with moto_server() as upstream, FaultProxy(upstream) as proxy:
        admin = boto3.client("secretsmanager", region_name=REGION, endpoint_url=proxy.url)
        values = {f"fork/{i}": canary_value(f"fork{i}") for i in range(6)}
        for name, value in values.items():
            admin.create_secret(Name=name, SecretString=value)
        yield proxy.url, values


def pooled(client: Any) -> int:
    """How many connection pools the client's urllib3 PoolManager holds."""
    return len(client._endpoint.http_session._manager.pools)


def kept_alive(client: Any) -> int:
    """How many idle connections with an open socket the client's pools hold (keep-alive)."""
    pools = client._endpoint.http_session._manager.pools
    # keys(): urllib3's RecentlyUsedContainer refuses plain iteration.
    return sum(1 for key in pools.keys() for conn in list(pools[key].pool.queue)  # noqa: SIM118
               if conn is not None and getattr(conn, "sock", None) is not None)


def read_all(backend: AwsBackend, values: dict[str, str], rounds: int) -> list[str]:
    """Read every secret ``rounds`` times; the names whose answer was wrong or failed."""
    wrong = []
    for _ in range(rounds):
        for name, value in values.items():
            try:
                if backend.get_secret_value(name).secret_string != value:
                    wrong.append(name)
            except Exception as e:
                wrong.append(f"{name}: {type(e).__name__}")
    return wrong


def test_a_child_rebuilds_the_client_its_backend_built(server: tuple[str, dict[str, str]]) -> None:
    endpoint, values = server
    backend = AwsBackend(region_name=REGION, endpoint_url=endpoint)
    assert read_all(backend, values, 1) == []
    parent_client, parent_session = backend.client, backend._session
    assert kept_alive(parent_client) == 1  # a keep-alive connection the child must not write on

    def check() -> dict[str, Any]:
        fresh = backend.client
        return {"same_client": fresh is parent_client, "same_session": backend._session is parent_session,
                "parent_pool_untouched": pooled(parent_client), "wrong": read_all(backend, values, 2)}

    report = in_child(check)
    assert report == {"same_client": False, "same_session": False, "parent_pool_untouched": 1, "wrong": []}
    assert backend.client is parent_client  # the parent keeps its own
    assert read_all(backend, values, 1) == []


def test_a_child_empties_the_pool_of_a_client_it_was_given(server: tuple[str, dict[str, str]]) -> None:
    import boto3

    endpoint, values = server
    client = boto3.client("secretsmanager", region_name=REGION, endpoint_url=endpoint)
    backend = AwsBackend(client=client)
    assert read_all(backend, values, 1) == []
    assert pooled(client) == 1

    def check() -> dict[str, Any]:
        before = pooled(client)
        return {"pools": before, "same_client": backend.client is client, "wrong": read_all(backend, values, 2)}

    assert in_child(check) == {"pools": 0, "same_client": True, "wrong": []}
    assert pooled(client) == 1  # the parent's pool is its own
    assert read_all(backend, values, 1) == []


@pytest.mark.parametrize("given", [False, True], ids=["built", "given"])
def test_parent_and_child_read_correct_values_concurrently_over_keep_alive(
    server: tuple[str, dict[str, str]], given: bool
) -> None:
    import boto3

    endpoint, values = server
    if given:
        backend = AwsBackend(client=boto3.client("secretsmanager", region_name=REGION, endpoint_url=endpoint))
    else:
        backend = AwsBackend(region_name=REGION, endpoint_url=endpoint)
    assert read_all(backend, values, 1) == []
    assert kept_alive(backend.client) == 1  # both sides now hold the same open keep-alive connection
    parent_wrong: list[str] = []

    report = in_child(lambda: {"wrong": read_all(backend, values, 20)},
                      alongside=lambda: parent_wrong.extend(read_all(backend, values, 20)))
    assert report == {"wrong": []}
    assert parent_wrong == []


def test_a_lock_held_in_the_parent_at_the_fork_does_not_block_the_child(
    server: tuple[str, dict[str, str]],
) -> None:
    endpoint, values = server
    backend = AwsBackend(region_name=REGION, endpoint_url=endpoint)
    assert read_all(backend, values, 1) == []
    with backend._lock:  # as a parent thread building a failover client at the instant of the fork
        report = in_child(lambda: {"wrong": read_all(backend, values, 1)})
    assert report == {"wrong": []}


def test_an_agent_backend_takes_a_fresh_lock_in_the_child() -> None:
    backend = AgentBackend("http://127.0.0.1:2773", token="t")
    with backend._lock:
        report = in_child(lambda: {"free": backend._lock.acquire(timeout=5)})
    assert report == {"free": True}


def test_dropped_backends_are_not_kept_alive_for_fork_handling() -> None:
    import gc
    import weakref

    from secretcache.backends import _fork

    backend = AwsBackend(region_name=REGION)
    ref = weakref.ref(backend)
    assert backend in _fork._live
    del backend
    gc.collect()
    assert ref() is None
