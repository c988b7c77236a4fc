"""secretcache.credentials is the one seam every client that logs in plugs into.

The policy's public objects are defined in the package (not wrapped), ``secretcache.db`` re-exports the
very same objects, and every client module reaches the policy only through the package's public names:
no client imports one of its private modules, nor a name its face does not list in ``__all__``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import secretcache.credentials as credentials
import secretcache.db as db

PACKAGE = Path(credentials.__file__).resolve().parent.parent

CLIENTS = sorted(
    path for pattern in ("db/*.py", "django/**/*.py", "redis.py", "http.py", "settings.py", "rotation/*.py")
    for path in PACKAGE.glob(pattern)
)


def test_the_policy_objects_are_defined_in_the_credentials_package() -> None:
    for name in ("AuthPolicy", "AuthStats", "auth_stats", "login", "login_async"):
        assert getattr(credentials, name).__module__.startswith("secretcache.credentials"), name


def test_secretcache_db_reexports_the_same_objects_not_wrappers() -> None:
    assert db.auth_stats is credentials.auth_stats
    assert db.AuthPolicy is credentials.AuthPolicy
    assert db.AuthStats is credentials.AuthStats
    assert db.is_auth_failure is credentials.is_auth_failure


def _module_of(path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    return ".".join(parts[:-1] if is_package else parts), is_package


def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    """Every ``from X import a, b`` / ``import X`` in the file (functions and TYPE_CHECKING blocks too),
    with ``X`` made absolute."""
    name, is_package = _module_of(path)
    package = name if is_package else name.rpartition(".")[0]
    found: list[tuple[str, list[str], int]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            found.append((base, [alias.name for alias in node.names], node.lineno))
        elif isinstance(node, ast.Import):
            found += [(alias.name, [], node.lineno) for alias in node.names]
    return found


@pytest.mark.parametrize("path", CLIENTS, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_every_client_module_reaches_the_policy_only_through_public_names(path: Path) -> None:
    public = set(credentials.__all__)
    for module, names, line in _imports(path):
        where = f"{path.relative_to(PACKAGE)}:{line}"
        assert not module.startswith("secretcache.credentials._"), f"{where} imports private {module}"
        assert module not in {"secretcache.db._auth", "secretcache.db._flow", "secretcache.db._state",
                              "secretcache.db._detect"}, where
        if module == "secretcache.credentials":
            assert set(names) <= public, f"{where} imports {sorted(set(names) - public)}, not in __all__"


def test_the_client_list_covers_every_client_that_logs_in() -> None:
    shown = {str(p.relative_to(PACKAGE)) for p in CLIENTS}
    assert {"db/psycopg.py", "db/pymysql.py", "db/asyncpg.py", "db/sqlalchemy.py", "django/_backend.py",
            "redis.py", "http.py", "settings.py", "rotation/_strategy.py"} <= shown
