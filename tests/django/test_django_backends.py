"""secretcache.django's engines in a real Django project (examples/django_app), on PostgreSQL and MariaDB.

Django runs in subprocesses (its settings are process-global); the secret lives in moto's HTTP server,
shared with this process, which rotates it by hand with real password changes. The project's cache has a
ttl far longer than the test (3600 s), so only the rotation policy can keep logins working.
"""

from __future__ import annotations

import subprocess  # nosec B404
import sys
from typing import Any

import pytest

from secretcache.demo.localdb import set_password

from .conftest import PROJECT, ROOT, Project

WORKERS = 8
ROTATIONS = 10
MAX_CALLS_PER_ROTATION = 3


@pytest.mark.integration
def test_manage_check_and_migrate_log_in_with_the_secret(project_factory: Any) -> None:
    project: Project = project_factory()
    project.manage("check", "--database", "default")
    project.manage("migrate", "--noinput")
    shown = project.manage("showmigrations", "inventory").stdout
    assert "[X] 0001_initial" in shown
    result = project.probe()
    assert result["ok"] is True
    assert result["backend_calls"] == 1  # one GetSecretValue, then cache hits
    assert result["auth"]["auth_failures"] == 0


@pytest.mark.integration
@pytest.mark.parametrize("persistent", [False, True], ids=["conn_max_age_0", "persistent"])
def test_worker_threads_survive_single_user_rotations(project_factory: Any, persistent: bool) -> None:
    """8 threads run ORM requests throughout 10 rotations: zero failures, <= 3 GetSecretValue per rotation.

    CONN_MAX_AGE 0: every request opens a new connection. Persistent (CONN_MAX_AGE None with
    CONN_HEALTH_CHECKS): connections outlive the password change; the test kills every session after each
    step (with the workers parked between requests) and the health check reopens them.
    """
    settings = {"APP_DB_CONN_MAX_AGE": "none", "APP_DB_HEALTH_CHECKS": "1"} if persistent else {}
    project: Project = project_factory(**settings)
    project.manage("migrate", "--noinput")

    def reconnect_all() -> None:
        if persistent:
            assert load.command("pause") == "ok"
            project.kill_sessions()
            assert load.command(f"resume {WORKERS}") == "ok", load.command("stats")  # each worker logged in again
        else:
            assert load.command(f"wait {2 * WORKERS}") == "ok", load.command("stats")

    with project.load() as load:
        assert load.command(f"wait {WORKERS}") == "ok"
        for _ in range(ROTATIONS):
            pending = project.begin_rotation()  # the cached AWSCURRENT password is dead from here
            reconnect_all()
            project.finish_rotation(pending)
            reconnect_all()
        result = load.stop()

    assert result["errors"] == []
    assert result["failures"] == 0
    assert result["ops"] > 0
    assert result["backend_calls"] - 1 <= MAX_CALLS_PER_ROTATION * ROTATIONS
    auth = result["auth"]
    assert auth["gave_up"] == 0
    assert auth["pending_logins"] >= ROTATIONS  # logins went through the policy's AWSPENDING step
    assert auth["refreshes"] <= ROTATIONS
    assert auth["pending_fetches"] <= ROTATIONS


@pytest.mark.integration
def test_wrong_password_fails_with_djangos_operational_error(project_factory: Any) -> None:
    project: Project = project_factory()
    wrong = "not-in-the-secret-" + project.secret_id.rsplit("/", 1)[-1]
    project.passwords.append(wrong)
    set_password(project.server, project.account.username, wrong)

    result = project.probe()

    assert result["ok"] is False
    assert result["error"] == "django.db.utils.OperationalError"
    driver_error = "psycopg.OperationalError" if project.server.engine == "postgres" \
        else "MySQLdb.OperationalError"
    assert result["cause"].replace("._exceptions", "") == driver_error
    assert 1 <= result["auth"]["auth_failures"] <= 3  # logins attempted, all refused
    assert result["auth"]["gave_up"] == 1
    assert any(repr(project.secret_id) in note for note in result["notes"])


@pytest.mark.integration
def test_unknown_database_is_not_a_rotation(project_factory: Any) -> None:
    """NAME in the settings wins over the secret's dbname; the server's "no such database" is no refresh."""
    project: Project = project_factory(APP_DB_NAME="no_such_database_here")

    result = project.probe()

    assert result["ok"] is False
    assert result["error"] == "django.db.utils.OperationalError"
    assert result["auth"] == {"auth_failures": 0, "refreshes": 0, "pending_fetches": 0, "pending_logins": 0,
                              "gave_up": 0}
    assert result["backend_calls"] == 1


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([sys.executable, "-c", code], cwd=PROJECT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(PROJECT)]), **env},
                          check=False)  # nosec B603


