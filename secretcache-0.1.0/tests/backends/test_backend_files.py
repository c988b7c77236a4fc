"""FileBackend: naming as ASCP writes files, values and versions, change detection by path at most once per
check_interval (no I/O inside it, counted), swaps followed, torn and missing reads retried, errors."""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

import pytest

from devtools.atomic_writer import AtomicWriter
from devtools.canary import CANARY, canary_value
from devtools.file_io import Clock, counting_os, patch_os
from secretcache import SecretCache
from secretcache.backends import FileBackend, ForcedReads, SecretsBackend
from secretcache.config import CacheConfig
from secretcache.errors import (
    SecretAccessDeniedError,
    SecretCacheError,
    SecretFormatError,
    SecretNotFoundError,
    SecretUnavailableError,
)

FULL_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf"
PARTIAL_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db"


def put(root: Path, name: str, content: str | bytes) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(content.encode() if isinstance(content, str) else content)
    os.replace(tmp, path)  # render-and-rename, as Vault Agent writes
    return path


# -- naming ---------------------------------------------------------------------------------------


def test_a_name_maps_to_its_file_with_slashes_translated(tmp_path: Path) -> None:
    value = canary_value("db")
    put(tmp_path, "prod_db", value)
    backend = FileBackend(tmp_path)
    got = backend.get_secret_value("prod/db")
    assert got.secret_string == value
    assert got.name == "prod/db"
    assert got.arn is None
    assert got.version_stages == ("AWSCURRENT",)


def test_a_full_arn_maps_to_the_name_without_its_suffix_and_a_partial_arn_to_its_name(tmp_path: Path) -> None:
    put(tmp_path, "prod_db", "v")
    backend = FileBackend(tmp_path)
    full = backend.get_secret_value(FULL_ARN)
    assert (full.name, full.arn, full.secret_string) == ("prod/db", FULL_ARN, "v")
    partial = backend.get_secret_value(PARTIAL_ARN)
    assert (partial.name, partial.arn, partial.secret_string) == ("prod/db", PARTIAL_ARN, "v")
    # The cache accepts these answers as answers to what it asked (name / ARN checks).
    cache = SecretCache(backend)
    assert cache.get_secret_string(FULL_ARN) == cache.get_secret_string(PARTIAL_ARN) == "v"


def test_a_partial_arn_whose_name_ends_like_a_suffix_still_finds_its_file(tmp_path: Path) -> None:
    put(tmp_path, "app_db-master", "m")  # "-master" looks like a 6-character suffix
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:app/db-master"
    assert FileBackend(tmp_path).get_secret_value(arn).secret_string == "m"


def test_the_file_ascp_writes_for_an_arn_object_name_without_alias_is_found(tmp_path: Path) -> None:
    put(tmp_path, FULL_ARN.replace("/", "_"), "by-arn")
    assert FileBackend(tmp_path).get_secret_value(FULL_ARN).secret_string == "by-arn"


def test_aliases_come_first_like_object_alias_and_apply_to_an_arn_by_its_name(tmp_path: Path) -> None:
    put(tmp_path, "prod_db", "by-name")
    put(tmp_path, "dbcreds", "by-alias")
    backend = FileBackend(tmp_path, aliases={"prod/db": "dbcreds"})
    assert backend.get_secret_value("prod/db").secret_string == "by-alias"
    assert backend.get_secret_value(FULL_ARN).secret_string == "by-alias"


def test_jmes_path_files_are_read_by_their_alias(tmp_path: Path) -> None:
    put(tmp_path, "dbusername", "app")
    put(tmp_path, "dbpassword", "pw")
    backend = FileBackend(tmp_path)
    assert backend.get_secret_value("dbusername").secret_string == "app"
    assert backend.get_secret_value("dbpassword").secret_string == "pw"


def test_path_translation_none_keeps_directories_and_another_character_is_used(tmp_path: Path) -> None:
    put(tmp_path, "prod/db", "nested")
    put(tmp_path, "prod-db", "dashed")
    assert FileBackend(tmp_path, path_translation=None).get_secret_value("prod/db").secret_string == "nested"
    assert FileBackend(tmp_path, path_translation=None).get_secret_value("/prod/db").secret_string == "nested"
    assert FileBackend(tmp_path, path_translation="-").get_secret_value("prod/db").secret_string == "dashed"


def test_names_that_would_leave_the_root_are_not_found(tmp_path: Path) -> None:
    root = tmp_path / "mount"
    root.mkdir()
    put(tmp_path, "outside", "x")
    backend = FileBackend(root, path_translation=None)
    for secret_id in ("../outside", "a/../../outside", "..", "."):
        with pytest.raises(SecretNotFoundError, match="secret"):
            backend.get_secret_value(secret_id)


