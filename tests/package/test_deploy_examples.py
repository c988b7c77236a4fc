"""The deployment files under examples/serve work as written on a fresh host.

- the systemd unit passes ``systemd-analyze verify`` (with its ExecStart pointed at this machine's
  ``secretcache``, the one line a host without /opt/secretcache differs by), and its token, made by its own
  ExecStartPre command under the unit's User and Group, is readable by serve and by a member of the group,
  and by nobody else;
- the Kubernetes sidecar sets the Region variable boto3 reads, and every container runs as non-root on a
  read-only root filesystem; the image it names is built from the Dockerfile beside it, which pins the
  ``serve`` extra and switches to a non-root user.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

SERVE = Path(__file__).resolve().parents[2] / "examples" / "serve"
UNIT = SERVE / "secretcache-serve.service"


def unit_values(key: str) -> list[str]:
    text = UNIT.read_text(encoding="utf-8").replace("\\\n", " ")
    return [m[1].strip() for m in re.finditer(rf"^{key}=(.*)$", text, flags=re.MULTILINE)]


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: apt-get install systemd (.ci/run does)"
    secretcache_bin = Path(sys.executable).parent / "secretcache"
    assert secretcache_bin.exists()
    text = UNIT.read_text(encoding="utf-8")
    assert "/opt/secretcache/bin/secretcache serve" in text
    unit = tmp_path / UNIT.name
    unit.write_text(text.replace("/opt/secretcache/bin/secretcache", str(secretcache_bin)), encoding="utf-8")
    result = subprocess.run([analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True,
                            timeout=120, check=False)
    # verify exits 0 on unknown keys and only warns: any output at all is a finding.
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == result.stderr.strip() == "", result.stdout + result.stderr


def test_systemd_unit_says_how_to_set_the_host_up() -> None:
    text = UNIT.read_text(encoding="utf-8")
    for step in ("groupadd --system secretreaders", "useradd --system", "python3 -m venv /opt/secretcache",
                 "/opt/secretcache/bin/pip install 'secretcache[serve]'", "usermod -aG secretreaders"):
        assert step in text, step
    assert unit_values("User") == ["secretcache"]
    assert unit_values("Group") == ["secretreaders"]
    assert unit_values("RuntimeDirectory") == ["secretcache"]
    assert unit_values("RestartPreventExitStatus") == ["2"]  # a usage error does not loop into start-limit-hit
    assert not any(v.startswith("+") for v in unit_values("ExecStartPre")), "the token is made as the service user"


@pytest.fixture
def traversable_dir() -> Iterator[Path]:
    """A directory every user can traverse (pytest's tmp_path sits under a 0700 directory)."""
    with tempfile.TemporaryDirectory(prefix="sc-unit-") as name:
        Path(name).chmod(0o755)
        yield Path(name)


def test_systemd_unit_token_is_readable_by_serve_and_the_group_only(traversable_dir: Path) -> None:
    """Run the unit's ExecStartPre as systemd would: as User=/Group= (no supplementary groups), in the
    RuntimeDirectory it creates (owned by them, RuntimeDirectoryMode). Then read the token as the service
    user, as an application user in the group, and as an outsider."""
    setpriv = shutil.which("setpriv")
    assert setpriv, "needs setpriv (util-linux) to switch users, as CI has"
    assert os.geteuid() == 0, "needs root to switch users, as CI has"
    service_uid, group_gid, app_uid, outsider_uid = 47001, 47002, 47003, 47004
    run_dir = traversable_dir / "run" / "secretcache"
    run_dir.mkdir(parents=True)
    (traversable_dir / "run").chmod(0o755)
    os.chown(run_dir, service_uid, group_gid)
    run_dir.chmod(int(unit_values("RuntimeDirectoryMode")[0], 8))
    [pre] = unit_values("ExecStartPre")
    argv = [a.replace("/run/secretcache", str(run_dir)) for a in shlex.split(pre)]

    def as_user(uid: int, gid: int, groups: list[int], command: list[str]) -> subprocess.CompletedProcess[str]:
        ids = ["--reuid", str(uid), "--regid", str(gid)]
        ids += ["--groups", ",".join(map(str, groups))] if groups else ["--clear-groups"]
        return subprocess.run([setpriv, *ids, *command], capture_output=True, text=True, timeout=60,
                              check=False, cwd="/")

    made = as_user(service_uid, group_gid, [], argv)
    assert made.returncode == 0, made.stderr
    token = run_dir / "token"
    assert len(token.read_text().strip()) == 64
    assert as_user(service_uid, group_gid, [], ["cat", str(token)]).returncode == 0  # serve
    assert as_user(app_uid, app_uid, [group_gid], ["cat", str(token)]).returncode == 0  # an app in the group
    outsider = as_user(outsider_uid, outsider_uid, [], ["cat", str(token)])
    assert outsider.returncode != 0
    assert "Permission denied" in outsider.stderr
    again = as_user(service_uid, group_gid, [], argv)  # a restart keeps the token
    assert again.returncode == 0
    assert token.stat().st_size == 65


def k8s_pod() -> dict[str, Any]:
    import yaml

    pod: dict[str, Any] = yaml.safe_load((SERVE / "k8s-sidecar.yaml").read_text(encoding="utf-8"))
    return pod


def test_k8s_sidecar_sets_what_boto3_reads_and_runs_unprivileged() -> None:
    spec = k8s_pod()["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    [sidecar] = [c for c in spec["initContainers"] if c["name"] == "secretcache"]
    env = {e["name"]: e["value"] for e in sidecar["env"]}
    assert env["AWS_DEFAULT_REGION"]  # boto3 reads AWS_DEFAULT_REGION, not AWS_REGION
    assert sidecar["restartPolicy"] == "Always"
    assert "pip" not in " ".join(sidecar.get("command", []) + sidecar.get("args", []))  # installed in the image
    assert sidecar["args"][0] == "serve"
    assert "--token-file" in sidecar["args"]
    for container in spec["initContainers"]:
        context = container["securityContext"]
        assert context["runAsNonRoot"] is True, container["name"]
        assert context["runAsUser"] != 0, container["name"]
        assert context["readOnlyRootFilesystem"] is True, container["name"]
        assert context["allowPrivilegeEscalation"] is False, container["name"]
        assert context["capabilities"]["drop"] == ["ALL"], container["name"]


def test_dockerfile_pins_the_serve_extra_and_drops_root() -> None:
    dockerfile = (SERVE / "Dockerfile").read_text(encoding="utf-8")
    from secretcache import __version__

    assert f"'secretcache[serve]=={__version__}'" in dockerfile
    assert re.search(r"^USER 10001$", dockerfile, flags=re.MULTILINE)
    [sidecar] = [c for c in k8s_pod()["spec"]["initContainers"] if c["name"] == "secretcache"]
    assert sidecar["image"].endswith(f":{__version__}")
    assert sidecar["securityContext"]["runAsUser"] == 10001
    assert re.search(r'^ENTRYPOINT \["secretcache"\]$', dockerfile, flags=re.MULTILINE)
