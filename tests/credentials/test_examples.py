"""The examples of docs/credentials.md (examples/credentials/): each runs as a script and prints what the
page says, and the SMTP one holds the policy's promises against its in-process server."""

from __future__ import annotations

import json
import smtplib
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from secretcache import SecretCache
from secretcache.config import CacheConfig
from secretcache.credentials import auth_stats
from secretcache.testing import InMemoryBackend
from tests.fixtures.examples import EXAMPLES, load, run_example
from tests.fixtures.fix_canary import CANARY, canary_value

CREDENTIALS = EXAMPLES / "credentials"


def test_every_credentials_example_is_tested() -> None:
    assert sorted(p.name for p in CREDENTIALS.glob("*.py")) == ["smtp_login.py", "tcp_login.py"]


def test_the_smtp_example_runs() -> None:
    assert run_example("credentials/smtp_login.py").splitlines() == [
        "sent with the cached password",
        "sent during the rotation, with AWSPENDING",
        "sent after the rotation",
        "refused logins: 1, forced refreshes: 1, AWSPENDING reads: 1, gave up: 0",
        "wrong password everywhere: SMTPAuthenticationError 535",
    ]


def test_the_tcp_example_runs() -> None:
    assert run_example("credentials/tcp_login.py").splitlines() == [
        "every thread logged in through 3 rotations: True, failed logins: 0",
        "gave up: 0, AWSPENDING logins: True",
        "a wrong password: LoginRefused (user 'ledger' was denied)",
    ]


@pytest.fixture
def smtp() -> Iterator[tuple[Any, Any]]:
    module = load("credentials/smtp_login")
    server = module.DemoSmtpServer("mailer", canary_value("smtp"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield module, server
    server.shutdown()
    server.server_close()
    thread.join(10)


def secret_for(server: Any, password: str) -> str:
    host, port = server.server_address[:2]
    return json.dumps({"host": host, "port": port, "username": "mailer", "password": password})


def test_smtp_a_rotated_password_is_picked_up_with_one_refresh(smtp: tuple[Any, Any]) -> None:
    module, server = smtp
    backend = InMemoryBackend({module.SECRET: secret_for(server, server.password)})
    with SecretCache(backend, config=CacheConfig(ttl=3600)) as cache:
        module.send_report(cache)
        new = canary_value("smtp-new")
        backend.rotate(module.SECRET, secret_for(server, new))
        server.password = new
        module.send_report(cache)
        stats = auth_stats(module.SECRET, cache=cache)
    assert (stats.auth_failures, stats.refreshes, stats.gave_up) == (1, 1, 0)


def test_smtp_a_wrong_password_raises_smtplibs_error_after_at_most_three_logins(smtp: tuple[Any, Any]) -> None:
    module, server = smtp
    backend = InMemoryBackend({module.SECRET: secret_for(server, canary_value("wrong"))})
    with SecretCache(backend) as cache, pytest.raises(smtplib.SMTPAuthenticationError) as info:
        module.send_report(cache)
    assert 1 <= server.refused <= 3
    notes = " ".join(getattr(info.value, "__notes__", []))
    assert repr(module.SECRET) in notes
    assert CANARY not in notes + str(info.value)


def test_smtp_a_server_that_is_down_refreshes_nothing(smtp: tuple[Any, Any]) -> None:
    module, server = smtp
    value = secret_for(server, server.password)
    server.shutdown()
    server.server_close()  # nobody listens on that port any more
    backend = InMemoryBackend({module.SECRET: value})
    with SecretCache(backend) as cache, pytest.raises(OSError):
        module.send_report(cache)
    assert backend.count() == 1
    assert auth_stats(module.SECRET, cache=cache).refreshes == 0
