"""botocore's DEBUG logging never shows a secret: the filter of ``secretcache/backends/_redact.py``.

Every ``botocore*``, ``boto3*`` and ``urllib3*`` logger and the root logger are put at DEBUG with a
capturing handler, canary secrets go through GetSecretValue, BatchGetSecretValue and the rotation
framework's PutSecretValue (over moto's HTTP server and in-process moto), and no record may show a
canary, while the records that used to show one (request params, response bodies) are still there.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from devtools.moto_helpers import inject, moto_server
from secretcache.backends import _redact
from secretcache.backends.aws import AwsBackend
from secretcache.rotation import PostgresSingleUser, RotationHandler
from tests.fixtures.fix_canary import CANARY, canary_value

REGION = "us-east-1"
PREFIXES = ("botocore", "boto3", "urllib3")


class Capture(logging.Handler):
    """Keeps every record's final message and formatted exception text."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[tuple[str, str]] = []
        self._formatter = logging.Formatter()

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + self._formatter.formatException(record.exc_info)
        if record.exc_text:
            text += "\n" + record.exc_text
        self.records.append((record.name, text))

    def leaks(self) -> list[str]:
        return [f"{name}: {text[:120]}" for name, text in self.records if CANARY in text]

    def messages(self, logger: str) -> list[str]:
        return [text for name, text in self.records if name == logger]


@pytest.fixture
def debug_logs() -> Iterator[Capture]:
    """Root and every botocore/boto3/urllib3 logger at DEBUG, captured; levels restored afterwards."""
    import boto3  # noqa: F401  (so that their loggers exist to be listed)
    import botocore.endpoint
    import botocore.parsers  # noqa: F401
    import urllib3  # noqa: F401

    capture = Capture()
    names = [n for n in list(logging.root.manager.loggerDict) if n.split(".")[0] in PREFIXES]
    loggers = [logging.getLogger(n) for n in names] + [logging.getLogger(p) for p in PREFIXES]
    saved = [(lg, lg.level) for lg in loggers] + [(logging.root, logging.root.level)]
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
    logging.root.setLevel(logging.DEBUG)
    logging.root.addHandler(capture)
    try:
        yield capture
    finally:
        logging.root.removeHandler(capture)
        for lg, level in saved:
            lg.setLevel(level)


def rds_secret(tag: str) -> str:
    return json.dumps({"engine": "postgres", "host": "127.0.0.1", "port": 5432, "dbname": "app",
                       "username": "app", "password": canary_value(f"{tag}-pw"), "note": canary_value(tag)})


def exercise(admin: Any, backend: AwsBackend, rotation_client: Any) -> None:
    """Create canary secrets, read them every way the backend does, and rotate one (PutSecretValue).

    The backend's client exists before the first call that carries a value (the admin's CreateSecret):
    the filter comes with it, and from then on covers every client in the process.
    """
    for i in range(3):
        admin.create_secret(Name=f"log/{i}", SecretString=rds_secret(f"log{i}"))
    admin.create_secret(Name="log/bin", SecretBinary=canary_value("bin").encode())
    for i in range(3):
        assert CANARY in (backend.get_secret_value(f"log/{i}").secret_string or "")
    assert CANARY.encode() in (backend.get_secret_value("log/bin").secret_binary or b"")
    values, errors = backend.batch_get_secret_values(["log/0", "log/1", "log/2", "log/bin"])
    assert len(values) == 4
    assert not errors
    # A throttled first attempt: botocore's retry path logs too.
    inject(backend.client, "throttle")
    assert CANARY in (backend.get_secret_value("log/1").secret_string or "")
    # createSecret: reads AWSCURRENT and PUTs a pending version carrying the canary fields.
    handler = RotationHandler(rotation_client, PostgresSingleUser(), check_rotation_enabled=False)
    handler.run_step("createSecret", "log/0", "11111111-2222-3333-4444-555555555555", new_version=True)
    pending = admin.get_secret_value(SecretId="log/0", VersionStage="AWSPENDING")
    assert CANARY in pending["SecretString"]


