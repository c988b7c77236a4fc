"""Where the soak's secrets live and how its faults are applied: in process, or moto behind the fault proxy.

Both targets offer the same five operations to ``bench.bench_soak``: ``create``, ``rotate``, ``fault`` /
``heal`` (one phase of the fault plan) and ``calls`` (GetSecretValue and BatchGetSecretValue calls seen).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Plan:
    """What one soak run does: its length, load, cache settings, fault phases and target (the targets read it
    too, so it lives here, below the soak that runs it)."""

    seconds: float = 20.0
    secrets: int = 300
    threads: int = 8
    tasks: int = 32
    ttl: float = 0.5
    jitter: float = 0.1
    swr: float = 0.5
    backoff_base: float = 0.25
    backoff_max: float = 1.0
    phase_seconds: float = 1.5
    rotations_per_s: float = 100.0
    doomed: int = 5
    backend: str = "memory"
    latency: float = 0.001
    think: float = 0.0
    """Seconds each reader pauses between reads (0: spin, the harshest contention for the GIL)."""
    measure_every: int = 4
    """Measure the caches' memory after every n-th phase (phases alternate calm / fault: n even)."""


class MemoryTarget:
    def __init__(self, plan: Plan) -> None:
        from secretcache.testing import InMemoryBackend

        self.backend = InMemoryBackend(latency=plan.latency)

    def create(self, secret_id: str, value: str) -> None:
        self.backend.put_secret(secret_id, value)

    def rotate(self, secret_id: str, value: str) -> None:
        self.backend.rotate(secret_id, value)

    def fault(self, phase: str, doomed: list[str]) -> None:
        b = self.backend
        if phase in ("throttle", "5xx", "conn"):
            b.fail_always(phase)
        elif phase == "slow":
            b.latency = 0.02
        elif phase == "denied":
            for secret_id in doomed:
                b.fail_always("AccessDeniedException", secret_id=secret_id)
        elif phase == "deleted":
            for secret_id in doomed:
                b.delete_secret(secret_id)

    def heal(self, phase: str, doomed: list[str], latency: float) -> None:
        self.backend.heal()
        self.backend.latency = latency
        if phase == "deleted":
            for secret_id in doomed:
                self.backend.restore_secret(secret_id)

    def calls(self) -> tuple[int, int]:
        return self.backend.calls["GetSecretValue"], self.backend.calls["BatchGetSecretValue"]

    def close(self) -> None:
        pass


class MotoTarget:
    """moto and the fault proxy in a subprocess (``python -m devtools.faults``), so they do not compete for
    this process's GIL with the readers; faults are driven over the proxy's control path."""

    def __init__(self, plan: Plan) -> None:
        import subprocess
        import sys

        import boto3
        from botocore.config import Config

        from devtools.faults import RemoteFaults
        from secretcache.backends.aws import AwsBackend

        for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
            os.environ.setdefault(name, value)  # moto accepts any; every endpoint here is 127.0.0.1
        self.process = subprocess.Popen([sys.executable, "-m", "devtools.faults"], cwd=REPO,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        urls = json.loads(self.process.stdout.readline())
        self.faults = RemoteFaults(urls["proxy"])
        self.admin = boto3.client("secretsmanager", endpoint_url=urls["moto"], region_name="us-east-1")
        config = Config(retries={"mode": "standard", "total_max_attempts": 1}, read_timeout=0.25,
                        connect_timeout=1, max_pool_connections=32)
        self.backend = AwsBackend(endpoint_url=urls["proxy"], region_name="us-east-1", config=config)

    def create(self, secret_id: str, value: str) -> None:
        self.admin.create_secret(Name=secret_id, SecretString=value)

    def rotate(self, secret_id: str, value: str) -> None:
        self.admin.put_secret_value(SecretId=secret_id, SecretString=value)

    def fault(self, phase: str, doomed: list[str]) -> None:
        modes = {"throttle": "throttle", "5xx": "5xx", "conn": "rst", "slow": "slow"}
        if phase in modes:
            self.faults.fail(modes[phase])
        elif phase == "denied":
            self.faults.fail("AccessDeniedException", targets=doomed)
        elif phase == "deleted":
            for secret_id in doomed:
                self.admin.delete_secret(SecretId=secret_id, RecoveryWindowInDays=7)

    def heal(self, phase: str, doomed: list[str], latency: float) -> None:
        self.faults.clear()
        if phase == "deleted":
            for secret_id in doomed:
                self.admin.restore_secret(SecretId=secret_id)

    def calls(self) -> tuple[int, int]:
        return self.faults.count("GetSecretValue"), self.faults.count("BatchGetSecretValue")

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(30)
