"""tools/import_graph.py reads floors, upward arrows, cycles and long modules the way docs/architecture.md
says it does (on a small package written here), counting lazy and type-only imports, and finds no cycle
and no upward arrow in ours (nor in bench/)."""

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


def test_floors_count_every_import_and_upward_imports_and_long_modules_are_found(
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
    assert graph.floors["secretcache.face"] == 3  # model and, under TYPE_CHECKING, sub.x (both floor 2)
    assert graph.floors["secretcache"] == 4
    assert graph.floors["secretcache.sub.x"] == 2
    assert [(u.importer, u.face, u.when, u.closes_cycle) for u in graph.upward] == [
        ("secretcache.face", "secretcache", "lazy", False)]
    assert [m.name for m in graph.long_modules] == ["secretcache.big"]
    assert not graph.cycles
    assert "```mermaid" in tool.markdown(graph)


def test_a_cycle_through_a_lazy_and_a_type_only_import_is_a_cycle_with_upward_arrows(tmp_path: Path) -> None:
    tool = load_tool()
    write(tmp_path, {
        "__init__.py": "",
        "errors.py": "",
        "base.py": "from . import errors\ndef twin():\n    from .cache import Cache\n",  # lazy
        "cache.py": "from .base import twin\nfrom .resolve import text\n",
        "resolve.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .cache import Cache\n",
        "plain.py": "from .base import twin\n",
    })
    graph = tool.read(tmp_path)
    assert graph.cycles == [["secretcache.base", "secretcache.cache", "secretcache.resolve", "secretcache.base"]]
    closing = sorted((u.importer, u.face, u.when) for u in graph.upward if u.closes_cycle)
    assert closing == [("secretcache.base", "secretcache.cache", "lazy"),
                       ("secretcache.resolve", "secretcache.cache", "type-only")]
    assert graph.floors["secretcache.cache"] > graph.floors["secretcache.base"]
    assert graph.problems == 3
    assert tool.main(["--root", str(tmp_path)]) == 1
    assert tool.main(["--root", str(tmp_path), "--imports-only"]) == 1


def test_our_package_and_bench_have_no_cycle_and_no_upward_arrow_counting_lazy_and_type_only_imports() -> None:
    tool = load_tool()
    graph = tool.read(ROOT)
    assert not graph.cycles
    assert not graph.upward
    assert "secretcache" in graph.floors
    bench = tool.read(ROOT, package="bench")
    assert not bench.cycles
    assert not bench.upward
