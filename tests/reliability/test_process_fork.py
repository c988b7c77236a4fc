"""Process life across ``fork()``: ``os.fork``, ``multiprocessing`` (fork context) and ``gunicorn --preload``.

The contract (DESIGN.md, "Process life and answer integrity"): after a fork each cache in the child keeps its
cached entries, forgets the fetches in flight in the parent, and gets its own background worker and its own
backend clients and connections. Parent and child never share a socket, a lock held by a parent thread, or a
worker.

The cache talks to moto's HTTP server through a FaultProxy, both in a subprocess of their own
(``python -m devtools.faults``), over real keep-alive connections; the proxy's request log counts API calls
from every process. Every secret has its own canary value, so a value served for the wrong id (an answer
crossed on a socket shared between parent and child) is caught. Every wait is bounded: a child that hangs is
killed and fails the test.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from devtools.faults import RemoteFaults
from secretcache import SecretCache
from secretcache.backends.aws import AwsBackend
from secretcache.config import CacheConfig
from secretcache.errors import SecretCacheError
from tests.fixtures.fix_canary import canary_value
from tests.fixtures.forking import CHILD_BOUND, fork_child, leave_pytests_log_handlers, reap

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning"),  # Python 3.12+: fork with threads
]

ROOT = Path(__file__).resolve().parents[2]
READS = ("fork/alpha", "fork/beta", "fork/gamma", "fork/delta")


# -- moto and the proxy, in a process of their own ---------------------------------------------------------


class Aws:
    """The moto + FaultProxy subprocess, the secrets it holds, and the means to count calls."""

    def __init__(self, moto: str, proxy: str) -> None:
        import boto3

        self.moto, self.proxy = moto, proxy
        self.faults = RemoteFaults(proxy)
        self.admin = boto3.client("secretsmanager", endpoint_url=moto, region_name="us-east-1")
        self.values: dict[str, str] = {}

    def create(self, name: str) -> str:
        value = canary_value(name)
        self.admin.create_secret(Name=name, SecretString=value)
        self.values[name] = value
        return value

    def put(self, name: str) -> str:
        value = canary_value(name)
        self.admin.put_secret_value(SecretId=name, SecretString=value)
        self.values[name] = value
        return value

    def whose(self, value: str | None) -> str:
        """The secret a value belongs to (never the value itself: messages must not carry secrets)."""
        return next((name for name, v in self.values.items() if v == value), "<no known secret>")

    def calls(self, name: str) -> int:
        return self.faults.count("GetSecretValue", name)


@pytest.fixture(scope="module")
def aws() -> Iterator[Aws]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-m", "devtools.faults"], cwd=ROOT, env=env, text=True,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 60)
        assert ready, "moto + proxy subprocess did not start within 60 s"
        urls = json.loads(process.stdout.readline())
        state = Aws(urls["moto"], urls["proxy"])
        for name in READS:
            state.create(name)
        yield state
    finally:
        with contextlib.suppress(OSError):
            assert process.stdin is not None
            process.stdin.close()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(15)


def make_cache(aws: Aws, **config: Any) -> SecretCache:
    from botocore.config import Config

    backend = AwsBackend(endpoint_url=aws.proxy, region_name="us-east-1", config=Config(
        retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=2, read_timeout=5))
    return SecretCache(backend, config=CacheConfig(**{"ttl": 300.0, **config}))


# -- forking with a bound ------------------------------------------------------------------------------


def read_loop(cache: SecretCache, aws: Aws, names: list[str], rounds: int, rng: random.Random,
              problems: list[str], who: str) -> None:
    """Read ``names`` (refresh: an API call each; get: the cache), checking every value's owner."""
    for _ in range(rounds):
        name = rng.choice(names)
        try:
            got = cache.refresh(name).secret_string if rng.random() < 0.7 else cache.get_secret_string(name)
        except SecretCacheError as e:  # moto is healthy: any failure means a broken connection
            problems.append(f"{who}: {name}: {type(e).__name__}")
            continue
        except BaseException as e:
            problems.append(f"{who}: {name}: unexpected {type(e).__name__}: {e}")
            return
        if got != aws.values[name]:
            problems.append(f"{who}: asked {name}, got the value of {aws.whose(got)}")


def threaded_reads(cache: SecretCache, aws: Aws, names: list[str], *, threads: int, rounds: int,
                   seed: int, who: str) -> dict[str, Any]:
    """Reads on ``threads`` threads, joined with a bound; the report a child writes."""
    problems: list[str] = []
    workers = [threading.Thread(target=read_loop, daemon=True,
                                args=(cache, aws, names, rounds, random.Random(seed + i), problems, f"{who}/{i}"))
               for i in range(threads)]
    for t in workers:
        t.start()
    deadline = time.monotonic() + CHILD_BOUND / 2  # one bound for all: the report is sent in time
    for t in workers:
        t.join(max(0.0, deadline - time.monotonic()))
    hung = [t.name for t in workers if t.is_alive()]
    return {"problems": problems, "hung": f"{who}: {len(hung)} reader threads hung" if hung else None}