@pytest.mark.parametrize("kwargs", [
    {"path_translation": "ab"}, {"path_translation": "/"}, {"path_translation": ""},
    {"check_interval": -1}, {"check_interval": float("inf")}, {"check_interval": float("nan")},
    {"check_interval": True}, {"aliases": {"x": "../etc/passwd"}}, {"aliases": {"x": "/etc/passwd"}},
])
def test_bad_arguments_raise_value_error_at_construction(tmp_path: Path, kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="FileBackend"):
        FileBackend(tmp_path, **kwargs)  # type: ignore[arg-type]


# -- values and versions ----------------------------------------------------------------------------


def test_utf8_content_is_a_string_anything_else_binary(tmp_path: Path) -> None:
    put(tmp_path, "text", "héllo " + CANARY)
    put(tmp_path, "blob", CANARY.encode() + b"\xff\x00")
    backend = FileBackend(tmp_path)
    text, blob = backend.get_secret_value("text"), backend.get_secret_value("blob")
    assert (text.secret_string, text.secret_binary) == ("héllo " + CANARY, None)
    assert (blob.secret_string, blob.secret_binary) == (None, CANARY.encode() + b"\xff\x00")
    assert CANARY not in repr(text) + repr(blob) + repr(backend)


def test_the_version_id_is_a_digest_of_the_content_that_does_not_reveal_it(tmp_path: Path) -> None:
    import hashlib

    put(tmp_path, "a", "same")
    put(tmp_path, "b", "same")
    put(tmp_path, "c", "other")
    backend = FileBackend(tmp_path)
    a, b, c = (backend.get_secret_value(x).version_id for x in "abc")
    assert a == b != c
    assert a not in (hashlib.sha256(b"same").hexdigest(), hashlib.md5(b"same").hexdigest())  # keyed


def test_only_awscurrent_and_the_version_held_now_are_served(tmp_path: Path) -> None:
    put(tmp_path, "app", "v1")
    backend = FileBackend(tmp_path)
    current = backend.get_secret_value("app", version_stage="AWSCURRENT")
    assert backend.get_secret_value("app", version_id=current.version_id) is current
    for stage in ("AWSPENDING", "AWSPREVIOUS", "blue"):
        with pytest.raises(SecretNotFoundError, match=stage):
            backend.get_secret_value("app", version_stage=stage)
    with pytest.raises(SecretNotFoundError, match="does not hold version"):
        backend.get_secret_value("app", version_id="0" * 32)


def test_it_is_a_secrets_backend_with_forced_reads(tmp_path: Path) -> None:
    backend = FileBackend(tmp_path)
    assert isinstance(backend, SecretsBackend)
    assert isinstance(backend, ForcedReads)


def test_batch_reads_each_file_and_keeps_failures_by_id(tmp_path: Path) -> None:
    put(tmp_path, "a", "1")
    values, errors = FileBackend(tmp_path).batch_get_secret_values(["a", "missing", "a"])
    assert [v.secret_string for v in values] == ["1"]
    assert list(errors) == ["missing"]
    assert isinstance(errors["missing"], SecretNotFoundError)


# -- change detection -----------------------------------------------------------------------------


def test_within_the_interval_a_read_does_no_io_and_then_one_stat_checks_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    put(tmp_path, "app", "v1")
    clock = Clock()
    backend = FileBackend(tmp_path, check_interval=1.0, timer=clock)
    with counting_os(monkeypatch) as fs:
        first = backend.get_secret_value("app")
        assert fs.calls["open"] == 1
        fs.reset()
        for _ in range(1000):
            assert backend.get_secret_value("app") is first
        clock.advance(0.999)
        assert backend.get_secret_value("app") is first
        assert fs.total == 0  # a hit: no stat, no open, nothing
        clock.advance(0.001)
        assert backend.get_secret_value("app").version_id == first.version_id
        assert dict(fs.calls) == {"stat": 1}  # unchanged: one stat per id per interval
        fs.reset()
        assert backend.get_secret_value("app").version_id == first.version_id
        assert fs.total == 0


def test_within_the_interval_nothing_is_touched_even_when_the_directory_is_moved_away(tmp_path: Path) -> None:
    root = tmp_path / "mount"
    put(root, "app", "v1")
    clock = Clock()
    backend = FileBackend(root, check_interval=5.0, timer=clock)
    first = backend.get_secret_value("app")
    root.rename(tmp_path / "elsewhere")
    clock.advance(4.9)
    assert backend.get_secret_value("app") is first
    clock.advance(0.1)
    with pytest.raises(SecretNotFoundError):
        backend.get_secret_value("app")


