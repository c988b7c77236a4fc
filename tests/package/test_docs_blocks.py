"""Every ``python`` block on every docs page (and the README) runs in a test, or is marked as a fragment.

The convention: a block that cannot run on its own (it needs a database, a real API, names defined
elsewhere, or shows a shape with ``...``) carries the line ``<!-- fragment -->`` directly above its
opening fence. Every other block runs here, page by page in order, one namespace per page, against moto
(in process) holding the secrets the pages name, with ``AWS_DEFAULT_REGION`` set. A new unmarked block
that does not run fails this test, naming the page and the block.

testing.md's blocks are pytest files, run by ``test_docs_snippets.test_testing_page_snippets_pass_under_pytest``.
The first ``secretcache serve`` examples of cli.md and serve.md are shell: they run here against moto's HTTP
server, as written (a free port instead of 2773).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import secretcache
from tests.fixtures.docs import create_secrets

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
FRAGMENT = "<!-- fragment -->"
# Pages whose python blocks another test runs, and how.
RUN_ELSEWHERE = {"testing.md": "tests/docs/test_docs_snippets.py (pytest files, run with pytester)",
                 "parameters.md": "tests/docs/test_docs_parameters.py (moto holding the page's parameters)"}
# Pages whose runnable blocks talk to a real server (redis.md's "Try it" run: Redis on 127.0.0.1:6379).
NEEDS_SERVERS = {"redis.md"}
# Pages that create their own secrets (try-without-aws.md shows how).
SEEDS_ITSELF = {"try-without-aws.md"}
MORE_SECRETS: dict[str, str] = {
    "prod/api-token": "example-api-token",
    "prod/keys": json.dumps({"stripe": "example-stripe-key"}),
    "prod/app": json.dumps({"api_key": "example-app-key", "db_port": "5432"}),
    "prod/smtp": json.dumps({"host": "127.0.0.1", "port": 25, "username": "app", "password": "pw"}),
}

_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", flags=re.DOTALL | re.MULTILINE)


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def page_name(path: Path) -> str:
    return path.relative_to(DOCS).as_posix() if path.is_relative_to(DOCS) else path.name


def python_blocks(path: Path) -> list[tuple[int, str, bool]]:
    """(line number of the fence, code, marked as a fragment) for each ``python`` block."""
    text = path.read_text(encoding="utf-8")
    found = []
    for match in _FENCE.finditer(text):
        if match[1] != "python":
            continue
        line = text.count("\n", 0, match.start()) + 1
        before = text[:match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        found.append((line, match[2], before.strip() == FRAGMENT))
    return found


@pytest.fixture
def isolated_process_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Snippets change os.environ, the working directory and the default cache: put them back afterwards."""
    environ = dict(os.environ)
    previous = secretcache.set_default_cache(None)
    for name in [n for n in os.environ if n.startswith("AWS_ENDPOINT_URL")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    try:
        yield
    finally:
        secretcache.set_default_cache(previous)
        os.environ.clear()
        os.environ.update(environ)


def test_fragment_markers_sit_directly_above_a_python_fence() -> None:
    """A marker anywhere else (a blank line between, another language) marks nothing: it is a mistake."""
    for path in pages():
        lines = path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines):
            if line.strip() == FRAGMENT:
                following = lines[number + 1] if number + 1 < len(lines) else ""
                assert following.startswith("```python"), (
                    f"{page_name(path)}:{number + 1}: {FRAGMENT} must be the line directly above a ```python fence")


def test_the_convention_covers_the_pages() -> None:
    runnable = sum(1 for path in pages() for _, _, fragment in python_blocks(path) if not fragment)
    assert runnable >= 20
    for page in RUN_ELSEWHERE:
        assert (DOCS / page).exists(), page


def page_params() -> list[Any]:
    return [pytest.param(p, id=page_name(p), marks=[pytest.mark.integration] if page_name(p) in NEEDS_SERVERS else [])
            for p in pages() if page_name(p) not in RUN_ELSEWHERE]


