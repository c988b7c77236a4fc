"""The standard library front end (``--server stdlib``, used when the [serve] extra is not installed):
the same rules as test_serve.py, one server, the rules that live in the front end itself."""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any

import pytest

from devtools.faults import FaultProxy
from tests.fixtures.fix_canary import canary_value
from tests.fixtures.fix_serve import unique
from tests.fixtures.serving import TOKEN, Serve, serve_env, serving

pytestmark = pytest.mark.integration


def test_stdlib_serves_the_api_and_its_rules(proxy: FaultProxy, admin: Any) -> None:
    name, first, second = unique(), canary_value("s1"), canary_value("s2")
    admin.create_secret(Name=name, SecretString=first)
    with serving(proxy.url, "--server", "stdlib") as server:
        assert server.request("/ping", token=None) == (200, b"healthy")
        assert server.request(f"/v1/{name}", token=None)[0] == 403
        assert server.request(f"/v1/{name}", token="wrong")[0] == 403
        assert server.request("/ping", headers={"X-Forwarded-For": "1.2.3.4"})[0] == 400
        assert server.request(f"/v1/{name}", method="POST")[0] == 405
        status, body = server.request(f"/secretsmanager/get?secretId={name}")
        assert status == 200
        assert json.loads(body)["SecretString"] == first
        admin.put_secret_value(SecretId=name, SecretString=second)
        assert json.loads(server.request(f"/v1/{name}?refreshNow=true")[1])["SecretString"] == second
        status, body = server.request(f"/v1/{unique('missing')}")
        assert (status, json.loads(body)["__type"]) == (400, "ResourceNotFoundException")


def test_stdlib_bounds_connections_and_times_out_silent_clients(proxy: FaultProxy) -> None:
    with serving(proxy.url, "--server", "stdlib", "--max-conn", "2", "--idle-timeout", "1") as server:
        silent = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        held = server.connection()
        try:
            held.request("GET", "/ping")
            assert held.getresponse().read() == b"healthy"
            assert server.request("/ping", token=None) == (429, b"Connection limit exceeded")
            assert silent.recv(1) == b""  # closed after the idle timeout
        finally:
            silent.close()
            held.close()


def test_stdlib_drains_on_sigterm(proxy: FaultProxy, admin: Any) -> None:
    name, value = unique(), canary_value("drain")
    admin.create_secret(Name=name, SecretString=value)
    server = Serve(["--server", "stdlib", "--port", "0", "--endpoint-url", proxy.url],
                   serve_env({"AWS_TOKEN": TOKEN}))
    proxy.script("slow")
    result: list[Any] = []
    reader = threading.Thread(target=lambda: result.append(server.request(f"/v1/{name}")))
    reader.start()
    deadline = time.monotonic() + 10
    while proxy.count("GetSecretValue", name) == 0:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert server.stop() == 0
    reader.join(10)
    assert result
    assert result[0][0] == 200
