"""tools/import_graph.py reads floors, upward imports, cycles and long modules the way docs/architecture.md
says it does (on a small package written here), and finds no import-time cycle in ours."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "tools" / "import_graph.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / "secretcache" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_floors_count_import_time_imports_only_and_upward_imports_and_long_modules_are_found(
    tmp_path: Path,
) -> None:
    tool = load_tool()
    write(tmp_path, {
        "__init__.py": "from .face import Face\n",
        "errors.py": '"""Errors."""\n',
        "model.py": "from .errors import E\n",
        "face.py": ("from typing import TYPE_CHECKING\nfrom . import model\nif TYPE_CHECKING:\n"
                    "    from .sub import x\ndef later():\n    from . import __version__\n"),
        "sub/__init__.py": "",
        "sub/x.py": "from .. import errors\n",
        "big.py": '"""Big."""\n' + "x = 1\n" * 500,
        "big_reasoned.py": '"""Big.\n\nSize: one table.\n"""\n' + "x = 1\n" * 500,
    })
    graph = tool.read(tmp_path)
    assert graph.floors["secretcache.errors"] == 1
    assert graph.floors["secretcache.model"] == 2
    assert graph.floors["secretcache.face"] == 3  # the TYPE_CHECKING and in-function imports do not count
    assert graph.floors["secretcache"] == 4
    assert graph.floors["secretcache.sub.x"] == 2
    assert [(u.importer, u.face, u.when) for u in graph.upward] == [("secretcache.face", "secretcache", "lazy")]
    assert [m.name for m in graph.long_modules] == ["secretcache.big"]
    assert not graph.cycles
    assert "```mermaid" in tool.markdown(graph)


def test_our_package_has_no_import_time_cycle() -> None:
    graph = load_tool().read(ROOT)
    assert not graph.cycles
    assert "secretcache" in graph.floors