def assert_redacted(capture: Capture) -> None:
    assert capture.leaks() == []
    # Not vacuous: the records that carried the values were captured, redacted rather than dropped.
    bodies = [m for m in capture.messages("botocore.parsers") if m.startswith("Response body")]
    params = [m for m in capture.messages("botocore.endpoint") if m.startswith("Making request for")]
    assert len(bodies) >= 7
    assert all(_redact.REDACTED in m for m in bodies)
    assert len(params) >= 7
    assert all(_redact.REDACTED in m for m in params)
    assert len(capture.records) > 50


@pytest.mark.integration
def test_debug_logs_over_http_never_show_a_secret(debug_logs: Capture) -> None:
    import boto3

    with moto_server() as endpoint:
        backend = AwsBackend(region_name=REGION, endpoint_url=endpoint)
        backend.client  # noqa: B018  (built now: see exercise())
        admin = boto3.client("secretsmanager", region_name=REGION, endpoint_url=endpoint)
        rotation = boto3.client("secretsmanager", region_name=REGION, endpoint_url=endpoint)
        exercise(admin, backend, rotation)
    assert_redacted(debug_logs)
    # urllib3 really did log the HTTP exchanges (request lines, no bodies).
    assert any(name.startswith("urllib3") for name, _ in debug_logs.records)


def test_debug_logs_in_process_never_show_a_secret(debug_logs: Capture) -> None:
    import boto3
    from moto import mock_aws

    with mock_aws():
        backend = AwsBackend(client=boto3.client("secretsmanager", region_name=REGION))
        admin = boto3.client("secretsmanager", region_name=REGION)
        exercise(admin, backend, boto3.client("secretsmanager", region_name=REGION))
    assert_redacted(debug_logs)


def test_a_backend_installs_the_filter_when_given_a_client_and_when_building_one() -> None:
    import boto3
    from moto import mock_aws

    def filtered() -> list[bool]:
        return [_redact._REDACTOR in logging.getLogger(n).filters for n in _redact.REDACTED_LOGGERS]

    def remove() -> None:
        for name in _redact.REDACTED_LOGGERS:
            logging.getLogger(name).removeFilter(_redact._REDACTOR)

    try:
        with mock_aws():
            remove()
            AwsBackend(client=boto3.client("secretsmanager", region_name=REGION))
            assert all(filtered())
            remove()
            backend = AwsBackend(region_name=REGION)
            assert not any(filtered())  # nothing is built before the first use
            backend.client  # noqa: B018
            assert all(filtered())
            remove()
            RotationHandler(backend.client, PostgresSingleUser())
            assert all(filtered())
    finally:
        _redact.install()  # the rest of the session keeps its filter whatever happened here


def test_installing_twice_puts_one_filter_on_each_logger() -> None:
    _redact.install()
    _redact.install()
    for name in _redact.REDACTED_LOGGERS:
        assert logging.getLogger(name).filters.count(_redact._REDACTOR) == 1


def _record(msg: object, args: Any, exc_info: Any = None) -> logging.LogRecord:
    return logging.LogRecord("botocore.parsers", logging.DEBUG, __file__, 1, msg, args, exc_info)


def test_the_filter_keeps_the_record_and_its_template_but_not_its_arguments() -> None:
    secret = canary_value("args")
    record = _record("Response body:\n%r (%d%%)", (secret.encode(), 5))
    assert _redact._REDACTOR.filter(record) is True
    assert record.getMessage() == f"Response body:\n{_redact.REDACTED} ({_redact.REDACTED}%)"
    named = _record("%(body)s", ({"body": secret},))
    _redact._REDACTOR.filter(named)
    assert named.getMessage() == _redact.REDACTED
    constant = _record("Waiting for 100 Continue response.", None)
    _redact._REDACTOR.filter(constant)
    assert constant.getMessage() == "Waiting for 100 Continue response."
    not_a_string = _record({"SecretString": secret}, None)
    _redact._REDACTOR.filter(not_a_string)
    assert CANARY not in not_a_string.getMessage()


def test_the_filter_drops_exception_text_but_names_the_exception() -> None:
    secret = canary_value("exc")
    try:
        raise ValueError(f"invalid JSON received: {secret}")
    except ValueError:
        record = _record("Exception received when sending HTTP request.", None, sys.exc_info())
    _redact._REDACTOR.filter(record)
    text = logging.Formatter().format(record)
    assert CANARY not in text
    assert "Exception received when sending HTTP request." in text
    assert "ValueError" in text
