"""Secrets mounted as files, followed through a rotation without a restart.

    python examples/mounted_files.py

Stands in for a Kubernetes pod with the Secrets Store CSI driver (ASCP): a temporary directory plays the
mount, and a writer swaps the secret's file the way mount writers do (a new file renamed over the old one).
The application reads through ``SecretCache(FileBackend(...))``; the new password is seen within the
backend's ``check_interval`` (a cache with ``ttl=0`` in front), with no restart and no file watcher.
In a real pod, drop the writer and set ``SECRETCACHE_BACKEND=files:/mnt/secrets-store`` instead.
"""

from __future__ import annotations

import json
import os
import tempfile
import time

from secretcache import SecretCache
from secretcache.backends import FileBackend
from secretcache.config import CacheConfig


def mount_write(root: str, name: str, secret: dict[str, object]) -> None:
    """What the CSI driver, the kubelet or Vault Agent does: write a new file, rename it over the old one."""
    fd, tmp = tempfile.mkstemp(dir=root, prefix=".tmp-")
    with os.fdopen(fd, "w") as f:
        json.dump(secret, f)
    os.replace(tmp, os.path.join(root, name))


def main() -> None:
    with tempfile.TemporaryDirectory() as root:
        secret = {"engine": "postgres", "host": "db.internal", "port": 5432, "username": "app",
                  "password": "first-password", "dbname": "app"}
        mount_write(root, "prod_db", secret)  # ASCP names the file of "prod/db" prod_db

        cache = SecretCache(FileBackend(root, check_interval=0.2), config=CacheConfig(ttl=0))
        first = cache.get_secret_value("prod/db")
        print("version", (first.version_id or "")[:8], "user", cache.get("prod/db#username"))

        mount_write(root, "prod_db", {**secret, "password": "rotated-password"})  # the rotation lands
        deadline = time.monotonic() + 10
        while cache.get_secret_value("prod/db").version_id == first.version_id:
            assert time.monotonic() < deadline, "the new file was not seen"
            time.sleep(0.05)
        print("rotated: new version seen, password changed:",
              cache.get("prod/db#password") != secret["password"])
        cache.close()


if __name__ == "__main__":
    main()