class ParentReaders:
    """Reader threads in the parent, running across the forks (so reads are in flight when fork happens)."""

    def __init__(self, cache: SecretCache, aws: Aws, names: list[str], threads: int = 2) -> None:
        self.problems: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(cache, aws, names, i), daemon=True)
                         for i in range(threads)]
        for t in self._threads:
            t.start()

    def _run(self, cache: SecretCache, aws: Aws, names: list[str], i: int) -> None:
        rng = random.Random(i)
        while not self._stop.is_set():
            read_loop(cache, aws, names, 1, rng, self.problems, f"parent/{i}")

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(CHILD_BOUND)
            if t.is_alive():
                self.problems.append("parent: a reader thread hung")


def check_reports(reports: list[dict[str, Any]], parent: list[str]) -> None:
    lines = list(parent)
    for i, report in enumerate(reports):
        for key in ("hung", "crash"):
            if report.get(key):
                lines.append(f"child {i}: {report[key]}")
        lines += [f"child {i}: {p}" for p in report.get("problems", [])]
    assert not lines, f"{len(lines)} problems, first ones:\n" + "\n".join(lines[:20])


# -- os.fork ------------------------------------------------------------------------------------------


def test_os_fork_each_process_gets_its_own_secrets_with_reads_in_flight_on_both_sides(aws: Aws) -> None:
    cache = make_cache(aws)
    for name in READS:
        assert cache.get_secret_string(name) == aws.values[name]  # warm: entries, a keep-alive connection
    parent = ParentReaders(cache, aws, ["fork/alpha"])  # the parent asks alpha...
    reports = []
    try:
        for round_ in range(12):
            asked = ["fork/beta"] if round_ % 2 else ["fork/gamma", "fork/delta"]  # ...children other ids
            pid, fd = fork_child(lambda asked=asked, r=round_: threaded_reads(
                cache, aws, asked, threads=3, rounds=15, seed=100 * r, who=f"round {r}"))
            reports.append(reap(pid, fd))
    finally:
        parent.stop()
        cache.close()
    check_reports(reports, parent.problems)


def test_os_fork_child_keeps_the_parents_cached_entries(aws: Aws) -> None:
    cache = make_cache(aws)
    name = "fork/gamma"
    assert cache.get_secret_string(name) == aws.values[name]
    before = aws.calls(name)

    def child() -> dict[str, Any]:
        got = cache.get_secret_string(name)
        return {"owner": aws.whose(got), "peeked": cache.peek(name) is not None}

    report = reap(*fork_child(child))
    cache.close()
    assert report.get("owner") == name, report
    assert report.get("peeked") is True, report
    assert aws.calls(name) == before, "the child's first read of a warmed secret made an API call"


def test_os_fork_a_refresh_in_flight_in_the_parent_does_not_hang_the_child(aws: Aws) -> None:
    name = "fork/delta"
    cache = make_cache(aws)
    assert cache.get_secret_string(name) == aws.values[name]
    aws.faults.fail("pass", targets=[name])
    aws.faults.script("hang")  # the parent's refresh hangs at the proxy; the next request passes
    before = aws.calls(name)
    def held_refresh() -> None:
        with contextlib.suppress(SecretCacheError):  # it fails once the proxy drops it: expected
            cache.refresh(name)

    held = threading.Thread(target=held_refresh, daemon=True)
    try:
        held.start()
        deadline = time.monotonic() + 10
        while aws.calls(name) == before:
            assert time.monotonic() < deadline, "the parent's refresh never reached the proxy"
            time.sleep(0.01)

        def child() -> dict[str, Any]:
            box: dict[str, Any] = {}

            def read() -> None:
                try:
                    box["refresh"] = aws.whose(cache.refresh(name).secret_string)
                    box["get"] = aws.whose(cache.get_secret_string(name))
                except SecretCacheError as e:
                    box["error"] = type(e).__name__

            t = threading.Thread(target=read, daemon=True)
            t.start()
            t.join(CHILD_BOUND / 2)
            return {**box, "hung": "the child's read waited on the parent's fetch" if t.is_alive() else None}

        report = reap(*fork_child(child))
    finally:
        aws.faults.clear()
        held.join(CHILD_BOUND)
        cache.close()
    assert not report.get("hung"), report["hung"]
    assert not report.get("crash"), report["crash"]
    assert report.get("refresh") == name, report
    assert report.get("get") == name, report


def test_os_fork_a_background_refresh_in_the_child_completes(aws: Aws) -> None:
    """The parent's refresh worker exists (it ran a background refresh) before the fork; the child's
    background refresh must run on a worker of the child's own."""
    name = "fork/bg"
    if name not in aws.values:
        aws.create(name)
    ttl = 0.5
    cache = make_cache(aws, ttl=ttl, jitter=0.0, stale_while_revalidate=300.0)
    first = aws.values[name]
    assert cache.get_secret_string(name) == first
    time.sleep(ttl + 0.1)  # past ttl, inside stale-while-revalidate
    assert cache.get_secret_string(name) == first  # served at once; a background refresh runs in the parent
    deadline = time.monotonic() + 10
    while cache.stats.refreshes < 1:
        assert time.monotonic() < deadline, "the parent's background refresh never finished"
        time.sleep(0.01)
    second = aws.put(name)
    time.sleep(ttl + 0.1)

    def child() -> dict[str, Any]:
        end = time.monotonic() + CHILD_BOUND / 2
        while time.monotonic() < end:
            got = cache.get_secret_string(name)  # stale within swr: served, a background refresh started
            if got == second:
                return {"refreshed": True}
            time.sleep(0.05)
        return {"refreshed": False}

    try:
        report = reap(*fork_child(child))
    finally:
        cache.close()
    assert not report.get("crash"), report["crash"]
    assert not report.get("hung"), report["hung"]
    assert report.get("refreshed") is True, "the child's background refresh never completed (no worker of its own)"


