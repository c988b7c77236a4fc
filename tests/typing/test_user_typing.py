"""``mypy --strict`` on a user's module (tests/typing/userapp.py) that exercises the public API: both cache
faces with every database factory, the redis and HTTP clients, the listener, the settings source and the
decorator. It must pass with no ``type: ignore`` (a typed user should never need one)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def test_the_user_module_has_no_type_ignore() -> None:
    assert "type: ignore" not in (HERE / "userapp.py").read_text()


def test_mypy_strict_passes_on_a_user_module(tmp_path: Path) -> None:
    # Checked from elsewhere, as a user's file: secretcache is found on MYPYPATH and followed silently
    # (mypy.ini), as an installed package's own errors are not the user's.
    shutil.copy(HERE / "userapp.py", tmp_path / "userapp.py")
    env = {**os.environ, "MYPYPATH": str(ROOT)}
    done = subprocess.run(  # nosec B603
        [sys.executable, "-m", "mypy", "--config-file", str(HERE / "mypy.ini"), "--cache-dir",
         str(tmp_path / ".mypy_cache"), "userapp.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Success: no issues found in 1 source file" in done.stdout
