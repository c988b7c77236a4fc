"""FileBackend under the kubelet's atomic writer (devtools/atomic_writer.py, step for step): 16 reader threads
across hundreds of swaps of JSON secrets.

Asserted: no read raises (not even a transient not-found while the old timestamped directory is removed);
no value is torn or mixed (each JSON is whole and internally consistent, one version id per content);
every version is seen; and once a swap is complete and ``check_interval`` has passed, no read returns an
older version. "Has passed" is measured on the backend's own clock: a clock the test moves (so the rule is
checked exactly, however loaded the machine), and the real monotonic clock (the writer sleeps the interval:
a sleep lasts at least that long, so the rule holds however late the threads run).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from devtools.atomic_writer import AtomicWriter
from devtools.file_io import Clock, counting_os, wait_until
from secretcache.backends import FileBackend

READERS = 16
SWAPS = 300
INTERVAL = 1 / 512
"""About 2 ms; a power of two, so the test clock's sums are exact and "an interval has passed" is exact too."""
IDS = ("app/db", "app/api")


def payload(version: int) -> dict[str, str]:
    """Two JSON secrets whose every field names the version, and whose size changes with it."""
    pad = "x" * (version % 97)
    return {
        "app_db": json.dumps({"version": version, "username": "app", "password": f"pw-{version}", "pad": pad}),
        "app_api": json.dumps({"version": version, "key": f"key-{version}-" + "k" * (version % 13)}),
    }


def check(secret_id: str, text: str | None) -> int:
    """The version a value belongs to; fails on anything torn (bad JSON) or mixed (fields disagreeing)."""
    doc = json.loads(text or "")
    version = doc["version"]
    if secret_id == "app/db":
        assert doc["password"] == f"pw-{version}"
        assert doc["pad"] == "x" * (version % 97)
    else:
        assert doc["key"] == f"key-{version}-" + "k" * (version % 13)
    return int(version)


class Readers:
    def __init__(self, backend: FileBackend) -> None:
        self.backend = backend
        self.floor = 0  # published by the writer: every read starting after it must see this version or newer
        self.seen = dict.fromkeys(IDS, 0)
        self.versions: dict[str, dict[int, str]] = {secret_id: {} for secret_id in IDS}
        self.reads = 0
        self.errors: list[BaseException] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                for secret_id in IDS:
                    floor = self.floor
                    value = self.backend.get_secret_value(secret_id)
                    version = check(secret_id, value.secret_string)
                    assert version >= floor, f"{secret_id}: version {version} read after {floor} was due"
                    with self.lock:
                        self.reads += 1
                        self.seen[secret_id] = max(self.seen[secret_id], version)
                        known = self.versions[secret_id].setdefault(version, value.version_id or "")
                        assert known == value.version_id, "one content, two version ids"
        except BaseException as e:
            self.errors.append(e)

    def min_seen(self) -> int:
        with self.lock:
            return min(self.seen.values())


@pytest.mark.parametrize("clock_kind", ["test-clock", "monotonic"])
def test_sixteen_readers_across_hundreds_of_kubelet_swaps(tmp_path: Path, clock_kind: str) -> None:
    writer = AtomicWriter(tmp_path)
    writer.write(payload(0))
    clock = Clock()
    if clock_kind == "test-clock":
        timer: Callable[[], float] = clock
        stop_ticking = threading.Event()

        def tick() -> None:  # the interval keeps passing while the writer swaps, so reads race swaps
            while not stop_ticking.is_set():
                clock.advance(INTERVAL / 4)
                time.sleep(0)

        def interval_passes() -> None:
            clock.advance(INTERVAL)
    else:
        timer = time.monotonic

        def interval_passes() -> None:
            time.sleep(INTERVAL)

    backend = FileBackend(tmp_path, check_interval=INTERVAL, timer=timer)
    readers = Readers(backend)
    threads = [threading.Thread(target=readers.run, daemon=True) for _ in range(READERS)]
    ticker = None
    if clock_kind == "test-clock":
        ticker = threading.Thread(target=tick, daemon=True)
        ticker.start()
    for t in threads:
        t.start()
    try:
        for version in range(1, SWAPS + 1):
            writer.write(payload(version))
            interval_passes()
            readers.floor = version
            # Pacing by behaviour: the next swap waits until this version has been read.
            def seen(v: int = version) -> bool:
                return readers.min_seen() >= v or bool(readers.errors)

            assert wait_until(seen), f"version {version} not seen"
            assert not readers.errors, repr(readers.errors[0])
    finally:
        readers.stop.set()
        if ticker is not None:
            stop_ticking.set()
            ticker.join(10)
        for t in threads:
            t.join(10)
    assert not readers.errors, repr(readers.errors[0])
    assert not any(t.is_alive() for t in threads)
    assert writer.swaps == SWAPS + 1
    for secret_id in IDS:
        assert set(readers.versions[secret_id]) >= set(range(1, SWAPS + 1))  # every version seen
        assert len(set(readers.versions[secret_id].values())) == len(readers.versions[secret_id])


def test_hits_between_swaps_do_no_io_counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """16 threads reading one mounted secret: per interval, one stat (and one read after a swap) in all;
    every other read is a hit with no I/O."""
    writer = AtomicWriter(tmp_path)
    writer.write(payload(0))
    clock = Clock()
    backend = FileBackend(tmp_path, check_interval=1.0, timer=clock)
    backend.get_secret_value("app/db")
    barrier = threading.Barrier(READERS)
    reads_per_thread = 500

    def read_many() -> None:
        barrier.wait(10)
        for _ in range(reads_per_thread):
            backend.get_secret_value("app/db")

    with counting_os(monkeypatch) as fs:
        for round_ in range(3):
            if round_ == 1:
                writer.write(payload(1))
            clock.advance(1.0)
            backend.get_secret_value("app/db")  # the one check of this interval
            fs.reset()
            threads = [threading.Thread(target=read_many) for _ in range(READERS)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            assert fs.total == 0, dict(fs.calls)  # 8,000 hits, not one system call
        fs.reset()
        clock.advance(1.0)
        backend.get_secret_value("app/db")
        assert dict(fs.calls) == {"stat": 1}
    assert check("app/db", backend.get_secret_value("app/db").secret_string) == 1