# -- multiprocessing, fork context ---------------------------------------------------------------------


_MP_CACHE: SecretCache | None = None
_MP_AWS: Aws | None = None


def _mp_child(conn: Any, names: list[str], seed: int) -> None:
    assert _MP_CACHE is not None
    assert _MP_AWS is not None
    leave_pytests_log_handlers()
    report = threaded_reads(_MP_CACHE, _MP_AWS, names, threads=3, rounds=15, seed=seed, who=f"mp {seed}")
    conn.send(report)
    conn.close()


def test_multiprocessing_fork_children_get_their_own_secrets_with_reads_in_flight(aws: Aws) -> None:
    import multiprocessing

    global _MP_CACHE, _MP_AWS
    ctx = multiprocessing.get_context("fork")
    cache = make_cache(aws)
    for name in READS:
        cache.get_secret_string(name)
    _MP_CACHE, _MP_AWS = cache, aws
    parent = ParentReaders(cache, aws, ["fork/alpha"])
    reports: list[dict[str, Any]] = []
    try:
        for round_ in range(3):
            pipes, processes = [], []
            for i in range(4):  # four children at a time, each asking its own secret
                receive, send = ctx.Pipe(duplex=False)
                names = [READS[1 + (i % 3)]]
                process = ctx.Process(target=_mp_child, args=(send, names, 10 * round_ + i), daemon=True)
                process.start()
                send.close()
                pipes.append(receive)
                processes.append(process)
            for receive, process in zip(pipes, processes, strict=True):
                if receive.poll(CHILD_BOUND):
                    try:
                        reports.append(receive.recv())
                    except EOFError:
                        reports.append({"crash": f"child {process.pid} died without a report"})
                else:
                    reports.append({"hung": f"child {process.pid} sent nothing within {CHILD_BOUND} s"})
                process.join(5)
                if process.is_alive():
                    process.kill()
                    process.join(5)
                receive.close()
    finally:
        parent.stop()
        cache.close()
        _MP_CACHE = _MP_AWS = None
    check_reports(reports, parent.problems)


# -- gunicorn --preload ----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get_json(url: str, timeout: float = 20.0) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def test_gunicorn_preload_workers_each_answer_with_the_secret_asked(aws: Aws) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SC_FORK_ENDPOINT": aws.proxy,
           "SC_FORK_SECRETS": ",".join(READS)}
    with tempfile.TemporaryFile(mode="w+") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--preload", "-w", "4", "-b", f"127.0.0.1:{port}",
             "--timeout", "25", "--graceful-timeout", "5", "tests.programs.fork_app:app"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                assert server.poll() is None, f"gunicorn exited with {server.returncode}:\n{_tail(log)}"
                try:
                    _get_json(f"{base}/ping", timeout=2)
                    break
                except OSError:
                    assert time.monotonic() < deadline, f"gunicorn did not answer within 60 s:\n{_tail(log)}"
                    time.sleep(0.1)

            rng = random.Random(7)
            plan = [(rng.choice(READS), "refresh" if rng.random() < 0.7 else "get") for _ in range(400)]

            def ask(item: tuple[str, str]) -> tuple[str, dict[str, Any] | str]:
                name, mode = item
                try:
                    return name, _get_json(f"{base}/secret?id={name}&mode={mode}")
                except Exception as e:  # a hung or killed worker: reported, never waited on forever
                    return name, f"{type(e).__name__}: {e}"

            with ThreadPoolExecutor(16) as pool:
                answers = list(pool.map(ask, plan, timeout=300))
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(10)
        problems, pids = [], set()
        for name, answer in answers:
            if isinstance(answer, str):
                problems.append(f"{name}: request failed: {answer}")
                continue
            pids.add(answer["pid"])
            if "error" in answer:
                problems.append(f"{name}: worker {answer['pid']} raised {answer['error']}")
            elif answer.get("value") != aws.values[name]:
                owner = aws.whose(answer.get("value"))
                problems.append(f"{name}: worker {answer['pid']} answered the value of {owner}")
        assert not problems, f"{len(problems)} of {len(answers)} requests went wrong, first ones:\n" + \
            "\n".join(problems[:20])
        assert len(pids) >= 2, f"only {len(pids)} worker answered: the load did not spread over the workers"


def _tail(log: Any) -> str:
    log.flush()
    log.seek(0)
    return str(log.read())[-3000:]
