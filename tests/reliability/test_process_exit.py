"""Process life, the end of it: interpreter exit with readers still running, and ``close()`` racing readers.

The contract (DESIGN.md, "Process life and answer integrity"): reads during interpreter shutdown and reads
racing or following ``close()`` return a value (fetching inline if needed) or raise a ``SecretCacheError``;
they never hang and never raise a raw ``RuntimeError`` (``cannot schedule new futures after shutdown``);
``close()`` is idempotent. Every wait here is bounded; a hang fails the test instead of stalling the run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from secretcache import AsyncSecretCache, SecretCache
from secretcache.config import CacheConfig
from secretcache.errors import SecretCacheError
from secretcache.testing import InMemoryBackend
from tests.fixtures.fix_canary import canary_value

ROOT = Path(__file__).resolve().parents[2]
EXIT_BOUND = 60.0  # seconds: "must not hang", far above the ~2 s the script needs
JOIN_BOUND = 20.0

# The script run in a child interpreter. Its readers keep reading past ttl + stale_while_revalidate (a slow
# backend that fails now and then, so both inline fetches and background retries happen) while the main
# thread ends: the non-daemon readers run on through threading's shutdown (after concurrent.futures has
# stopped taking work), the daemon readers until the interpreter tears down. Anything but a right value or a
# SecretCacheError is printed as UNEXPECTED; a value of the wrong secret as WRONG.
EXIT_SCRIPT = textwrap.dedent("""
    import random, sys, threading, time
    from secretcache import SecretCache
    from secretcache.config import CacheConfig
    from secretcache.errors import SecretCacheError
    from secretcache.testing import InMemoryBackend

    NAMES = [f"exit/{i}" for i in range(6)]
    backend = InMemoryBackend({name: "value-of-" + name for name in NAMES}, latency=0.02)
    cache = SecretCache(backend, config=CacheConfig(
        ttl=0.01, jitter=0.0, stale_while_revalidate=0.02, stale_if_error=3600.0,
        backoff_base=0.0, backoff_max=0.01, background_refresh=BACKGROUND))
    for name in NAMES:
        cache.get_secret_string(name)  # warm: the refresh worker is started by the first stale reads
    time.sleep(0.05)                   # every entry past ttl + stale_while_revalidate

    def reader(seed, seconds):
        rng = random.Random(seed)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            name = rng.choice(NAMES)
            if rng.random() < 0.1:
                backend.fail_next("5xx", secret_id=name)
            try:
                got = cache.get_secret_string(name)
            except SecretCacheError:
                continue
            except BaseException as e:
                print(f"UNEXPECTED {type(e).__name__}: {e}", file=sys.stderr, flush=True)
                raise
            if got != "value-of-" + name:
                print(f"WRONG value for {name}", file=sys.stderr, flush=True)

    for i in range(4):
        threading.Thread(target=reader, args=(i, 1.5), daemon=False, name=f"reader-{i}").start()
    for i in range(4, 8):
        threading.Thread(target=reader, args=(i, 30.0), daemon=True, name=f"daemon-reader-{i}").start()
    time.sleep(0.2)
    print("main thread done", flush=True)
""")


def _run_script(source: str, *, timeout: float = EXIT_BOUND) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONFAULTHANDLER": "1"}
    process = subprocess.Popen([sys.executable, "-c", source], cwd=ROOT, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate(timeout=30)
        pytest.fail(f"the interpreter did not exit within {timeout} s (a reader hung at shutdown)\n"
                    f"stdout:\n{out}\nstderr:\n{err[-4000:]}")
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


@pytest.mark.parametrize("background", [True, False], ids=["background-refresh", "inline-refresh"])
def test_interpreter_exit_with_reader_threads_exits_cleanly(background: bool) -> None:
    result = _run_script(EXIT_SCRIPT.replace("BACKGROUND", repr(background)))
    assert "main thread done" in result.stdout
    for marker in ("RuntimeError", "cannot schedule new futures", "Traceback", "UNEXPECTED", "WRONG",
                   "Fatal Python error"):
        assert marker not in result.stderr, f"{marker!r} at interpreter exit:\n{result.stderr[-4000:]}"
    assert result.returncode == 0, result.stderr[-4000:]


def test_interpreter_exit_with_a_reader_starting_refreshes_during_shutdown() -> None:
    """A reader that first needs a refresh once threading's shutdown has begun (no worker pool yet, and none
    may be started now): it gets values, never a raw RuntimeError, and never waits on a refresh that cannot run
    (the non-daemon thread would keep the interpreter alive)."""
    script = textwrap.dedent("""
        import sys, threading, time
        from secretcache import SecretCache
        from secretcache.config import CacheConfig
        from secretcache.errors import SecretCacheError
        from secretcache.testing import InMemoryBackend

        backend = InMemoryBackend({"exit/slow": "v"}, latency=0.05)
        cache = SecretCache(backend, config=CacheConfig(ttl=0.01, jitter=0.0, stale_while_revalidate=0.05,
                                                        stale_if_error=3600.0, backoff_base=0.0, backoff_max=0.0))
        cache.get_secret_string("exit/slow")

        def late_reader():
            time.sleep(0.3)  # reads once threading's shutdown has begun (the main thread has ended)
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                try:
                    assert cache.get_secret_string("exit/slow") == "v"
                except SecretCacheError:
                    pass
                except BaseException as e:
                    print(f"UNEXPECTED {type(e).__name__}: {e}", file=sys.stderr, flush=True)
                    raise
                time.sleep(0.005)
            print("late reader done", flush=True)

        threading.Thread(target=late_reader).start()
        print("main thread done", flush=True)
    """)
    result = _run_script(script)
    assert "late reader done" in result.stdout, result.stderr[-4000:]
    for marker in ("RuntimeError", "cannot schedule new futures", "Traceback", "UNEXPECTED"):
        assert marker not in result.stderr, f"{marker!r} at interpreter exit:\n{result.stderr[-4000:]}"
    assert result.returncode == 0


# -- close() racing readers --------------------------------------------------------------------------------


@pytest.fixture
def fast_switching() -> Iterator[None]:
    """Thread switches every microsecond: the races below get many chances per round."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


