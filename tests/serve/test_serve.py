"""``secretcache serve`` in a subprocess, the AWS side on moto's HTTP server behind a fault proxy:
every rule of the Agent's API it speaks, each with a test (docs/serve.md)."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from devtools.faults import FaultProxy
from tests.fixtures.fix_canary import canary_value
from tests.fixtures.fix_serve import unique
from tests.fixtures.serving import TOKEN, Serve, serve_env, serving

pytestmark = pytest.mark.integration

H = "X-Aws-Parameters-Secrets-Token"


def get(server: Serve, secret_id: str, query: str = "", **kwargs: Any) -> tuple[int, Any]:
    status, body = server.request(f"/secretsmanager/get?secretId={secret_id}{query}", **kwargs)
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body.decode()


@pytest.fixture(scope="module")
def served(proxy: FaultProxy) -> Any:
    with serving(proxy.url) as server:
        yield server


# -- the routes ------------------------------------------------------------------------------------

def test_ping_answers_healthy_without_a_token(served: Serve) -> None:
    assert served.request("/ping", token=None) == (200, b"healthy")


def test_query_and_path_styles_return_the_get_secret_value_json(served: Serve, admin: Any) -> None:
    name, value = unique(), canary_value("routes")
    arn = admin.create_secret(Name=name, SecretString=value)["ARN"]
    status, doc = get(served, name)
    assert status == 200
    assert doc["SecretString"] == value
    assert doc["Name"] == name
    assert doc["ARN"] == arn
    assert doc["VersionStages"] == ["AWSCURRENT"]
    assert doc["VersionId"]
    assert float(doc["CreatedDate"]) > 0
    status, body = served.request(f"/v1/{name}")
    assert status == 200
    assert json.loads(body) == doc
    status, body = served.request(f"/v1/{arn}?versionStage=AWSCURRENT")
    assert status == 200
    assert json.loads(body)["SecretString"] == value


def test_version_stage_and_version_id_select_versions(served: Serve, admin: Any) -> None:
    name, first, second = unique(), canary_value("v1"), canary_value("v2")
    first_id = admin.create_secret(Name=name, SecretString=first)["VersionId"]
    second_id = admin.put_secret_value(SecretId=name, SecretString=second)["VersionId"]
    assert get(served, name)[1]["SecretString"] == second
    status, doc = get(served, name, "&versionStage=AWSPREVIOUS")
    assert (status, doc["SecretString"], doc["VersionId"]) == (200, first, first_id)
    status, doc = get(served, name, f"&versionId={first_id}")
    assert (status, doc["SecretString"]) == (200, first)
    status, doc = served.request(f"/v1/{name}?versionId={second_id}")
    assert status == 200
    assert json.loads(doc)["SecretString"] == second


def test_binary_secrets_come_back_base64(served: Serve, admin: Any) -> None:
    name, value = unique(), b"\x00\xffbinary" + canary_value("bin").encode()
    admin.create_secret(Name=name, SecretBinary=value)
    status, doc = get(served, name)
    assert status == 200
    assert "SecretString" not in doc
    assert base64.b64decode(doc["SecretBinary"]) == value


def test_unknown_parameters_paths_and_a_missing_secret_id_are_refused(served: Serve) -> None:
    assert served.request("/secretsmanager/get?secretId=a&jsonKey=x") == (400, b"unknown parameter: jsonKey")
    assert served.request("/secretsmanager/get")[0] == 400
    assert served.request("/secretsmanager/get?secretId=a&refreshNow=maybe")[0] == 400
    assert served.request("/elsewhere")[0] == 404


# -- the SSRF rules -------------------------------------------------------------------------------

def test_a_missing_or_wrong_token_is_403(served: Serve, admin: Any) -> None:
    name = unique()
    admin.create_secret(Name=name, SecretString=canary_value("tok"))
    assert get(served, name, token=None) == (403, "Bad Token")
    assert get(served, name, token="wrong") == (403, "Bad Token")
    assert get(served, name, token=TOKEN[:-1]) == (403, "Bad Token")
    assert get(served, name, token=None, headers={"X-Vault-Token": TOKEN})[0] == 200


def accepts(server: Serve, token: str | None) -> bool:
    """Whether ``token`` passes (no upstream call: past the token check, an unknown path is 404)."""
    status = server.request("/nowhere", token=token)[0]
    assert status in (403, 404)
    return status == 404


@pytest.mark.parametrize("variable", ["AWS_TOKEN", "AWS_SESSION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN"])
def test_the_token_comes_from_each_variable(proxy: FaultProxy, variable: str) -> None:
    with serving(proxy.url, token=None, env={variable: f"tok-{variable}"}) as server:
        assert accepts(server, f"tok-{variable}")
        assert not accepts(server, TOKEN)
        assert not accepts(server, None)


def test_the_first_set_variable_wins(proxy: FaultProxy) -> None:
    env = {"AWS_SESSION_TOKEN": "second", "AWS_CONTAINER_AUTHORIZATION_TOKEN": "third"}
    with serving(proxy.url, token=None, env=env) as server:
        assert accepts(server, "second")
        assert not accepts(server, "third")


def test_the_token_comes_from_a_file_url_and_from_token_file(proxy: FaultProxy, tmp_path: Path) -> None:
    (tmp_path / "tok").write_text("from-file\n")
    with serving(proxy.url, token=f"file://{tmp_path / 'tok'}") as server:
        assert accepts(server, "from-file")
        assert not accepts(server, f"file://{tmp_path / 'tok'}")
    (tmp_path / "tok2").write_text("option-file")
    with serving(proxy.url, "--token-file", str(tmp_path / "tok2"), token="ignored") as server:
        assert accepts(server, "option-file")
        assert not accepts(server, "ignored")


def test_without_a_configured_token_loopback_still_needs_the_header(proxy: FaultProxy) -> None:
    with serving(proxy.url, token=None) as server:
        assert not accepts(server, None)
        assert accepts(server, "anything")


def test_an_unreadable_token_file_refuses_to_start(proxy: FaultProxy, tmp_path: Path) -> None:
    server = Serve(["--port", "0", "--endpoint-url", proxy.url],
                   serve_env({"AWS_TOKEN": f"file://{tmp_path / 'missing'}"}), must_start=False)
    assert server.proc.wait(10) == 2
    assert "token" in server.stderr


def test_any_forwarded_header_is_400(served: Serve) -> None:
    status, body = served.request("/secretsmanager/get?secretId=x", headers={"X-Forwarded-For": "10.0.0.1"})
    assert (status, body) == (400, b"Forwarded")
    assert served.request("/ping", token=None, headers={"X-Forwarded-For": "127.0.0.1"})[0] == 400


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"])
def test_methods_other_than_get_are_405(served: Serve, method: str) -> None:
    assert served.request("/secretsmanager/get?secretId=x", method=method)[0] == 405


def test_a_non_loopback_host_without_a_token_refuses_to_start(proxy: FaultProxy) -> None:
    server = Serve(["--host", "0.0.0.0", "--port", "0", "--endpoint-url", proxy.url], serve_env(),  # nosec B104
                   must_start=False)
    assert server.proc.wait(10) == 2
    assert "refusing" in server.stderr
    assert "token" in server.stderr


def test_a_non_loopback_host_with_a_token_starts(proxy: FaultProxy) -> None:
    with serving(proxy.url, "--host", "0.0.0.0") as server:  # nosec B104
        assert server.request("/ping", token=None) == (200, b"healthy")
        assert accepts(server, TOKEN)
        assert not accepts(server, "other")


# -- reading through the cache ---------------------------------------------------------------------

def test_reads_are_cached_and_refresh_now_forces_one_fetch(served: Serve, admin: Any, proxy: FaultProxy) -> None:
    name, first, second = unique(), canary_value("r1"), canary_value("r2")
    admin.create_secret(Name=name, SecretString=first)
    for _ in range(5):
        assert get(served, name)[1]["SecretString"] == first
    assert proxy.count("GetSecretValue", name) == 1
    admin.put_secret_value(SecretId=name, SecretString=second)
    assert get(served, name)[1]["SecretString"] == first  # within ttl
    for flag in ("true", "1"):
        status, doc = get(served, name, f"&refreshNow={flag}")
        assert (status, doc["SecretString"]) == (200, second)
    assert proxy.count("GetSecretValue", name) == 3
    assert get(served, name)[1]["SecretString"] == second
    assert get(served, name, "&refreshNow=false")[1]["SecretString"] == second
    assert proxy.count("GetSecretValue", name) == 3


@pytest.mark.parametrize(("mode", "status", "code"), [
    ("ResourceNotFoundException", 400, "ResourceNotFoundException"),
    ("denied", 400, "AccessDeniedException"),
    ("DecryptionFailure", 400, "DecryptionFailure"),
    ("InvalidRequestException", 400, "InvalidRequestException"),
    ("throttle", 400, "ThrottlingException"),
    ("5xx", 500, "InternalServiceError"),
])
def test_upstream_errors_keep_their_status_and_code(
    served: Serve, admin: Any, proxy: FaultProxy, mode: str, status: int, code: str
) -> None:
    name = unique()
    admin.create_secret(Name=name, SecretString=canary_value("err"))
    proxy.fail(mode)
    got, doc = get(served, name)
    proxy.clear()
    assert (got, doc["__type"]) == (status, code)
    assert isinstance(doc["message"], str)
    assert "sc-canary" not in doc["message"]


def test_a_missing_secret_is_resource_not_found_and_agent_backend_types_it(served: Serve) -> None:
    from secretcache.backends.agent import AgentBackend
    from secretcache.errors import SecretNotFoundError

    status, doc = get(served, unique("missing"))
    assert (status, doc["__type"]) == (400, "ResourceNotFoundException")
    with pytest.raises(SecretNotFoundError) as caught:
        AgentBackend(served.url, token=TOKEN).get_secret_value(unique("missing"))
    assert caught.value.code == "ResourceNotFoundException"


def test_an_unreachable_upstream_is_502_connection_error(served: Serve, proxy: FaultProxy) -> None:
    proxy.fail("rst")
    status, doc = get(served, unique())
    assert (status, doc["__type"]) == (502, "ConnectionError")


def test_stale_values_are_served_during_an_upstream_outage(proxy: FaultProxy, admin: Any) -> None:
    name, value = unique(), canary_value("stale")
    admin.create_secret(Name=name, SecretString=value)
    with serving(proxy.url, "--ttl", "0.5", "--stale-while-revalidate", "0") as server:
        assert get(server, name)[1]["SecretString"] == value
        proxy.fail("5xx")
        before = proxy.count("GetSecretValue", name)
        deadline = time.monotonic() + 10
        while proxy.count("GetSecretValue", name) == before:  # the refresh is attempted, and fails
            assert time.monotonic() < deadline
            time.sleep(0.6)
            assert get(server, name) == (200, get(server, name)[1])
            assert get(server, name)[1]["SecretString"] == value
        # refreshNow has no stale fallback, as the Agent: the error is returned
        status, doc = get(server, name, "&refreshNow=true")
        assert (status, doc["__type"]) == (500, "InternalServiceError")
        assert get(server, name)[1]["SecretString"] == value
        proxy.clear()
    assert "canary" not in server.stderr


# -- connections and lifecycle ---------------------------------------------------------------------

def test_a_client_that_sends_nothing_blocks_no_one_and_is_timed_out(proxy: FaultProxy) -> None:
    with serving(proxy.url, "--idle-timeout", "1", "--max-conn", "3") as server:
        silent = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        try:
            assert server.request("/ping", token=None) == (200, b"healthy")
            silent.settimeout(10)
            assert silent.recv(1) == b""  # closed by the server after the idle timeout
        finally:
            silent.close()


def test_connections_over_max_conn_get_429(proxy: FaultProxy) -> None:
    with serving(proxy.url, "--max-conn", "2", "--idle-timeout", "5") as server:
        held = [server.connection() for _ in range(2)]
        try:
            for conn in held:
                conn.request("GET", "/ping")
                assert conn.getresponse().read() == b"healthy"
            status, body = server.request("/ping", token=None)
            assert (status, body) == (429, b"Connection limit exceeded")
        finally:
            for conn in held:
                conn.close()
        deadline = time.monotonic() + 10
        while server.request("/ping", token=None)[0] != 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_keep_alive_connections_serve_many_requests(served: Serve, admin: Any) -> None:
    name, value = unique(), canary_value("ka")
    admin.create_secret(Name=name, SecretString=value)
    conn = served.connection()
    try:
        for _ in range(20):
            conn.request("GET", f"/v1/{name}", headers={H: TOKEN})
            response = conn.getresponse()
            assert response.status == 200
            assert json.loads(response.read())["SecretString"] == value
    finally:
        conn.close()


def test_sigterm_drains_a_request_in_flight_and_exits_0(proxy: FaultProxy, admin: Any) -> None:
    name, value = unique(), canary_value("drain")
    admin.create_secret(Name=name, SecretString=value)
    server = Serve(["--port", "0", "--endpoint-url", proxy.url], serve_env({"AWS_TOKEN": TOKEN}))
    idle = server.connection()
    idle.request("GET", "/ping")
    assert idle.getresponse().read() == b"healthy"  # an idle keep-alive connection does not hold the exit
    proxy.script("slow")  # the upstream answer takes 1.5 s
    result: list[Any] = []
    reader = threading.Thread(target=lambda: result.append(get(server, name)))
    reader.start()
    deadline = time.monotonic() + 10
    while proxy.count("GetSecretValue", name) == 0:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert server.stop() == 0
    reader.join(10)
    idle.close()
    assert result
    assert result[0][0] == 200
    assert result[0][1]["SecretString"] == value


def test_a_unix_socket_serves_the_same_api(proxy: FaultProxy, admin: Any, tmp_path: Path) -> None:
    name, value = unique(), canary_value("unix")
    admin.create_secret(Name=name, SecretString=value)
    path = str(tmp_path / "sc.sock")
    server = Serve(["--unix-socket", path, "--endpoint-url", proxy.url], serve_env({"AWS_TOKEN": TOKEN}))
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(10)
        sock.connect(path)
        conn = http.client.HTTPConnection("localhost", timeout=10)
        conn.sock = sock
        conn.request("GET", f"/secretsmanager/get?secretId={name}", headers={H: TOKEN})
        response = conn.getresponse()
        assert response.status == 200
        assert json.loads(response.read())["SecretString"] == value
        conn.close()
    finally:
        assert server.stop() == 0
    assert not Path(path).exists()
