"""The package as an index and a packager see it: metadata, the version written once, development
dependencies in dependency groups (not user extras), an sdist that carries tests, docs and examples, README
links that work on the package index page, and a docs site whose nav lists every page."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import tarfile
from importlib.metadata import metadata
from pathlib import Path
from typing import Any

import pytest

import secretcache

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest depends on tomli below 3.11
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
REPOSITORY = "https://github.com/secretcache/secretcache/"


def test_the_version_is_written_once() -> None:
    project = PYPROJECT["project"]
    assert "version" not in project
    assert "version" in project["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "secretcache._version.__version__"}
    assert metadata("secretcache")["Version"] == secretcache.__version__


def test_project_urls_and_classifiers() -> None:
    project = PYPROJECT["project"]
    assert {"Homepage", "Documentation", "Source", "Issues", "Changelog"} <= set(project["urls"])
    classifiers = set(project["classifiers"])
    assert any(c.startswith("Development Status ::") for c in classifiers)
    assert {"Framework :: Django", "Framework :: Pytest", "Typing :: Typed"} <= classifiers
    claimed = {m[1] for c in classifiers if (m := re.fullmatch(r"Programming Language :: Python :: (3\.\d+)", c))}
    # The matrix noxfile.py runs, read as text: nox itself is not installed where the tests run.
    [pythons] = re.findall(r"^PYTHONS = (\[.*\])$", (ROOT / "noxfile.py").read_text(), flags=re.MULTILINE)
    assert claimed == set(ast.literal_eval(pythons))


def test_development_dependencies_are_groups_not_extras() -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert "dev" not in extras
    for requirements in extras.values():  # a user extra pulls no test, lint or benchmark tool
        for requirement in requirements:
            assert not re.match(r"(pytest|mypy|ruff|bandit|pip-audit|matplotlib|hypothesis|mkdocs)\b", requirement)
    groups = PYPROJECT["dependency-groups"]
    assert {"test", "lint", "docs", "bench", "dev"} <= set(groups)
    assert {"include-group": "test"} in groups["dev"]


def test_readme_links_work_on_the_package_index_page() -> None:
    """PyPI shows the README without the repository around it: every link is absolute (or an anchor), and
    every link into this repository names a file that exists."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)\s]+)\)", readme)
    assert targets
    relative = [t for t in targets if not re.match(r"(https?://|mailto:|#)", t)]
    assert not relative, f"relative links break on the package index page; write {REPOSITORY}blob/main/...: {relative}"
    for target in targets:
        if target.startswith(REPOSITORY):
            path = re.sub(r"^(blob|tree)/main/", "", target[len(REPOSITORY):]).split("#")[0]
            assert (ROOT / path).exists(), target


def test_every_docs_page_is_in_the_site_nav() -> None:
    """mkdocs build --strict fails on a page missing from nav too (nox -s docs); this says it sooner."""
    mkdocs = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    listed = set(re.findall(r":\s*([\w/.-]+\.md)\s*$", mkdocs, flags=re.MULTILINE))
    pages = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")}
    assert pages - listed == set(), "add the page to nav in mkdocs.yml"
    assert listed - pages == set()


@pytest.mark.slow
def test_sdist_carries_tests_docs_examples_and_changelog(tmp_path: Path) -> None:
    # setuptools lays the sdist's release tree out beside pyproject.toml while it builds: built from the work
    # tree itself, that tree would appear in the checkout (and two Pythons' suites running at once, as CI's
    # lanes do, would build over each other). Build from a copy.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".nox", ".venv", "site", "build", "dist", "*.egg-info", "secretcache-[0-9]*", "__pycache__",
        ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis"))
    subprocess.run([sys.executable, "-m", "build", "--sdist", "--outdir", str(tmp_path), str(source)],
                   capture_output=True, text=True, timeout=600, check=True)
    [sdist] = tmp_path.glob("secretcache-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for required in ("CHANGELOG.md", "SECURITY.md", "mkdocs.yml", "noxfile.py", "tests/conftest.py",
                     "tests/package/test_docs_blocks.py", "devtools/moto_helpers.py", "docs/index.md",
                     "docs/serve.md", "examples/serve/secretcache-serve.service", "examples/serve/Dockerfile"):
        assert required in names, required
    assert not any("__pycache__" in name for name in names)