def test_a_swapped_file_is_seen_once_the_interval_has_passed_and_not_before(tmp_path: Path) -> None:
    writer = AtomicWriter(tmp_path)
    writer.write({"app": "v1"})
    clock = Clock()
    backend = FileBackend(tmp_path, check_interval=1.0, timer=clock)
    assert backend.get_secret_value("app").secret_string == "v1"
    writer.write({"app": "v2"})
    clock.advance(0.5)
    assert backend.get_secret_value("app").secret_string == "v1"
    clock.advance(0.5)
    assert backend.get_secret_value("app").secret_string == "v2"


def test_an_in_place_rewrite_is_seen_too(tmp_path: Path) -> None:
    path = put(tmp_path, "app", "v1")
    clock = Clock()
    backend = FileBackend(tmp_path, check_interval=1.0, timer=clock)
    assert backend.get_secret_value("app").secret_string == "v1"
    path.write_text("v2-longer")
    clock.advance(1.0)
    assert backend.get_secret_value("app").secret_string == "v2-longer"


def test_refresh_reads_the_file_at_once(tmp_path: Path) -> None:
    writer = AtomicWriter(tmp_path)
    writer.write({"app": "v1"})
    clock = Clock()
    backend = FileBackend(tmp_path, check_interval=3600.0, timer=clock)
    cache = SecretCache(backend, config=CacheConfig(ttl=3600))
    assert cache.get_secret_string("app") == "v1"
    writer.write({"app": "v2"})
    assert cache.get_secret_string("app") == "v1"
    assert cache.refresh("app").secret_string == "v2"
    assert backend.get_secret_value("app").secret_string == "v2"  # what refresh read is what a read sees


def test_a_cache_with_ttl_zero_sees_a_change_within_the_interval(tmp_path: Path) -> None:
    writer = AtomicWriter(tmp_path)
    writer.write({"app": "v1"})
    clock = Clock()
    cache = SecretCache(FileBackend(tmp_path, check_interval=1.0, timer=clock), config=CacheConfig(ttl=0))
    assert cache.get_secret_string("app") == "v1"
    writer.write({"app": "v2"})
    clock.advance(1.0)
    assert cache.get_secret_string("app") == "v2"
    cache.close()


def test_a_slow_check_that_started_before_a_swap_never_hides_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    """A check stamps the clock reading taken *before* its I/O: finishing late cannot make an old file
    look freshly checked."""
    writer = AtomicWriter(tmp_path)
    writer.write({"app": "v1"})
    clock = Clock()
    backend = FileBackend(tmp_path, check_interval=1.0, timer=clock)
    backend.get_secret_value("app")
    clock.advance(1.0)
    stat_done, release = threading.Event(), threading.Event()
    real_stat = os.stat

    def slow_stat(path: str) -> os.stat_result:
        result = real_stat(path)
        if threading.current_thread().name == "slow":
            stat_done.set()
            assert release.wait(10)
        return result

    patch_os(monkeypatch, stat=slow_stat)
    slow = threading.Thread(target=backend.get_secret_value, args=("app",), name="slow")
    slow.start()
    assert stat_done.wait(10)  # it saw v1's file...
    writer.write({"app": "v2"})
    clock.advance(1.0)  # ...the swap is done and an interval has passed
    release.set()
    slow.join(10)
    assert backend.get_secret_value("app").secret_string == "v2"


# -- torn, missing, errors --------------------------------------------------------------------------


def test_a_torn_read_is_retried_and_never_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = put(tmp_path, "app", json.dumps({"v": 1}))
    backend = FileBackend(tmp_path, check_interval=0)
    real_fstat = os.fstat
    calls = {"n": 0}

    def growing_fstat(fd: int) -> os.stat_result:
        calls["n"] += 1
        if calls["n"] == 2:  # after the first read: a writer appended meanwhile
            path.write_text(json.dumps({"v": 2}) + " ")
        return real_fstat(fd)

    patch_os(monkeypatch, fstat=growing_fstat)
    assert json.loads(backend.get_secret_value("app").secret_string or "") == {"v": 2}
    assert calls["n"] >= 4  # two attempts, two fstat each


def test_an_empty_file_is_a_write_in_progress_then_a_transient_error(tmp_path: Path) -> None:
    put(tmp_path, "app", "")
    with pytest.raises(SecretUnavailableError, match="empty"):
        FileBackend(tmp_path).get_secret_value("app")


