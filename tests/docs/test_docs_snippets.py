"""The code on the docs pages of the everyday surface runs, as written.

- ``python`` blocks of decorators.md, environment.md, lambda.md and compat.md run in order, one namespace
  per page, against moto (in process) holding the secrets the pages name;
- testing.md's ``python`` blocks are pytest files (first line ``# path/name.py``), run with pytester;
- cli.md's ``console`` blocks are shell sessions: each ``$`` line (``>`` continues it) runs in bash
  against moto's HTTP server, and the output must match the lines shown.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import secretcache
from tests.fixtures.docs import create_secrets

pytest_plugins = ["pytester"]

DOCS = Path(__file__).resolve().parents[2] / "docs"
PYTHON_PAGES = ["decorators.md", "environment.md", "lambda.md", "compat.md"]

def blocks(page: str, language: str) -> list[str]:
    text = (DOCS / page).read_text(encoding="utf-8")
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)


@pytest.fixture
def isolated_process_state() -> Iterator[None]:
    """Snippets change os.environ and the default cache: put both back afterwards."""
    environ = dict(os.environ)
    previous = secretcache.set_default_cache(None)
    try:
        yield
    finally:
        secretcache.set_default_cache(previous)
        os.environ.clear()
        os.environ.update(environ)


def test_every_page_has_runnable_snippets() -> None:
    for page in PYTHON_PAGES:
        assert blocks(page, "python"), page
    assert len(blocks("testing.md", "python")) >= 4
    assert len(blocks("cli.md", "console")) >= 3


@pytest.mark.parametrize("page", PYTHON_PAGES)
def test_python_snippets_run(page: str, isolated_process_state: None,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3
    from moto import mock_aws

    monkeypatch.chdir(DOCS)
    with mock_aws():
        create_secrets(boto3.client("secretsmanager", region_name="us-east-1"))
        namespace: dict[str, Any] = {"__name__": f"docs_{page[:-3]}"}
        for number, code in enumerate(blocks(page, "python"), 1):
            try:
                exec(compile(code, f"{page} block {number}", "exec"), namespace)
            except Exception as e:
                raise AssertionError(f"{page}, python block {number} failed: {type(e).__name__}: {e}") from e


def test_testing_page_snippets_pass_under_pytest(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    paths = []
    for code in blocks("testing.md", "python"):
        first = code.splitlines()[0]
        match = re.fullmatch(r"# ([\w/]+\.py)", first)
        assert match, f"a testing.md block must start with '# <path>.py', got {first!r}"
        path = pytester.path / match[1]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(code, encoding="utf-8")
        paths.append(match[1])
    assert "uncached/conftest.py" in paths
    result = pytester.runpytest("-p", "no:cacheprovider", "-q")
    tests = sum(len(re.findall(r"^def test_", code, flags=re.MULTILINE))
                for code in blocks("testing.md", "python"))
    result.assert_outcomes(passed=tests)


def console_sessions(page: str) -> list[tuple[str, str]]:
    """(bash script, expected output) for each console block."""
    sessions = []
    for block in blocks(page, "console"):
        commands: list[str] = []
        expected: list[str] = []
        for line in block.splitlines():
            if line.startswith("$ "):
                commands.append(line[2:])
            elif line.startswith("> ") or line == ">":
                commands[-1] += "\n" + line[2:]
            else:
                expected.append(line)
        sessions.append(("\n".join(commands) + "\n", "".join(f"{line}\n" for line in expected)))
    return sessions


@pytest.mark.integration
def test_cli_page_sessions_print_what_the_page_shows(tmp_path: Path) -> None:
    import boto3

    from devtools.moto_helpers import moto_server

    repo = str(DOCS.parent)
    with moto_server() as endpoint:
        create_secrets(boto3.client("secretsmanager", endpoint_url=endpoint, region_name="us-east-1"))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DATABASE_URL", "API_KEY"))}
        env.update(
            PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
            PYTHONPATH=os.pathsep.join(p for p in (repo, env.get("PYTHONPATH")) if p),
            AWS_ENDPOINT_URL_SECRETS_MANAGER=endpoint, AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1",
        )
        for number, (script, expected) in enumerate(console_sessions("cli.md"), 1):
            result = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120,
                                    check=False)
            assert result.stdout == expected, f"cli.md console block {number}:\n{script}"
