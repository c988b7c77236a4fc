"""Parameters over HTTP, on moto's HTTP server: ``secretcache serve``'s ``/systemsmanager/parameters/get`` (the
Parameters and Secrets Lambda Extension's request and body, the same token rules), ``AgentBackend`` reading
``ssm:`` ids through it, and the ``secretcache`` command's ``get`` / ``run`` with parameter references."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools.faults import FaultProxy
from secretcache import SecretCache
from secretcache.backends import AgentBackend, AwsBackend
from secretcache.errors import SecretAccessDeniedError, SecretNotFoundError
from tests.fixtures.fix_canary import CANARY, canary_value
from tests.fixtures.fix_serve import unique
from tests.fixtures.serving import TOKEN, Serve, serving

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
OPS = ("GetParameter", "GetParameters", "GetParametersByPath")


@pytest.fixture(scope="module")
def ssm_proxy(moto_url: str) -> Iterator[FaultProxy]:
    with FaultProxy(moto_url, ops=OPS) as proxy:
        yield proxy


@pytest.fixture(autouse=True)
def _clear(ssm_proxy: FaultProxy) -> Iterator[None]:
    yield
    ssm_proxy.clear()


@pytest.fixture(scope="module")
def ssm(moto_url: str) -> Any:
    import boto3

    return boto3.client("ssm", region_name="us-east-1", endpoint_url=moto_url)


@pytest.fixture(scope="module")
def served(ssm_proxy: FaultProxy) -> Iterator[Serve]:
    with serving(ssm_proxy.url) as server:
        yield server


def name() -> str:
    return "/" + unique("serve/p")


def get(server: Serve, query: str, **kwargs: Any) -> tuple[int, Any]:
    status, body = server.request(f"/systemsmanager/parameters/get?{query}", **kwargs)
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body.decode()


def test_the_extensions_request_gets_get_parameters_body(served: Serve, ssm: Any) -> None:
    param, value = name(), canary_value("serve-param")
    ssm.put_parameter(Name=param, Value=value, Type="SecureString")
    status, doc = get(served, f"name={param}&withDecryption=true")
    assert status == 200
    assert set(doc) == {"Parameter", "ResultMetadata"}
    body = doc["Parameter"]
    assert body["Name"] == param
    assert body["Value"] == value  # decrypted
    assert body["Type"] == "SecureString"
    assert body["Version"] == 1
    assert body["DataType"] == "text"
    assert body["ARN"] == f"arn:aws:ssm:us-east-1:123456789012:parameter{param}"
    assert isinstance(body["LastModifiedDate"], float)
    assert "Selector" not in body


def test_version_and_label_select_and_say_so(served: Serve, ssm: Any) -> None:
    param = name()
    ssm.put_parameter(Name=param, Value="one", Type="String")
    ssm.put_parameter(Name=param, Value="two", Type="String", Overwrite=True)
    ssm.label_parameter_version(Name=param, ParameterVersion=1, Labels=["blue"])
    assert get(served, f"name={param}")[1]["Parameter"]["Value"] == "two"
    by_version = get(served, f"name={param}&version=1")[1]["Parameter"]
    assert (by_version["Value"], by_version["Version"], by_version["Selector"]) == ("one", 1, ":1")
    by_label = get(served, f"name={param}&label=blue")[1]["Parameter"]
    assert (by_label["Value"], by_label["Selector"]) == ("one", ":blue")
    assert get(served, f"name={param}:1")[1]["Parameter"]["Value"] == "one"  # the selector in the name
    status, doc = get(served, f"name={param}&version=1&label=blue")
    assert (status, doc["__type"]) == (400, "ValidationException")


def test_the_same_token_rules_apply(served: Serve, ssm: Any) -> None:
    param = name()
    ssm.put_parameter(Name=param, Value=canary_value("tok"), Type="SecureString")
    assert get(served, f"name={param}", token=None)[0] == 403
    assert get(served, f"name={param}", token="wrong")[0] == 403
    status, body = get(served, f"name={param}", headers={"X-Forwarded-For": "10.0.0.1"})
    assert status == 400
    assert CANARY not in str(body)
    assert get(served, f"name={param}", method="POST")[0] == 405
    assert get(served, f"name={param}", headers={"X-Vault-Token": TOKEN}, token=None)[0] == 200


def test_a_missing_parameter_is_400_parameter_not_found(served: Serve) -> None:
    status, doc = get(served, f"name={name()}")
    assert status == 400
    assert doc["__type"] == "ParameterNotFound"


def test_bad_requests_are_400(served: Serve) -> None:
    assert get(served, "")[0] == 400
    assert get(served, "name=/x&nope=1")[0] == 400
    assert get(served, "name=/x&withDecryption=maybe")[0] == 400
    status, doc = get(served, "name=a/b")  # a hierarchy starts with /
    assert (status, doc["__type"]) == (400, "ValidationException")


def test_reads_are_cached_one_get_parameter_per_ttl(served: Serve, ssm: Any, ssm_proxy: FaultProxy) -> None:
    param = name()
    ssm.put_parameter(Name=param, Value="v", Type="String")
    before = ssm_proxy.count("GetParameter")
    for _ in range(5):
        assert get(served, f"name={param}")[1]["Parameter"]["Value"] == "v"
    assert ssm_proxy.count("GetParameter") == before + 1


def test_agent_backend_reads_ssm_ids_through_serve(served: Serve, ssm: Any) -> None:
    param, value = name(), canary_value("agent")
    ssm.put_parameter(Name=param, Value=json.dumps({"password": value}), Type="SecureString")
    ssm.put_parameter(Name=param, Value=json.dumps({"password": "newer"}), Type="SecureString", Overwrite=True)
    ssm.label_parameter_version(Name=param, ParameterVersion=1, Labels=["blue"])
    with SecretCache(AgentBackend(served.url, token=TOKEN)) as cache:
        assert cache.get(f"ssm:{param}#password") == "newer"
        first = cache.get_secret_value(f"ssm:{param}", version_id="1")
        assert first.json() == {"password": value}
        assert first.version_id == "1"
        blue = cache.get_secret_value(f"ssm:{param}", version_stage="blue")
        assert "blue" in blue.version_stages
        assert blue.version_id == "1"
        assert blue.name == param
        assert CANARY not in repr(blue)
        with pytest.raises(SecretNotFoundError) as missing:
            cache.get(f"ssm:{name()}")
        assert missing.value.code == "ParameterNotFound"
    with pytest.raises(SecretAccessDeniedError):
        AgentBackend(served.url, token="wrong").get_secret_value(f"ssm:{param}")


def test_serve_answers_through_stale_if_error_during_an_ssm_outage(ssm: Any, ssm_proxy: FaultProxy) -> None:
    param = name()
    ssm.put_parameter(Name=param, Value="kept", Type="String")
    with serving(ssm_proxy.url, "--ttl", "1") as server:
        assert get(server, f"name={param}")[1]["Parameter"]["Value"] == "kept"
        ssm_proxy.fail("5xx")
        import time

        time.sleep(1.2)  # past ttl (the outage is what is tested, not the timing)
        for _ in range(3):
            status, doc = get(server, f"name={param}")
            assert (status, doc["Parameter"]["Value"]) == (200, "kept")


# -- the command ------------------------------------------------------------------------------------

def command(moto_url: str, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(PYTHONPATH=str(ROOT), AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
               AWS_DEFAULT_REGION="us-east-1", AWS_ENDPOINT_URL_SSM=moto_url,
               AWS_ENDPOINT_URL_SECRETS_MANAGER=moto_url, **extra)
    return subprocess.run([sys.executable, "-m", "secretcache", *args], env=env, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL, check=False)


def test_secretcache_get_reads_parameters_and_their_json_keys(moto_url: str, ssm: Any) -> None:
    param, value = name(), canary_value("cli-get")
    ssm.put_parameter(Name=param, Value=json.dumps({"key": value}), Type="SecureString")
    got = command(moto_url, "get", f"ssm:{param}#key")
    assert (got.returncode, got.stdout, got.stderr) == (0, value + "\n", "")
    got = command(moto_url, "get", f"ssm:{param}", "--version-id", "1")
    assert got.returncode == 0
    assert json.loads(got.stdout) == {"key": value}
    missing = command(moto_url, "get", f"ssm:{name()}")
    assert missing.returncode == 1
    assert "ParameterNotFound" in missing.stderr
    assert CANARY not in missing.stderr


def test_secretcache_run_puts_parameters_in_the_environment(moto_url: str, ssm: Any) -> None:
    param, value = name(), canary_value("cli-run")
    ssm.put_parameter(Name=param, Value=json.dumps({"pw": value}), Type="SecureString")
    arn = ssm.get_parameter(Name=param)["Parameter"]["ARN"]
    check = ("import os, json; e = os.environ; "
             "print(e['A'] == e['B'] == e['C'] == json.loads(e['D'])['pw'], e['PLAIN'])")
    got = command(moto_url, "run", "--env", f"A=ssm:{param}#pw", "--env", f"B={arn}#pw",
                  "--", sys.executable, "-c", check,
                  C=f"{arn}#pw",  # the ECS valueFrom form, already in the environment
                  D="{{resolve:ssm-secure:" + param + "}}", PLAIN="ssm:/not/resolved/as/a/plain/value")
    assert (got.returncode, got.stdout, got.stderr) == (0, "True ssm:/not/resolved/as/a/plain/value\n", "")


def test_aws_backend_endpoint_url_serves_parameters_too(moto_url: str, ssm: Any) -> None:
    param = name()
    ssm.put_parameter(Name=param, Value="via-endpoint", Type="String")
    with SecretCache(AwsBackend(region_name="us-east-1", endpoint_url=moto_url)) as cache:
        assert cache.get(f"ssm:{param}") == "via-endpoint"