@pytest.mark.parametrize("engine", ["postgresql", "mysql"])
def test_missing_secret_id_is_improperly_configured(engine: str) -> None:
    code = (
        "import django\nfrom django.conf import settings\n"
        f"settings.configure(DATABASES={{'default': {{'ENGINE': 'secretcache.django.{engine}', 'OPTIONS': {{}}}}}})\n"
        "django.setup()\nfrom django.db import connection\n"
        "try:\n    connection.ensure_connection()\nexcept Exception as e:\n    print(type(e).__name__, e)\n"
    )
    done = _python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ImproperlyConfigured")
    assert "secret_id" in done.stdout


def test_our_options_never_reach_the_driver_and_settings_win() -> None:
    """get_connection_params: no secret_id/cache/policy/keys; NAME absent (from the secret) unless set."""
    code = (
        "import django\nfrom django.conf import settings\n"
        "opts = {'secret_id': 'a/b', 'policy': {'min_refresh_interval': 2}, 'keys': {'username': 'user'},"
        " 'connect_timeout': 5}\n"
        "settings.configure(DATABASES={'default': {'ENGINE': 'secretcache.django.postgresql', 'OPTIONS': opts,"
        " 'HOST': 'db.example'}, 'named': {'ENGINE': 'secretcache.django.mysql', 'NAME': 'shop',"
        " 'OPTIONS': {'secret_id': 'a/c'}}})\n"
        "django.setup()\nfrom django.db import connections\n"
        "pg = connections['default'].get_connection_params()\nmy = connections['named'].get_connection_params()\n"
        "print(sorted(k for k in pg if k in ('secret_id', 'cache', 'policy', 'keys', 'dbname', 'user')))\n"
        "print(pg['host'], pg['connect_timeout'], my['database'], 'secret_id' in my)\n"
        "print('secret_id' in connections['default'].settings_dict['OPTIONS'])\n"
    )
    done = _python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["[]", "db.example 5 shop False", "True"]


def test_the_test_database_is_named_after_the_secrets_database() -> None:
    """NAME left to the secret: ``test_`` + the secret's dbname (not ``test_``); TEST NAME and NAME still win;
    a secret without a dbname says to set TEST NAME."""
    code = (
        "import json, django\nfrom django.conf import settings\n"
        "from secretcache import SecretCache\nfrom secretcache.testing import InMemoryBackend\n"
        "base = {'username': 'u', 'password': 'p', 'host': 'h'}\n"
        "cache = SecretCache(InMemoryBackend({'a/db': json.dumps({**base, 'dbname': 'shop'}),"
        " 'a/nodb': json.dumps(base)}))\n"
        "def db(engine, secret, **extra):\n"
        "    return {'ENGINE': f'secretcache.django.{engine}', 'OPTIONS': {'secret_id': secret, 'cache': cache},"
        " **extra}\n"
        "settings.configure(DATABASES={'default': db('postgresql', 'a/db'), 'my': db('mysql', 'a/db'),"
        " 'named': db('postgresql', 'a/db', NAME='given'), 'explicit': db('mysql', 'a/db', TEST={'NAME': 'mine'}),"
        " 'nodb': db('postgresql', 'a/nodb')})\n"
        "django.setup()\nfrom django.db import connections\n"
        "for alias in ('default', 'my', 'named', 'explicit'):\n"
        "    print(connections[alias].creation._get_test_db_name())\n"
        "try:\n    connections['nodb'].creation._get_test_db_name()\n"
        "except Exception as e:\n    print(type(e).__name__, \"TEST\" in str(e))\n"
    )
    done = _python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["test_shop", "test_shop", "test_given", "mine", "ImproperlyConfigured True"]


def test_import_secretcache_imports_no_django() -> None:
    done = _python("import sys, secretcache, secretcache.django\nprint('django' in sys.modules)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


@pytest.mark.integration
def test_manage_test_runs_the_apps_tests(project_factory: Any) -> None:
    """Django's test runner, on the account's own database (``--keepdb``: the account may not create one)."""
    project: Project = project_factory()
    project.env["APP_DB_TEST_NAME"] = project.account.dbname
    done = project.manage("test", "--keepdb", "--noinput", "inventory")
    assert "Ran 1 test" in done.stderr
