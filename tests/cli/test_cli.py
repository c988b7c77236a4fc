"""The ``secretcache`` command: ``get`` and ``run`` end to end in a subprocess against moto's HTTP server,
and the usage errors in process."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools.moto_helpers import moto_server
from secretcache.cli import main
from tests.fixtures.fix_canary import CANARY, canary_value

PY = sys.executable
TIMEOUT = 60
REPO = str(Path(__file__).resolve().parents[2])


class Secrets:
    """The secrets created in moto for this module, and their values (canaries)."""

    def __init__(self, endpoint: str) -> None:
        import boto3

        self.endpoint = endpoint
        client = boto3.client("secretsmanager", endpoint_url=endpoint, region_name="us-east-1")
        self.password = canary_value("pw")
        self.token = canary_value("token")
        self.old_token = canary_value("old")
        self.blob = CANARY.encode() + b"\x00\xff\n"
        db = {"username": "app", "password": self.password, "port": 5432}
        self.db_arn = client.create_secret(Name="cli/db", SecretString=json.dumps(db))["ARN"]
        client.create_secret(Name="cli/token", SecretString=self.old_token)
        client.put_secret_value(SecretId="cli/token", SecretString=self.token)  # old one becomes AWSPREVIOUS
        client.create_secret(Name="cli/blob", SecretBinary=self.blob)


@pytest.fixture(scope="module")
def aws() -> Iterator[Secrets]:
    with moto_server() as endpoint:
        yield Secrets(endpoint)


def child_env(aws: Secrets, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SC_")}
    # The subprocesses import the code under test from this checkout, as the in-process tests do.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, env.get("PYTHONPATH")) if p)
    env.update(AWS_ENDPOINT_URL_SECRETS_MANAGER=aws.endpoint, AWS_ACCESS_KEY_ID="testing",
               AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1", AWS_REGION="us-east-1")
    env.update(extra)
    return env


def cli(aws: Secrets, *args: str, env: dict[str, str] | None = None,
        **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([PY, "-m", "secretcache", *args], env=env if env is not None else child_env(aws),
                          capture_output=True, stdin=subprocess.DEVNULL, timeout=TIMEOUT, check=False,
                          **kwargs)


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


# The child reports each variable's sha256 (never the value) so the test can check what it received.
REPORT = textwrap.dedent("""
    import hashlib, json, os, sys
    names = sys.argv[1:]
    print(json.dumps({n: (hashlib.sha256(os.environ[n].encode()).hexdigest() if n in os.environ else None)
                      for n in names}))
