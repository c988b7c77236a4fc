"""The kubelet's atomic writer, reproduced step for step, so tests swap mounted secrets exactly as
Kubernetes (and the Secrets Store CSI driver, which uses the same writer) does.

kubernetes ``pkg/volume/util/atomic_writer.go``, ``AtomicWriter.Write``:

1. read the ``..data`` symlink to find the current timestamped directory;
2. create a new timestamped directory ``..YYYY_MM_DD_HH_MM_SS.<random>`` (``os.MkdirTemp``), mode 0755;
3. write every file of the payload into it;
4. create the user-visible entries that do not exist yet: ``<name> -> ..data/<name>`` (the first path
   component of each file);
5. create the symlink ``..data_tmp -> <new timestamped directory>``;
6. rename ``..data_tmp`` over ``..data`` (the atomic step);
7. remove user-visible entries no longer in the payload;
8. remove the old timestamped directory (``os.RemoveAll``).

A reader that resolved ``..data`` just before step 6 and looks its file up after step 8 gets ENOENT:
that is the transient not-found a backend must retry, and this writer produces it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Mapping

__all__ = ["DATA_DIR", "AtomicWriter"]

DATA_DIR = "..data"
_NEW_DATA_DIR = "..data_tmp"


class AtomicWriter:
    """Projects ``{relative path: bytes}`` payloads into ``target_dir`` as the kubelet does."""

    def __init__(self, target_dir: str | os.PathLike[str], mode: int = 0o644) -> None:
        self.target_dir = os.fspath(target_dir)
        os.makedirs(self.target_dir, exist_ok=True)
        self.mode = mode
        self.swaps = 0

    def write(self, payload: Mapping[str, bytes | str]) -> str:
        """One projection; returns the new timestamped directory's name."""
        clean = {os.path.normpath(path): data.encode() if isinstance(data, str) else data
                 for path, data in payload.items()}
        for path in clean:
            if os.path.isabs(path) or path.split(os.sep)[0].startswith("..") or ".." in path.split(os.sep):
                raise ValueError(f"invalid path {path!r}")
        data_link = os.path.join(self.target_dir, DATA_DIR)
        # (1) the current timestamped directory, and the user-visible paths it holds
        try:
            old_ts = os.readlink(data_link)
        except FileNotFoundError:
            old_ts = ""
        old_top = set(os.listdir(os.path.join(self.target_dir, old_ts))) if old_ts else set()
        # (2) a new timestamped directory
        prefix = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime())
        ts_dir = tempfile.mkdtemp(prefix=prefix, dir=self.target_dir)
        os.chmod(ts_dir, 0o755)
        ts_name = os.path.basename(ts_dir)
        # (3) the payload
        for path, data in clean.items():
            full = os.path.join(ts_dir, path)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "wb") as f:
                f.write(data)
            os.chmod(full, self.mode)
        # (4) user-visible symlinks for new top-level names
        new_top = {path.split(os.sep)[0] for path in clean}
        for name in new_top:
            visible = os.path.join(self.target_dir, name)
            if not os.path.islink(visible):
                os.symlink(os.path.join(DATA_DIR, name), visible)
        # (5) and (6): the atomic swap
        new_link = os.path.join(self.target_dir, _NEW_DATA_DIR)
        os.symlink(ts_name, new_link)
        os.rename(new_link, data_link)
        # (7) user-visible entries that are gone
        for name in old_top - new_top:
            os.remove(os.path.join(self.target_dir, name))
        # (8) the old timestamped directory
        if old_ts:
            shutil.rmtree(os.path.join(self.target_dir, old_ts))
        self.swaps += 1
        return ts_name
