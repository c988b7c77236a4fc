"""The default cache configured by SECRETCACHE_BACKEND / SECRETCACHE_AGENT_URL / SECRETCACHE_TTL, each case in
a fresh interpreter (the variables are read when the default cache is first built): files, the agent, a
files-then-AWS chain, the CLI, and bad values (``import secretcache`` succeeds; the first read fails naming
the variable, and so does every read after it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from devtools.atomic_writer import AtomicWriter
from devtools.canary import CANARY, canary_value
from devtools.moto_helpers import moto_server_fixture

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 120
moto_endpoint = moto_server_fixture("module")


def python(code: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SECRETCACHE_")}
    return subprocess.run([sys.executable, *args] if args else [sys.executable, "-c", code],
                          env={**clean, **env}, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT)


@pytest.fixture
def mount(tmp_path: Path) -> tuple[Path, str]:
    value = canary_value("mounted")
    AtomicWriter(tmp_path / "mnt").write({"app_db": json.dumps({"password": value}), "app_key": value})
    return tmp_path / "mnt", value


READ = """
import secretcache
from secretcache import inject_secret
print("imported")
@inject_secret("app/db#password", into="password")
def handler(password):
    return password
cache = secretcache.default_cache()
print(type(cache.config.ttl).__name__, cache.config.ttl)
print(secretcache.get("app/key") == handler() == {expected!r})
"""


def test_files_backend_and_ttl_from_the_environment(mount: tuple[Path, str]) -> None:
    root, value = mount
    done = python(READ.format(expected=value), {"SECRETCACHE_BACKEND": f"files:{root}", "SECRETCACHE_TTL": "7.5"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:3] == ["imported", "float 7.5", "True"]
    assert CANARY not in done.stdout + done.stderr


def test_unset_and_aws_mean_the_defaults() -> None:
    code = "import secretcache, sys; print(secretcache.default_cache().config.ttl, 'boto3' in sys.modules)"
    for env in ({}, {"SECRETCACHE_BACKEND": "aws", "SECRETCACHE_TTL": ""}, {"SECRETCACHE_BACKEND": " aws "}):
        done = python(code, env)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["300.0", "False"]  # the AwsBackend is still built on first fetch


@pytest.mark.integration
def test_files_then_aws_chain_reads_what_the_files_lack_from_aws(mount: tuple[Path, str], moto_endpoint: str) -> None:
    import boto3

    root, value = mount
    aws_value = canary_value("aws")
    client = boto3.client("secretsmanager", endpoint_url=moto_endpoint, region_name="us-east-1")
    client.create_secret(Name="only/aws", SecretString=aws_value)
    code = f"""
import secretcache
print(secretcache.get("app/key") == {value!r}, secretcache.get("only/aws") == {aws_value!r})
"""
    done = python(code, {"SECRETCACHE_BACKEND": f"files:{root}, aws",
                         "AWS_ENDPOINT_URL_SECRETS_MANAGER": moto_endpoint})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True"]


class _Agent(BaseHTTPRequestHandler):
    secrets: dict[str, str] = {}
    seen: list[str] = []

    def do_GET(self) -> None:
        from urllib.parse import parse_qs, urlsplit

        secret_id = parse_qs(urlsplit(self.path).query)["secretId"][0]
        self.seen.append(self.headers.get("X-Aws-Parameters-Secrets-Token", ""))
        body = json.dumps({"Name": secret_id, "ARN": None, "VersionId": "v1", "VersionStages": ["AWSCURRENT"],
                           "SecretString": self.secrets[secret_id]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def agent() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Agent)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_agent_backend_at_the_configured_url(agent: str) -> None:
    value = canary_value("agent")
    _Agent.secrets = {"app/key": value}
    _Agent.seen = []
    code = f"import secretcache; print(secretcache.get('app/key') == {value!r})"
    done = python(code, {"SECRETCACHE_BACKEND": "agent", "SECRETCACHE_AGENT_URL": agent, "AWS_TOKEN": "tok"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True"]
    assert _Agent.seen == ["tok"]


def test_the_cli_reads_through_the_configured_backend(mount: tuple[Path, str]) -> None:
    root, value = mount
    env = {"SECRETCACHE_BACKEND": f"files:{root}"}
    done = python("", env, "-m", "secretcache", "get", "app/db#password")
    assert (done.returncode, done.stdout) == (0, value + "\n"), done.stderr
    done = python("", env, "-m", "secretcache", "run", "--env", "PW=app/db#password", "--", sys.executable, "-c",
                  f"import os; print(os.environ['PW'] == {value!r})")
    assert (done.returncode, done.stdout) == (0, "True\n"), done.stderr


BAD = [
    ({"SECRETCACHE_BACKEND": "vault"}, "SECRETCACHE_BACKEND", "unknown backend 'vault'"),
    ({"SECRETCACHE_BACKEND": "files:"}, "SECRETCACHE_BACKEND", "needs the mount's directory"),
    ({"SECRETCACHE_BACKEND": "files:/mnt/x,,aws"}, "SECRETCACHE_BACKEND", "an empty entry"),
    ({"SECRETCACHE_TTL": "five"}, "SECRETCACHE_TTL", "number of seconds"),
    ({"SECRETCACHE_TTL": "-1"}, "SECRETCACHE_TTL", "number of seconds"),
    ({"SECRETCACHE_TTL": "nan"}, "SECRETCACHE_TTL", "number of seconds"),
    ({"SECRETCACHE_BACKEND": "agent", "SECRETCACHE_AGENT_URL": "ftp://host"}, "SECRETCACHE_AGENT_URL", "http(s) URL"),
]


@pytest.mark.parametrize(("env", "variable", "why"), BAD)
def test_a_bad_value_lets_the_import_succeed_and_fails_every_read_naming_the_variable(
    env: dict[str, str], variable: str, why: str
) -> None:
    code = """
import secretcache
print("imported")
for _ in range(2):
    try:
        secretcache.get("app/key")
    except secretcache.SecretCacheError as e:
        print(type(e).__name__, "|", e)
"""
    done = python(code, env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "imported"
    assert len(lines) == 3
    for line in lines[1:]:
        assert line.startswith("SecretCacheError | $" + variable), line
        assert why in line


def test_the_cli_reports_a_bad_value_naming_the_variable() -> None:
    done = python("", {"SECRETCACHE_BACKEND": "nope"}, "-m", "secretcache", "get", "app/key")
    assert done.returncode == 1
    assert "SECRETCACHE_BACKEND" in done.stderr
    assert "Traceback" not in done.stderr
