"""Fixtures of the Django tests: the example project (examples/django_app) run in subprocesses, its database
secret in moto's HTTP server, which the test process and the Django process share; rotations done by hand
(AWSPENDING put, the password changed as admin, AWSCURRENT moved)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess  # nosec B404
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools.canary import canary_value
from devtools.moto_helpers import moto_server_fixture
from secretcache.demo.localdb import DbAccount, DbServer, admin_connect, set_password

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ROOT / "examples" / "django_app"
DRILL = Path(__file__).resolve().parents[1] / "programs" / "django_drill.py"
TIMEOUT = 300  # a hung subprocess fails the test instead of hanging the run; never a timing assertion

moto_endpoint = moto_server_fixture("session")


class Project:
    """The example Django project on one account's secret; ``manage(...)``, ``probe()``, ``load()``."""

    def __init__(self, endpoint: str, server: DbServer, account: DbAccount, **settings: str) -> None:
        import boto3

        self.server, self.account = server, account
        self.secret_id = f"django/{account.engine}/{uuid.uuid4().hex[:8]}"
        self.client = boto3.client("secretsmanager", endpoint_url=endpoint, region_name="us-east-1")
        self.current = self.client.create_secret(Name=self.secret_id,
                                                 SecretString=json.dumps(account.as_secret()))["VersionId"]
        self.passwords = [account.password]
        self.outputs: list[str] = []
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(PROJECT)]),
            "AWS_ENDPOINT_URL_SECRETS_MANAGER": endpoint,
            "DJANGO_SETTINGS_MODULE": "shop.settings",
            "APP_DB_ENGINE": "postgresql" if account.engine == "postgres" else "mysql",
            "APP_DB_SECRET_ID": self.secret_id,
            **settings,
        }

    def _run(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, *args], cwd=PROJECT, env=self.env, capture_output=True, text=True,
                              timeout=TIMEOUT, check=False)  # nosec B603
        self.outputs += [done.stdout, done.stderr]
        return done

    def manage(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = self._run(["manage.py", *args])
        assert done.returncode == 0, done.stderr[-3000:]
        return done

    def probe(self) -> dict[str, Any]:
        done = self._run([str(DRILL), "probe"])
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]

    @contextlib.contextmanager
    def load(self) -> Iterator[Load]:
        proc = subprocess.Popen([sys.executable, str(DRILL), "load"], cwd=PROJECT, env=self.env, text=True,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # nosec B603
        load = Load(proc)
        try:
            assert load.readline() == "ready", proc.stderr.read() if proc.stderr else ""
            yield load
        finally:
            if proc.poll() is None:
                proc.kill()
            out, err = proc.communicate(timeout=TIMEOUT)
            self.outputs += [out, err, *load.lines]

    # -- a single-user rotation, by hand ------------------------------------------------------------------

    def begin_rotation(self) -> str:
        """createSecret + setSecret: AWSPENDING and the database have a new password, AWSCURRENT does not."""
        password = canary_value("django")
        self.passwords.append(password)
        pending = self.client.put_secret_value(
            SecretId=self.secret_id, SecretString=json.dumps(self.account.as_secret(password=password)),
            VersionStages=["AWSPENDING"])["VersionId"]
        set_password(self.server, self.account.username, password)
        return pending  # type: ignore[no-any-return]

    def finish_rotation(self, pending: str) -> None:
        """finishSecret: AWSCURRENT moves to the new version."""
        self.client.update_secret_version_stage(SecretId=self.secret_id, VersionStage="AWSCURRENT",
                                                MoveToVersionId=pending, RemoveFromVersionId=self.current)
        self.current = pending

    def kill_sessions(self) -> None:
        """Terminate every session of the account, as a failover or an idle timeout would."""
        with contextlib.closing(admin_connect(self.server)) as conn:
            if self.server.engine == "postgres":
                conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                             (self.account.username,))
                return
            with conn.cursor() as cur:
                cur.execute("SELECT id FROM information_schema.processlist WHERE user = %s",
                            (self.account.username,))
                for (session,) in cur.fetchall():
                    with contextlib.suppress(Exception):  # it may have ended meanwhile
                        cur.execute(f"KILL {int(session)}")

    def assert_no_password(self) -> None:
        for text in self.outputs:
            for password in self.passwords:
                assert password not in text


class Load:
    """The drill's ``load`` mode: commands in, one answer line each."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[str] = []

    def readline(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        self.lines.append(line)
        return line

    def command(self, text: str) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        return self.readline()

    def stop(self) -> dict[str, Any]:
        return json.loads(self.command("stop"))  # type: ignore[no-any-return]


def engine_fixtures(engine: str) -> tuple[str, str]:
    prefix = "pg" if engine == "postgres" else "mysql"
    return f"{prefix}_server", f"{prefix}_account"


@pytest.fixture(params=["postgres", "mysql"])
def project_factory(request: pytest.FixtureRequest, moto_endpoint: str) -> Any:
    """``make(**settings_env)`` -> a :class:`Project` on a fresh account (each engine); marked integration."""
    request.node.add_marker(pytest.mark.integration)
    server_name, account_name = engine_fixtures(request.param)
    server: DbServer = request.getfixturevalue(server_name)
    account: DbAccount = request.getfixturevalue(account_name)
    made: list[Project] = []

    def make(**settings: str) -> Project:
        made.append(Project(moto_endpoint, server, account, **settings))
        return made[-1]

    yield make
    for project in made:
        project.assert_no_password()