@pytest.mark.parametrize("path", page_params())
def test_unmarked_python_blocks_run(path: Path, isolated_process_state: None,
                                    monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import boto3
    from moto import mock_aws

    blocks = [(line, code) for line, code, fragment in python_blocks(path) if not fragment]
    if not blocks:
        return  # a page of prose and fragments only: nothing to run (the marker test checks the markers)
    page = page_name(path)
    monkeypatch.chdir(tmp_path)
    with mock_aws():
        if page not in SEEDS_ITSELF:
            client = boto3.client("secretsmanager", region_name="us-east-1")
            create_secrets(client)
            for name, value in MORE_SECRETS.items():
                client.create_secret(Name=name, SecretString=value)
        namespace: dict[str, Any] = {"__name__": f"docs_{Path(page).stem}"}
        try:
            for line, code in blocks:
                try:
                    exec(compile(code, f"{page}:{line}", "exec"), namespace)
                except Exception as e:
                    raise AssertionError(
                        f"{page}, the python block at line {line} failed: {type(e).__name__}: {e}. Make it run, "
                        f"or mark it with {FRAGMENT} on the line directly above its fence") from e
        finally:
            # What a page started (events.md's listener thread, caches) stops before moto's mock ends.
            from secretcache.events import EventListener

            for value in namespace.values():
                if isinstance(value, EventListener | secretcache.SecretCache):
                    value.close()


# --- the first serve examples of cli.md and serve.md, as written -----------------------------------------


def first_bash_block(page: str, containing: str) -> str:
    text = (DOCS / page).read_text(encoding="utf-8")
    for match in _FENCE.finditer(text):
        if match[1] == "bash" and containing in match[2]:
            return match[2]
    raise AssertionError(f"{page}: no bash block with {containing!r}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.integration
@pytest.mark.parametrize("page", ["cli.md", "serve.md"])
def test_the_first_serve_example_works_as_written(page: str, tmp_path: Path) -> None:
    """The block runs in bash from an empty directory: it makes its token, starts serve in the background,
    and curl gets the secret (200 and the GetSecretValue JSON), not a 403 for an empty header or an exit 2
    for a missing token file. Only the port differs (a free one), and `pip install` lines are left out."""
    import boto3

    from devtools.moto_helpers import moto_server

    port = free_port()
    script = first_bash_block(page, "secretcache serve")
    script = "\n".join(line for line in script.splitlines() if not line.startswith("pip install"))
    script = script.replace("secretcache serve", f"secretcache serve --port {port}").replace("2773", str(port))
    with moto_server() as endpoint:
        create_secrets(boto3.client("secretsmanager", endpoint_url=endpoint, region_name="us-east-1"))
        boto3.client("secretsmanager", endpoint_url=endpoint, region_name="us-east-1").create_secret(
            Name="prod/api-key-2", SecretString="unused")
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
                   AWS_ENDPOINT_URL_SECRETS_MANAGER=endpoint, AWS_ACCESS_KEY_ID="testing",
                   AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
        # Output to files, not pipes: serve, left running in the background by the example, keeps them open.
        with open(tmp_path / "out", "w") as out_file, open(tmp_path / "err", "w") as err_file:
            process = subprocess.Popen(["bash", "-e", "-c", script], cwd=tmp_path, env=env,
                                       stdin=subprocess.DEVNULL, stdout=out_file, stderr=err_file,
                                       start_new_session=True)
            try:
                process.wait(timeout=120)
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)  # serve, in the example's process group
        out = (tmp_path / "out").read_text()
        assert process.returncode == 0, (tmp_path / "err").read_text()
        answer = json.loads(out)
        assert answer["Name"] in ("prod/db", "prod/api-key")
        assert "SecretString" in answer
        assert (tmp_path / "token").stat().st_mode & 0o077 == 0  # the token file is the user's alone