NAMES = [f"close/{i}" for i in range(4)]


def _close_race_round(seed: int, values: dict[str, str], readers: int = 8, reads: int = 40) -> list[str]:
    """One round: ``readers`` threads read past ttl while another thread calls close() (twice); returns the
    problems seen (unexpected exceptions, wrong values, hung threads)."""
    backend = InMemoryBackend(values, latency=0.0005)
    cache = SecretCache(backend, config=CacheConfig(
        ttl=0.0005, jitter=0.0, stale_while_revalidate=0.002, stale_if_error=3600.0,
        backoff_base=0.0, backoff_max=0.0))
    for name in NAMES:
        cache.get_secret_string(name)
    problems: list[str] = []
    start = threading.Barrier(readers + 1, timeout=JOIN_BOUND)
    closed = threading.Event()
    after_close_reads = [0]

    def reader(i: int) -> None:
        start.wait()
        for n in range(reads):
            name = NAMES[(i + n) % len(NAMES)]
            was_closed = closed.is_set()
            try:
                got = cache.get_secret_string(name)
            except SecretCacheError:
                continue  # allowed while close() races (the backend is healthy: only ever transient)
            except BaseException as e:  # a raw RuntimeError from a shut-down worker pool, typically
                problems.append(f"reader {i}: {type(e).__name__}: {e}")
                return
            if got != values[name]:
                problems.append(f"reader {i}: wrong value for {name}")
            if was_closed:
                after_close_reads[0] += 1

    def closer() -> None:
        start.wait()
        threading.Event().wait(0.001 * (seed % 5))
        try:
            cache.close()
            closed.set()
            cache.close()  # idempotent
        except BaseException as e:
            problems.append(f"close(): {type(e).__name__}: {e}")

    threads = [threading.Thread(target=reader, args=(i,), daemon=True) for i in range(readers)]
    threads.append(threading.Thread(target=closer, daemon=True))
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN_BOUND)
        if t.is_alive():
            problems.append(f"round {seed}: a thread hung (joined for {JOIN_BOUND} s)")
            backend.heal()
            return problems
    # After close() every read still works: a value (fetched inline when due), never a hang.
    for name in NAMES:
        holder: list[object] = []
        t = threading.Thread(target=_read_into, args=(cache, name, holder), daemon=True)
        t.start()
        t.join(JOIN_BOUND)
        if t.is_alive():
            problems.append(f"round {seed}: a read after close() hung")
        elif holder[0] != values[name]:
            problems.append(f"round {seed}: a read after close() gave {holder[0]!r}")
    return problems


def _read_into(cache: SecretCache, name: str, holder: list[object]) -> None:
    holder.append(_read_or_error(cache, name))


def _read_or_error(cache: SecretCache, name: str) -> object:
    try:
        return cache.get_secret_string(name)
    except BaseException as e:
        return f"{type(e).__name__}: {e}"


def test_close_racing_readers_never_hangs_nor_raises_raw_errors(fast_switching: None) -> None:
    values = {name: canary_value(name) for name in NAMES}
    problems: list[str] = []
    for seed in range(40):
        problems += _close_race_round(seed, values)
        if len(problems) > 20:
            break
    assert not problems, "\n".join(problems[:20])


def test_reads_after_close_return_values_and_close_is_idempotent() -> None:
    values = {name: canary_value(name) for name in NAMES}
    backend = InMemoryBackend(values)
    cache = SecretCache(backend, config=CacheConfig(ttl=0.001, jitter=0.0, stale_while_revalidate=60.0))
    assert cache.get_secret_string(NAMES[0]) == values[NAMES[0]]
    threading.Event().wait(0.01)
    assert cache.get_secret_string(NAMES[0]) == values[NAMES[0]]  # starts the background worker
    cache.close()
    cache.close()
    threading.Event().wait(0.01)
    for name in NAMES:  # past ttl (a refresh is due) and cold: both work after close()
        assert _read_or_error(cache, name) == values[name]
    assert cache.refresh(NAMES[1]).secret_string == values[NAMES[1]]
    with cache:
        pass  # __exit__ closes a third time
    assert _read_or_error(cache, NAMES[2]) == values[NAMES[2]]


async def test_async_reads_after_close_return_values_and_close_is_idempotent() -> None:
    import asyncio

    values = {name: canary_value(name) for name in NAMES}
    cache = AsyncSecretCache(InMemoryBackend(values), config=CacheConfig(
        ttl=0.001, jitter=0.0, stale_while_revalidate=60.0))
    assert await cache.get_secret_string(NAMES[0]) == values[NAMES[0]]
    await asyncio.sleep(0.01)
    await cache.get_secret_string(NAMES[0])
    await cache.close()
    await cache.close()
    await asyncio.sleep(0.01)
    for name in NAMES:  # past ttl (a refresh is due) and cold: both work after close()
        assert await asyncio.wait_for(cache.get_secret_string(name), JOIN_BOUND) == values[name]
    assert (await asyncio.wait_for(cache.refresh(NAMES[1]), JOIN_BOUND)).secret_string == values[NAMES[1]]