""")


def report(result: subprocess.CompletedProcess[bytes]) -> dict[str, str | None]:
    assert result.returncode == 0, result.stderr.decode()
    return json.loads(result.stdout)  # type: ignore[no-any-return]


integration = pytest.mark.integration  # tests that use moto's HTTP server (the `aws` fixture)


# -- get ------------------------------------------------------------------------------------------


@integration
def test_get_prints_the_value_and_a_newline_to_stdout_only(aws: Secrets) -> None:
    result = cli(aws, "get", "cli/token")
    assert result.returncode == 0
    assert result.stdout == aws.token.encode() + b"\n"
    assert result.stderr == b""
    assert cli(aws, "get", "-n", "cli/token").stdout == aws.token.encode()


@integration
def test_get_reads_json_keys_stages_and_every_reference_form(aws: Secrets) -> None:
    assert cli(aws, "get", "-n", "cli/db#password").stdout == aws.password.encode()
    assert cli(aws, "get", "-n", "cli/db#port").stdout == b"5432"
    assert cli(aws, "get", "-n", f"{aws.db_arn}:password::").stdout == aws.password.encode()
    assert cli(aws, "get", "-n", "{{resolve:secretsmanager:cli/db:SecretString:username}}").stdout == b"app"
    previous = cli(aws, "get", "-n", "cli/token", "--version-stage", "AWSPREVIOUS")
    assert previous.stdout == aws.old_token.encode()


@integration
def test_get_writes_a_binary_secret_as_raw_bytes(aws: Secrets) -> None:
    assert cli(aws, "get", "cli/blob").stdout == aws.blob


@integration
def test_get_honours_region_and_endpoint_url_options(aws: Secrets) -> None:
    env = child_env(aws)
    del env["AWS_ENDPOINT_URL_SECRETS_MANAGER"]
    result = cli(aws, "get", "-n", "cli/token", "--endpoint-url", aws.endpoint, "--region", "us-east-1",
                 env=env)
    assert result.stdout == aws.token.encode()


@integration
def test_get_a_missing_secret_exits_1_naming_it(aws: Secrets) -> None:
    result = cli(aws, "get", "cli/nope")
    assert result.returncode == 1
    assert result.stdout == b""
    assert b"cli/nope" in result.stderr
    assert b"error" in result.stderr


@integration
def test_get_a_missing_key_or_a_binary_as_json_exits_1_without_the_value(aws: Secrets) -> None:
    for reference, named in (("cli/db#nope", b"nope"), ("cli/blob#key", b"cli/blob")):
        result = cli(aws, "get", reference)
        assert result.returncode == 1
        assert named in result.stderr
        assert CANARY.encode() not in result.stderr + result.stdout


@integration
def test_get_a_malformed_reference_is_a_usage_error(aws: Secrets) -> None:
    result = cli(aws, "get", "not a reference")
    assert result.returncode == 2
    assert b"invalid secret reference" in result.stderr


# -- run ------------------------------------------------------------------------------------------


@integration
def test_run_resolves_references_in_the_child_and_leaves_plain_values(aws: Secrets, tmp_path: Path) -> None:
    env = child_env(
        aws,
        SC_ECS=f"{aws.db_arn}:password::",
        SC_URL="postgres://app:{{resolve:secretsmanager:cli/db:SecretString:password}}@db/app",
        SC_PLAIN="plain value",
        SC_NAME_ONLY="cli/token",
    )
    names = ["SC_ECS", "SC_URL", "SC_PLAIN", "SC_NAME_ONLY", "SC_FLAG"]
    result = cli(aws, "run", "--env", "SC_FLAG=cli/token", "--", PY, "-c", REPORT, *names, env=env)
    assert report(result) == {
        "SC_ECS": digest(aws.password),
        "SC_URL": digest(f"postgres://app:{aws.password}@db/app"),
        "SC_PLAIN": digest("plain value"),
        "SC_NAME_ONLY": digest("cli/token"),  # a plain value: only --env values may use the short forms
        "SC_FLAG": digest(aws.token),
    }
    assert CANARY.encode() not in result.stdout + result.stderr


@integration
def test_run_reads_env_files_in_order_and_flags_win(aws: Secrets, tmp_path: Path) -> None:
    first, second = tmp_path / "first.env", tmp_path / "second.env"
    first.write_text("# references and plain values\n"
                     "SC_A='{{resolve:secretsmanager:cli/db:SecretString:username}}'\n"
                     "SC_B=from-first\nSC_C=from-first\n", encoding="utf-8")
    second.write_text("export SC_B=\"from-second\"\n", encoding="utf-8")
    result = cli(aws, "run", "--env-file", str(first), "--env-file", str(second), "--env", "SC_C=cli/token",
                 "--", PY, "-c", REPORT, "SC_A", "SC_B", "SC_C", env=child_env(aws))
    assert report(result) == {"SC_A": digest("app"), "SC_B": digest("from-second"), "SC_C": digest(aws.token)}


@integration
def test_run_no_override_keeps_variables_already_set(aws: Secrets, tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("SC_A=from-file\nSC_B=from-file\n", encoding="utf-8")
    env = child_env(aws, SC_A="from-environment", SC_C="{{resolve:secretsmanager:cli/token}}")
    args = ["--env-file", str(env_file), "--env", "SC_C=cli/db#username",
            "--", PY, "-c", REPORT, "SC_A", "SC_B", "SC_C"]
    assert report(cli(aws, "run", "--no-override", *args, env=env)) == {
        "SC_A": digest("from-environment"), "SC_B": digest("from-file"),
        "SC_C": digest(aws.token),  # kept, and resolved where it was
    }
    assert report(cli(aws, "run", *args, env=env)) == {
        "SC_A": digest("from-file"), "SC_B": digest("from-file"), "SC_C": digest("app"),
    }


@integration
@pytest.mark.parametrize("code", [0, 3, 255])
def test_run_passes_the_exit_code_through(aws: Secrets, code: int) -> None:
    result = cli(aws, "run", "--", PY, "-c", f"raise SystemExit({code})")
    assert result.returncode == code


@integration
def test_run_leaves_the_childs_stdout_and_stderr_untouched(aws: Secrets) -> None:
    script = ("import sys; sys.stdout.buffer.write(b'out\\x00\\xff\\n'); sys.stdout.flush(); "
              "sys.stderr.buffer.write(b'err\\r\\n')")
    result = cli(aws, "run", "--", PY, "-c", script)
    assert (result.returncode, result.stdout, result.stderr) == (0, b"out\x00\xff\n", b"err\r\n")


@integration
def test_run_passes_stdin_through(aws: Secrets) -> None:
    reverse = "import sys; print(sys.stdin.read()[::-1])"
    result = subprocess.run([PY, "-m", "secretcache", "run", "--", PY, "-c", reverse],
                            env=child_env(aws), input=b"abc", capture_output=True, timeout=TIMEOUT,
                            check=False)
    assert result.stdout == b"cba\n"


def _start_waiting_child(aws: Secrets, handler: str) -> subprocess.Popen[bytes]:
    script = f"import signal, sys, time\n{handler}\nprint('ready', flush=True)\ntime.sleep({TIMEOUT})\n"
    proc = subprocess.Popen([PY, "-m", "secretcache", "run", "--", PY, "-c", script], env=child_env(aws),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"ready\n"
    return proc


@integration
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_forwarded_signal_that_kills_the_child_gives_128_plus_its_number(aws: Secrets, sig: int,
                                                                            code: int) -> None:
    proc = _start_waiting_child(aws, f"signal.signal({int(sig)}, signal.SIG_DFL)")
    proc.send_signal(sig)  # to `secretcache run`, which passes it on
    assert proc.wait(timeout=TIMEOUT) == code
    assert proc.stderr is not None
    assert proc.stderr.read() == b""


@integration
def test_a_forwarded_signal_the_child_handles_gives_the_childs_own_exit_code(aws: Secrets) -> None:
    proc = _start_waiting_child(aws, "signal.signal(signal.SIGINT, lambda *a: sys.exit(7))")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=TIMEOUT) == 7


@integration
def test_run_a_missing_secret_exits_1_naming_the_variable_and_does_not_start_the_command(
    aws: Secrets, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    env = child_env(aws, SC_GOOD="{{resolve:secretsmanager:cli/token}}",
                    SC_BAD="{{resolve:secretsmanager:cli/nope}}")
    result = cli(aws, "run", "--", PY, "-c", f"open({str(marker)!r}, 'w')", env=env)
    assert result.returncode == 1
    assert b"'SC_BAD'" in result.stderr
    assert b"cli/nope" in result.stderr
    assert CANARY.encode() not in result.stderr + result.stdout
    assert result.stdout == b""
    assert not marker.exists()


@integration
def test_run_a_missing_json_key_exits_1_without_a_value(aws: Secrets) -> None:
    result = cli(aws, "run", "--env", "SC_X=cli/db#nope", "--", PY, "-c", "pass")
    assert result.returncode == 1
    assert b"SC_X" in result.stderr
    assert b"nope" in result.stderr
    assert CANARY.encode() not in result.stderr


@integration
def test_run_a_malformed_reference_in_the_environment_exits_1(aws: Secrets) -> None:
    env = child_env(aws, SC_BAD="arn:aws:secretsmanager:us-east-1:123456789012:secret:cli/db:password")
    result = cli(aws, "run", "--", PY, "-c", "pass", env=env)
    assert result.returncode == 1
    assert b"'SC_BAD'" in result.stderr
    assert b"valueFrom" in result.stderr


@integration
def test_run_without_references_does_not_load_boto3(aws: Secrets) -> None:
    script = "import sys; print('boto3' in sys.modules or 'botocore' in sys.modules)"
    assert cli(aws, "run", "--", PY, "-c", script).stdout == b"False\n"  # the child, a fresh process
    probe = ("import sys; from secretcache.cli import main; code = main(['run', '--', 'true']); "
             "print(code, 'boto3' in sys.modules)")
    assert subprocess.run([PY, "-c", probe], capture_output=True, timeout=TIMEOUT, check=True, cwd="/",
                          env=child_env(aws)).stdout == b"0 False\n"


@integration
def test_python_dash_m_and_the_console_script_are_the_same_command(aws: Secrets) -> None:
    script = Path(PY).parent / "secretcache"
    if not script.exists():
        pytest.fail(f"the console script {script} is missing: is the package installed?")
    result = subprocess.run([str(script), "get", "-n", "cli/token"], env=child_env(aws), capture_output=True,
                            timeout=TIMEOUT, check=False)
    assert result.stdout == aws.token.encode()


# -- usage (in process, no AWS needed) ------------------------------------------------------------


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("args", [
    ["run", "python", "app.py"],
    ["run", "--env", "A=cli/token", "python"],
    ["run", "--env-file", ".env"],
])
def test_run_without_double_dash_is_a_usage_error_with_the_usage_line(capsys: pytest.CaptureFixture[str],
                                                                      args: list[str]) -> None:
    code, out, err = run_main(capsys, *args)
    assert code == 2
    assert "usage: secretcache run" in err
    assert "put -- before the command" in err
    assert out == ""


def test_run_with_nothing_after_double_dash_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(capsys, "run", "--")
    assert code == 2
    assert "give a command after --" in err


@pytest.mark.parametrize(("flag", "message"), [
    ("A", "--env takes NAME=REFERENCE"),
    ("=cli/token", "--env takes NAME=REFERENCE"),
    ("A=", "--env takes NAME=REFERENCE"),
    ("A=bad reference", "--env A: invalid secret reference"),
])
def test_a_bad_env_flag_is_a_usage_error(capsys: pytest.CaptureFixture[str], flag: str, message: str) -> None:
    code, _, err = run_main(capsys, "run", "--env", flag, "--", "true")
    assert code == 2
    assert message in err


def test_an_unreadable_or_malformed_env_file_is_a_usage_error(capsys: pytest.CaptureFixture[str],
                                                             tmp_path: Path) -> None:
    code, _, err = run_main(capsys, "run", "--env-file", str(tmp_path / "missing.env"), "--", "true")
    assert code == 2
    assert "cannot read env file" in err
    bad = tmp_path / "bad.env"
    bad.write_text(f"A=1\n{CANARY} is not a binding\n", encoding="utf-8")
    code, _, err = run_main(capsys, "run", "--env-file", str(bad), "--", "true")
    assert code == 2
    assert "line 2" in err
    assert CANARY not in err


def test_run_a_missing_command_exits_127(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(capsys, "run", "--", "secretcache-no-such-command")
    assert code == 127
    assert "command not found" in err


def test_help_explains_the_commands_with_examples(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(capsys, "--help")
    assert code == 0
    for text in ("get", "run", "demo", "examples:",
                 "secretcache run --env DB_PASSWORD=prod/db#password -- python",
                 "exit codes", "prod/db#password", "{{resolve:secretsmanager:"):
        assert text in out
    code, out, _ = run_main(capsys, "run", "--help")
    assert code == 0
    for text in ("--env NAME=REFERENCE", "--env-file FILE", "--no-override", "-- COMMAND", "examples:"):
        assert text in out
    code, out, _ = run_main(capsys, "get", "--help")
    assert code == 0
    assert "--version-stage" in out
    assert "examples:" in out


def test_version_and_unknown_commands(capsys: pytest.CaptureFixture[str]) -> None:
    from secretcache import __version__

    code, out, _ = run_main(capsys, "--version")
    assert code == 0
    assert __version__ in out
    code, _, err = run_main(capsys, "frobnicate")
    assert code == 2
    assert "invalid choice" in err
    code, _, err = run_main(capsys)
    assert code == 2
    code, _, err = run_main(capsys, "get", "cli/token", "extra")
    assert code == 2
    assert "unrecognized arguments" in err


def test_demo_is_delegated_to_the_demo_module(capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    seen: list[list[str]] = []
    fake = types.ModuleType("secretcache.demo")
    fake.main = lambda argv: seen.append(list(argv)) or 5  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "secretcache.demo", fake)
    assert main(["demo", "--quick", "x"]) == 5
    assert seen == [["--quick", "x"]]


def _no_aws_configuration(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def test_a_missing_region_names_the_region_option(capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _no_aws_configuration(monkeypatch, tmp_path)
    assert main(["get", "cli/token"]) == 1
    err = capsys.readouterr().err
    assert "no AWS Region configured" in err
    assert "pass --region" in err
    assert "region_name=" not in err


def test_missing_credentials_name_no_library_keyword(capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _no_aws_configuration(monkeypatch, tmp_path)
    assert main(["get", "cli/token", "--region", "us-east-1", "--endpoint-url", "http://127.0.0.1:9"]) == 1
    err = capsys.readouterr().err
    assert "no usable AWS credentials" in err
    assert "session=" not in err
    assert "client=" not in err


def test_serve_log_level_takes_any_case_and_warn() -> None:
    from secretcache.serve._main import _log_level

    assert [_log_level(s) for s in ("info", "INFO", "Debug", "warn", "WARN", "warning")] == [
        "INFO", "INFO", "DEBUG", "WARNING", "WARNING", "WARNING"]


def test_serve_help_reads_at_one_width() -> None:
    env = dict(os.environ, COLUMNS="80")
    done = subprocess.run([sys.executable, "-m", "secretcache", "serve", "--help"], env=env,  # nosec B603
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    body = done.stdout.split("examples:")[0]  # the epilog's command lines stay as written
    assert max(len(line) for line in body.splitlines()) <= 80
