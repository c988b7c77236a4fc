"""``secretcache demo`` end to end, in a subprocess: zero failed queries across rotations, bounded API calls,
no password in its output, nothing left behind."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from secretcache.demo import support as demo_support
from secretcache.demo.localdb import DbAccount, DbServer, admin_connect
from tests.fixtures.fix_canary import CANARY

ROOT = Path(__file__).resolve().parents[2]

# Runs the demo with every password it creates carrying the canary, so the output can be searched for them.
WRAPPER = """
import os, secrets, sys
canary = os.environ["DEMO_CANARY"]
from secretcache.demo import localdb
from secretcache.rotation import passwords
localdb._random_password = lambda length=24: canary + secrets.token_hex(8)
passwords.PasswordPolicy.generate = lambda self: canary + secrets.token_hex(8) + "Aa1"
from secretcache.demo import main
sys.exit(main(sys.argv[1:]))
"""


def run_demo(*args: str, extra_env: dict[str, str] | None = None, timeout: float = 180) -> tuple[int, str]:
    env = {**os.environ, "DEMO_CANARY": CANARY, **(extra_env or {})}
    proc = subprocess.run([sys.executable, "-c", WRAPPER, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def figure(output: str, pattern: str) -> int:
    match = re.search(pattern, output)
    assert match, f"{pattern!r} not in the demo's output:\n{output}"
    return int(match.group(1).replace(",", ""))


def assert_clean_pass(output: str, rotations: int) -> None:
    assert "PASS: no query failed across the rotations" in output, output
    assert figure(output, r"queries +ok ([\d,]+)") > 0
    assert figure(output, r"queries +ok [\d,]+, failed (\d+)") == 0
    assert figure(output, rf"rotations +(\d+) of {rotations}") == rotations
    # One fetch at start, then at most 3 per rotation (refresh, AWSPENDING, one spare): never per connection.
    assert figure(output, r"Secrets Manager +(\d+) API calls") <= 1 + 3 * rotations
    assert "logins with the pinned new password" in output  # not the alarming "logins via AWSPENDING"
    assert CANARY not in output


@pytest.mark.integration
def test_demo_single_user_on_a_private_postgres_has_zero_failed_queries() -> None:
    code, output = run_demo("--rotations", "3", "--interval", "1", "--workers", "3", "--window", "0.3",
                            "--plain")
    assert code == 0, output
    assert_clean_pass(output, 3)
    assert figure(output, r"AWSPENDING reads (\d+)") >= 1  # the setSecret window was crossed via AWSPENDING
    port = figure(output, r"PostgreSQL cluster on 127\.0\.0\.1:(\d+)")
    import socket

    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0  # the private cluster was stopped


def test_demo_alternating_users_on_mariadb_flips_users_and_cleans_up(mysql_server: DbServer) -> None:
    code, output = run_demo("--engine", "mysql", "--strategy", "alternating", "--rotations", "2",
                            "--interval", "0.8", "--workers", "3", "--plain")
    assert code == 0, output
    assert_clean_pass(output, 2)
    user = re.search(r"application user (\w+)", output)
    assert user, output
    assert f"{user.group(1)}_clone" in output  # the workers saw both users
    with contextlib.closing(admin_connect(mysql_server)) as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM mysql.user WHERE User LIKE %s", (user.group(1) + "%",))
        assert cur.fetchone()[0] == 0


def test_demo_uses_an_admin_dsn_and_leaves_that_server_running(pg_server: DbServer) -> None:
    dsn = (f"postgresql://{pg_server.admin_user}:{pg_server.admin_password}@{pg_server.host}:{pg_server.port}"
           f"/{pg_server.admin_dbname}")
    code, output = run_demo("--dsn", dsn, "--rotations", "2", "--interval", "0.8", "--workers", "2",
                            "--plain")
    assert code == 0, output
    assert_clean_pass(output, 2)
    assert pg_server.admin_password not in output
    assert f"{pg_server.host}:{pg_server.port} (from --dsn)" in output
    with contextlib.closing(admin_connect(pg_server)) as conn:
        assert conn.execute("SELECT 1").fetchone()[0] == 1


def run_patched_demo(patch: str) -> subprocess.CompletedProcess[str]:
    """The demo with ``--rotations 1``, ``patch`` (Python lines) run just before it starts."""
    script = WRAPPER.replace("from secretcache.demo import main", f"{patch}\nfrom secretcache.demo import main")
    return subprocess.run([sys.executable, "-c", script, "--rotations", "1"], cwd=ROOT,
                          env={**os.environ, "DEMO_CANARY": CANARY}, capture_output=True, text=True,
                          timeout=60, check=False)


def test_demo_says_what_it_needs_when_postgres_is_missing() -> None:
    proc = run_patched_demo("localdb._pg_bindir = lambda: None")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "apt-get install postgresql" in proc.stderr
    assert "--dsn" in proc.stderr
    assert "--engine mysql" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_demo_on_a_core_only_install_names_the_demo_extra() -> None:
    proc = run_patched_demo("sys.modules['sqlalchemy'] = None  # as on a core-only install")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "pip install 'secretcache[demo]'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_demo_refuses_a_server_that_accepts_any_password(monkeypatch: pytest.MonkeyPatch) -> None:
    class Connection:
        def close(self) -> None:
            pass

    monkeypatch.setattr(demo_support, "connect_as", lambda account, password: Connection())
    account = DbAccount("postgres", "127.0.0.1", 5432, "app", f"{CANARY}-pw", "app")
    with pytest.raises(RuntimeError, match="accepted a wrong password") as info:
        demo_support._check_passwords_enforced(account)
    assert CANARY not in str(info.value)


def test_demo_rejects_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    from secretcache.demo import main

    with pytest.raises(SystemExit) as info:
        main(["--rotations", "0"])
    assert info.value.code == 2
    assert "--rotations" in capsys.readouterr().err


def test_redactor_hides_every_known_password() -> None:
    redact = demo_support.Redactor()
    redact.add("Secret0One", None, "abc")  # too short values are ignored, not replaced everywhere
    assert redact("login Secret0One failed for abc") == "login *** failed for abc"


def _imports_of_the_demo(path: Path) -> list[tuple[int, bool]]:
    """(line, at module level) of every import of ``secretcache.demo`` (or below) in one core module."""
    import ast

    module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module.removesuffix(".__init__")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top_level = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        if any(t == "secretcache.demo" or t.startswith("secretcache.demo.") for t in targets):
            found.append((node.lineno, id(node) in top_level))
    return found


def test_nothing_in_the_core_imports_the_demo_but_the_cli_command_on_demand() -> None:
    core = [p for p in sorted((ROOT / "secretcache").rglob("*.py")) if "demo" not in p.relative_to(ROOT).parts]
    importers = {str(p.relative_to(ROOT)): found for p in core if (found := _imports_of_the_demo(p))}
    assert set(importers) == {"secretcache/cli.py"}, importers
    assert not any(at_module_level for _, at_module_level in importers["secretcache/cli.py"])


def test_the_missing_server_hint_says_only_what_is_missing() -> None:
    from secretcache.demo.localdb import _PG_NEEDS
    from secretcache.demo.support import _needs

    no_binaries = _needs(RuntimeError(_PG_NEEDS))
    other = _needs(RuntimeError("runuser was not found on PATH: needed to start PostgreSQL as another user"))
    assert "apt-get install postgresql" in no_binaries
    assert "apt-get" not in other
    for hint in (no_binaries, other):
        assert "nox -s demo -- --engine mysql" in hint
        assert "--dsn" in hint
