"""Helpers for tests against moto: fault injection through botocore's ``before-send`` hook,
API-call counting, and moto's HTTP server on 127.0.0.1 (research/test-infra.md §1-§2).

Never run ``mock_aws`` and the HTTP server at the same time in one process: they share moto's state.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from secretcache.testing import FAULTS

__all__ = ["count_calls", "inject", "moto_server", "moto_server_fixture", "uninject"]

Step = str | float | threading.Event | None
"""One HTTP attempt's fate: a name from ``secretcache.testing.FAULTS`` (``"throttle"``: 400
ThrottlingException, ``"5xx"``: 500 InternalServiceError, ``"denied"``: 400 AccessDeniedException),
``"conn"`` (EndpointConnectionError), ``"closed"``
(ConnectionClosedError), ``"timeout"`` (ReadTimeoutError), a float (sleep that long, then pass), an Event
(wait for it, then pass: a deterministic gate), or None (pass through to moto)."""

_UID = "secretcache-test-fault"


class _Raw:
    """What ``AWSResponse`` needs from a urllib3 response."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def aws_error_response(status: int, code: str, message: str = "injected") -> Any:
    from botocore.awsrequest import AWSResponse

    body = json.dumps({"__type": code, "message": message}).encode()
    headers = {"content-type": "application/x-amz-json-1.1"}
    return AWSResponse("https://fault.invalid", status, headers, _Raw(body))


def inject(client: Any, *plan: Step, op: str = "GetSecretValue", then: Step = None,
           service: str = "secrets-manager") -> list[Step]:
    """Give each HTTP attempt of ``op`` on ``client`` the next step of ``plan``, then ``then`` forever.

    Returns the list of steps taken (its length is the number of HTTP attempts). Registered first, so
    it runs before moto's own in-process hook. Replaces any earlier injection on the same operation.
    """
    from botocore.exceptions import ConnectionClosedError, EndpointConnectionError, ReadTimeoutError

    steps, seen = list(plan), []
    lock = threading.Lock()

    def hook(request: Any, **_: Any) -> Any:
        with lock:
            step = steps.pop(0) if steps else then
            seen.append(step)
        if isinstance(step, str) and step in FAULTS:
            code, status, message = FAULTS[step]
            return aws_error_response(status, code, message)
        if step == "conn":
            raise EndpointConnectionError(endpoint_url=request.url)
        if step == "closed":
            raise ConnectionClosedError(endpoint_url=request.url)
        if step == "timeout":
            raise ReadTimeoutError(endpoint_url=request.url)
        if isinstance(step, float):
            threading.Event().wait(step)
        elif isinstance(step, threading.Event):
            assert step.wait(10.0), "injected gate never opened"
        elif step is not None:
            raise ValueError(f"unknown fault step {step!r}")
        return None

    uninject(client, op, service=service)
    client.meta.events.register_first(f"before-send.{service}.{op}", hook, unique_id=f"{_UID}-{op}")
    return seen


def uninject(client: Any, op: str = "GetSecretValue", *, service: str = "secrets-manager") -> None:
    client.meta.events.unregister(f"before-send.{service}.{op}", unique_id=f"{_UID}-{op}")


def count_calls(client: Any, op: str, *, service: str = "secrets-manager") -> list[dict[str, Any]]:
    """Record the parameters of every API call (not HTTP attempt) of ``op`` made through ``client``
    (``service="ssm"`` for a Parameter Store client)."""
    calls: list[dict[str, Any]] = []

    def hook(params: Any, **_: Any) -> None:
        calls.append(dict(params))

    client.meta.events.register(f"before-parameter-build.{service}.{op}", hook,
                                unique_id=f"secretcache-count-{op}")
    return calls


def reset_moto_server(endpoint: str) -> None:
    with urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"),
                                timeout=10) as response:
        assert response.status == 200


@contextmanager
def moto_server() -> Iterator[str]:
    """moto's HTTP server on 127.0.0.1 (an ephemeral port), reset, for the duration; yields its URL.

    A missing ``moto[server]`` (flask, werkzeug) raises ImportError: the test errors, it never skips.
    """
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        reset_moto_server(endpoint)
        yield endpoint
    finally:
        server.stop()


def moto_server_fixture(scope: str = "module") -> Callable[..., Iterator[str]]:
    """A pytest fixture (of ``scope``) yielding a running moto server's URL. Tests using it need the
    ``integration`` mark (``pytest.mark.integration``), so ``-m "not integration"`` deselects them."""

    @pytest.fixture(scope=scope)  # type: ignore[call-overload]
    def _moto_server() -> Iterator[str]:
        with moto_server() as endpoint:
            yield endpoint

    return _moto_server  # type: ignore[no-any-return]
