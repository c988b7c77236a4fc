"""The suite's own layout: fixture plugins in tests/fixtures (``fix_*.py``, every one listed in
``pytest_plugins``), and no test module imports another test module or a conftest (helpers live in
tests/fixtures, programs in tests/programs)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests import conftest

TESTS = Path(__file__).resolve().parents[1]


def _imported_modules(path: Path) -> list[tuple[str, int]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.module, node.lineno))
        elif isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
    return found


def test_no_test_imports_a_test_module_or_a_conftest() -> None:
    offending = []
    for path in sorted(TESTS.rglob("*.py")):
        for module, line in _imported_modules(path):
            last = module.rpartition(".")[2]
            if module.startswith("tests.") and (last.startswith("test_") or last == "conftest"):
                offending.append(f"{path.relative_to(TESTS)}:{line} imports {module}")
    assert not offending


def test_every_fixture_plugin_is_listed_in_pytest_plugins() -> None:
    plugins = {f"tests.fixtures.{p.stem}" for p in (TESTS / "fixtures").glob("fix_*.py")}
    assert plugins == set(conftest.pytest_plugins)


def test_only_the_top_conftest_and_the_django_one_remain() -> None:
    # Django's settings are process-wide: its project fixtures stay beside the Django tests.
    assert sorted(str(p.relative_to(TESTS)) for p in TESTS.rglob("conftest.py")) == ["conftest.py",
                                                                                  "django/conftest.py"]
