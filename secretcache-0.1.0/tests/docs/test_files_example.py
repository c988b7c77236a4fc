"""examples/mounted_files.py runs as a script and sees the rotated file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_mounted_files_example_sees_the_rotation() -> None:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECRETCACHE_")}
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "mounted_files.py")], capture_output=True,
                          text=True, env={**env, "PYTHONPATH": path}, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("version ")
    assert lines[0].endswith(" user app")
    assert lines[1] == "rotated: new version seen, password changed: True"
    assert "password" not in lines[0]
