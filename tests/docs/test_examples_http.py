"""examples/apps/fastapi_upstream.py and examples/apps/settings_app.py run as scripts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["fastapi_upstream.py", "settings_app.py"])
def test_the_example_runs(name: str) -> None:
    if name.startswith("fastapi"):
        pytest.importorskip("fastapi")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "apps" / name)], capture_output=True, text=True,
                            env=env, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "Secrets Manager calls" in result.stdout