def test_a_missing_file_seen_during_a_swap_is_retried_not_raised(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    writer = AtomicWriter(tmp_path)
    writer.write({"app": "v1"})
    backend = FileBackend(tmp_path, check_interval=0)
    real_open = os.open
    state = {"n": 0}

    def open_during_swap(path: str, flags: int, *args: int) -> int:
        state["n"] += 1
        if state["n"] == 1:
            writer.write({"app": "v2"})  # the first attempt resolved ..data just before the swap
            raise FileNotFoundError(path)
        return real_open(path, flags, *args)

    patch_os(monkeypatch, open=open_during_swap)
    assert backend.get_secret_value("app").secret_string == "v2"


def test_a_file_that_is_really_missing_is_not_found_naming_the_id_and_path(tmp_path: Path) -> None:
    with pytest.raises(SecretNotFoundError) as caught:
        FileBackend(tmp_path).get_secret_value("prod/missing")
    assert caught.value.secret_id == "prod/missing"
    assert "prod_missing" in str(caught.value)


def test_a_deleted_file_is_not_found_and_the_old_value_is_not_served_by_the_backend(tmp_path: Path) -> None:
    path = put(tmp_path, "app", "v1")
    clock = Clock()
    backend = FileBackend(tmp_path, check_interval=1.0, timer=clock)
    backend.get_secret_value("app")
    path.unlink()
    clock.advance(1.0)
    with pytest.raises(SecretNotFoundError):
        backend.get_secret_value("app")


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "app")
    with pytest.raises(SecretNotFoundError, match="not a regular file"):
        FileBackend(tmp_path).get_secret_value("app")  # a blocking open would hang here (the suite's timeout)


def test_a_directory_is_not_a_secret(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    with pytest.raises(SecretNotFoundError, match="not a regular file"):
        FileBackend(tmp_path).get_secret_value("app")


def test_an_unreadable_file_is_access_denied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    put(tmp_path, "app", "x")

    def denied(path: str, flags: int, *args: int) -> int:  # what open(2) says without read permission
        raise PermissionError(13, "Permission denied", path)

    patch_os(monkeypatch, open=denied)
    with pytest.raises(SecretAccessDeniedError, match="permission denied"):
        FileBackend(tmp_path).get_secret_value("app")


def test_a_file_over_the_secrets_manager_limit_is_a_format_error(tmp_path: Path) -> None:
    put(tmp_path, "big", CANARY * 10_000)
    with pytest.raises(SecretFormatError, match="over the 65536-byte limit") as caught:
        FileBackend(tmp_path).get_secret_value("big")
    assert CANARY not in str(caught.value)


def test_the_canary_never_reaches_logs_reprs_or_errors(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    writer = AtomicWriter(tmp_path)
    value = canary_value("mounted")
    writer.write({"app_db": json.dumps({"password": value}), "blob": CANARY.encode() + b"\xff"})
    caplog.set_level(logging.DEBUG)
    backend = FileBackend(tmp_path, check_interval=0)
    cache = SecretCache(backend, config=CacheConfig(ttl=0))
    texts = [repr(backend), repr(cache), repr(cache.get_secret_value("app/db")), repr(cache.get_secret_value("blob"))]
    assert cache.get("app/db#password") == value
    writer.write({"app_db": json.dumps({"password": canary_value("next")})})
    assert cache.refresh("app/db").version_id
    for call in (lambda: cache.get("app/db#missing"), lambda: cache.get_secret_string("blob"),
                 lambda: cache.get_secret_value("app/db", version_stage="AWSPENDING"),
                 lambda: cache.get_secret_json("nothing")):
        with pytest.raises(SecretCacheError) as caught:
            call()
        texts += [str(caught.value), repr(caught.value)]
    texts += [record.getMessage() for record in caplog.records]
    assert any("app/db" in text for text in texts)
    assert not [text for text in texts if CANARY in text]
    cache.close()


def test_prefetch_and_get_many_match_values_to_ids_by_name_arn_and_alias(tmp_path: Path) -> None:
    put(tmp_path, "prod_db", "a")
    put(tmp_path, "al", "b")
    ids = [FULL_ARN, "x/y", "prod/db", PARTIAL_ARN]
    with SecretCache(FileBackend(tmp_path, aliases={"x/y": "al"})) as cache:
        assert cache.prefetch(ids) == {}
        assert {k: v.secret_string for k, v in cache.get_many(ids).items()} == {
            FULL_ARN: "a", "x/y": "b", "prod/db": "a", PARTIAL_ARN: "a"}
        assert cache.stats.backend_calls == 1  # one batch; then four hits
        assert cache.stats.hits == 4


async def test_the_async_cache_reads_and_refreshes_mounted_files(tmp_path: Path) -> None:
    from secretcache import AsyncSecretCache

    writer = AtomicWriter(tmp_path)
    writer.write({"app": "v1"})
    cache = AsyncSecretCache(FileBackend(tmp_path, check_interval=3600), config=CacheConfig(ttl=3600))
    try:
        assert await cache.get_secret_string("app") == "v1"
        writer.write({"app": "v2"})
        assert (await cache.refresh("app")).secret_string == "v2"
        assert await cache.get_secret_string("app") == "v2"
    finally:
        await cache.close()
