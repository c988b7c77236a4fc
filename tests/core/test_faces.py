"""The behaviour SecretCache and AsyncSecretCache share, written once and run on both faces.

Each test takes ``face``: the sync or the async cache behind one awaitable interface (every method is
awaited; a sync result is returned as is), over the store of tests/fixtures/fix_cache.py and a fake clock.
What only one face does (the thread workers, the event loop) stays in test_cache.py and test_aio.py.
"""

from __future__ import annotations

import inspect
import json
import traceback
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from secretcache import (
    AsyncSecretCache,
    InvalidReferenceError,
    SecretCache,
    SecretFormatError,
    SecretNotFoundError,
)
from secretcache.testing import InMemoryBackend
from tests.fixtures.fakes import CountingLock, FakeClock
from tests.fixtures.fix_cache import config
from tests.fixtures.fix_canary import CANARY, canary_value

pytestmark = pytest.mark.usefixtures("no_refresh_workers_left")

FACES = {"sync": SecretCache, "async": AsyncSecretCache}


class Face:
    """A SecretCache or an AsyncSecretCache whose methods are all awaited, so one test body runs on both."""

    def __init__(self, cache: SecretCache | AsyncSecretCache) -> None:
        self.cache = cache

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.cache, name)
        if not callable(attribute):
            return attribute

        async def call(*args: Any, **kwargs: Any) -> Any:
            result = attribute(*args, **kwargs)
            return await result if inspect.isawaitable(result) else result

        return call


MakeFace = Callable[..., Face]


@pytest.fixture(params=list(FACES))
async def make_face(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[MakeFace]:
    """``make_face(backend, **config_overrides)``: a cache of the face under test; closed afterwards."""
    made: list[Face] = []

    def make(backend: InMemoryBackend, **overrides: Any) -> Face:
        made.append(Face(FACES[request.param](backend, config=config(**overrides), timer=clock)))
        return made[-1]

    yield make
    for face in made:
        await face.close()


@pytest.fixture
def face(make_face: MakeFace, store: InMemoryBackend) -> Face:
    return make_face(store)


def gets(store: InMemoryBackend) -> int:
    return store.calls["GetSecretValue"]


# -- reads and reference forms ----------------------------------------------------------------------

async def test_typed_reads_return_the_stored_values(face: Face, store: InMemoryBackend, password: str) -> None:
    value = await face.get_secret_value("app/db")
    assert value.name == "app/db"
    assert value.arn == store.arn("app/db")
    assert value.version_stages == ("AWSCURRENT",)
    assert value.version_id
    assert value.created_date is not None
    assert json.loads(await face.get_secret_string("app/db"))["password"] == password
    assert (await face.get_secret_json("app/db"))["password"] == password
    assert (await face.get_secret_json("app/db"))["port"] == 5432
    assert await face.get_secret_binary("app/blob") == CANARY.encode() + b"\x00\xff"
    assert await face.get("app/db#password") == password
    assert await face.get("{{resolve:secretsmanager:app/db:SecretString:port}}") == "5432"
    assert await face.get(f"{store.arn('app/db')}:username::") == "app"
    url = await face.get("pg://{{resolve:secretsmanager:app/db:SecretString:username}}:"
                         "{{resolve:secretsmanager:app/db:SecretString:password}}@h/db")
    assert url == f"pg://app:{password}@h/db"
    assert gets(store) == 3  # app/db, app/blob, and app/db by ARN (another key)


async def test_get_resolves_every_reference_form(face: Face, store: InMemoryBackend, password: str) -> None:
    arn = store.arn("app/db")
    partial = arn[:-7]
    previous = json.dumps({"password": "previous-" + password})
    store.rotate("app/db", previous)
    store.rotate("app/db", json.dumps({"password": password, "port": 5432}))
    assert await face.get("app/db#password") == password
    assert await face.get("app/db#port") == "5432"  # non-string JSON rendered as JSON
    assert await face.get(f"{arn}#password") == password
    assert await face.get(f"{partial}#password") == password
    assert await face.get(f"{arn}:password::") == password  # ECS valueFrom
    assert await face.get(f"{arn}:password:AWSPREVIOUS:") == "previous-" + password
    assert await face.get("{{resolve:secretsmanager:app/db:SecretString:password}}") == password
    previous_ref = "{{resolve:secretsmanager:app/db:SecretString:password:AWSPREVIOUS}}"
    assert await face.get(previous_ref) == "previous-" + password
    vid = next(v for v, s in store.version_stages("app/db").items() if "AWSPREVIOUS" in s)
    by_version = f"{{{{resolve:secretsmanager:{arn}:SecretString:password::{vid}}}}}"
    assert await face.get(by_version) == "previous-" + password
    url = ("postgres://app:{{resolve:secretsmanager:app/db:SecretString:password}}@db:"
           "{{resolve:secretsmanager:app/db:SecretString:port}}/app")
    assert await face.get(url) == f"postgres://app:{password}@db:5432/app"
    assert (await face.get("app/api-key")).startswith(CANARY)


FORMAT_ERRORS = [
    ("binary as string", lambda c: c.get_secret_string("app/blob"), "app/blob"),
    ("binary via get", lambda c: c.get("app/blob"), "app/blob"),
    ("string as binary", lambda c: c.get_secret_binary("app/db"), "app/db"),
    ("not JSON", lambda c: c.get_secret_json("app/text"), "app/text"),
    ("JSON key of non-JSON", lambda c: c.get("app/text#password"), "app/text"),
    ("JSON array", lambda c: c.get_secret_json("app/array"), "app/array"),
    ("JSON key of an array", lambda c: c.get("app/array#0"), "app/array"),
    ("missing key", lambda c: c.get("app/db#passwd"), "passwd"),
    ("JSON of binary", lambda c: c.get_secret_json("app/blob"), "app/blob"),
]


@pytest.mark.parametrize(("label", "read", "named"), FORMAT_ERRORS, ids=[f[0] for f in FORMAT_ERRORS])
async def test_wrong_value_shape_raises_format_error_naming_the_secret_never_the_value(
    face: Face, label: str, read: Any, named: str
) -> None:
    with pytest.raises(SecretFormatError) as info:
        await read(face)
    error = info.value
    assert named in str(error)
    formatted = "".join(traceback.format_exception(error))
    assert CANARY not in str(error)
    assert CANARY not in repr(error)
    assert CANARY not in formatted
    with pytest.raises(SecretFormatError):  # a format error is not a backend failure: the value stays cached
        await read(face)


async def test_a_missing_secret_raises_not_found(face: Face) -> None:
    with pytest.raises(SecretNotFoundError):
        await face.get_secret_string("app/missing")


# -- bad input ----------------------------------------------------------------------------------------

BAD_IDS: list[Any] = [
    None, 42, 4.2, ["app/db"], ("app/db",), b"app/db", {"id": "x"}, "", "has space", "bad!char", "x" * 513,
    "arn:aws:secretsmanager:us-east-1:12345:secret:short-account",
    "arn:aws:s3:::bucket", "arn:aws:secretsmanager:us-east-1:123456789012:secret:",
]


@pytest.mark.parametrize("bad", BAD_IDS, ids=repr)
@pytest.mark.parametrize("method", ["get_secret_value", "get_secret_string", "get_secret_binary",
                                    "get_secret_json", "refresh"])
async def test_a_malformed_secret_id_raises_invalid_reference_error(
    face: Face, store: InMemoryBackend, method: str, bad: Any
) -> None:
    with pytest.raises(InvalidReferenceError) as info:
        await getattr(face, method)(bad)
    assert isinstance(info.value, ValueError)
    assert gets(store) == 0


BAD_REFERENCES: list[Any] = [
    *BAD_IDS,
    "app/db#",
    "#key",
    "{{resolve:secretsmanager:}}",
    "{{resolve:secretsmanager:app/db:SecretBinary}}",
    "{{resolve:secretsmanager:app/db:SecretString:k:AWSCURRENT:v1:extra}}",
    "{{resolve:secretsmanager:app/db:SecretString:k:AWSCURRENT:vid}}",
    "{{resolve:ssm:/param:not-a-version}}",
    "prefix {{resolve:secretsmanager:app/db",
    "arn:aws:secretsmanager:us-east-1:123456789012:secret:app/db:key",
    "arn:aws:secretsmanager:us-east-1:123456789012:secret:app/db:key:AWSCURRENT:vid",
]


@pytest.mark.parametrize("bad", BAD_REFERENCES, ids=repr)
async def test_a_malformed_reference_raises_invalid_reference_error_naming_it(face: Face, bad: Any) -> None:
    with pytest.raises(InvalidReferenceError) as info:
        await face.get(bad)
    if isinstance(bad, str) and bad and len(bad) < 100:
        assert bad in str(info.value) or repr(bad)[1:-1] in str(info.value)


@pytest.mark.parametrize(("kwargs", "named"), [
    ({"version_id": 5}, "version_id"), ({"version_id": 7}, "version_id"), ({"version_id": ""}, "version_id"),
    ({"version_id": ["v"]}, "version_id"),
    ({"version_stage": 0}, "version_stage"), ({"version_stage": ""}, "version_stage"),
    ({"version_stage": None, "version_id": b"v"}, "version_id"),
])
async def test_a_malformed_version_argument_raises_invalid_reference_error(
    face: Face, store: InMemoryBackend, kwargs: dict[str, Any], named: str
) -> None:
    with pytest.raises(InvalidReferenceError, match=named):
        await face.get_secret_value("app/db", **kwargs)
    assert gets(store) == 0


@pytest.mark.parametrize("cls", list(FACES.values()), ids=list(FACES))
def test_constructor_rejects_wrong_arguments(cls: type[SecretCache], store: InMemoryBackend) -> None:
    with pytest.raises(TypeError, match="SecretsBackend"):
        cls(object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="CacheConfig"):
        cls(store, config={"ttl": 1})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="client"):
        cls(store, client=object())  # type: ignore[arg-type]


# -- the hit path and versions ------------------------------------------------------------------------

async def test_a_hit_takes_no_lock_and_returns_the_same_object_without_copying(face: Face) -> None:
    first = await face.get_secret_value("app/db")
    blob = await face.get_secret_value("app/blob")
    counting = CountingLock(face._core._lock)
    face._core._lock = counting
    for _ in range(100):
        assert await face.get_secret_value("app/db") is first
        assert await face.get_secret_value("app/db", version_stage="AWSCURRENT") is first
        assert await face.get_secret_string("app/db") is first.secret_string
        await face.get("app/db#password")
    assert await face.get_secret_binary("app/blob") is blob.secret_binary
    assert counting.acquired == 0
    assert face.stats.hits == 401


async def test_stages_and_version_ids_are_separate_entries(face: Face, store: InMemoryBackend) -> None:
    old_id = next(iter(store.version_stages("app/db")))
    new_id = store.rotate("app/db", json.dumps({"password": canary_value("rotated")}))
    current = await face.get_secret_value("app/db")
    previous = await face.get_secret_value("app/db", version_stage="AWSPREVIOUS")
    by_id = await face.get_secret_value("app/db", version_id=old_id)
    assert current.version_id == new_id
    assert previous.version_id == old_id
    assert by_id.version_id == old_id
    assert previous is not by_id  # different keys, different entries
    assert gets(store) == 3
    for _ in range(5):
        assert await face.get_secret_value("app/db") is current
        assert await face.get_secret_value("app/db", version_stage="AWSPREVIOUS") is previous
        assert await face.get_secret_value("app/db", version_id=old_id) is by_id
        assert await face.get_secret_value("app/db", version_stage="AWSCURRENT") is current  # the default key
    assert gets(store) == 3


async def test_version_id_entries_never_expire(face: Face, store: InMemoryBackend, clock: FakeClock) -> None:
    vid = next(iter(store.version_stages("app/db")))
    first = await face.get_secret_value("app/db", version_id=vid)
    await face.mark_stale()
    clock.advance(10 * 365 * 86400.0)
    assert await face.get_secret_value("app/db", version_id=vid) is first
    assert gets(store) == 1


@pytest.mark.parametrize("read_by_version", [False, True])
async def test_mutating_a_returned_json_mapping_never_changes_the_cache(
    face: Face, store: InMemoryBackend, password: str, read_by_version: bool
) -> None:
    kwargs = {"version_id": next(iter(store.version_stages("app/db")))} if read_by_version else {}
    first = await face.get_secret_json("app/db", **kwargs)
    first["password"] = "changed"
    first["port"] = 1
    first["options"]["a"] = 2
    first["hosts"].append("h3")
    first["nested"]["k"].append(2)
    del first["username"]
    again = await face.get_secret_json("app/db", **kwargs)
    assert again["password"] == password
    assert again["port"] == 5432
    assert again["options"] == {"a": 1}
    assert again["hosts"] == ["h1", "h2"]
    assert again["nested"] == {"k": [1]}
    assert again["username"] == "app"
    assert await face.get("app/db#password") == password
    assert again is not await face.get_secret_json("app/db", **kwargs)


# -- refresh, invalidate, mark_stale ------------------------------------------------------------------

async def test_refresh_fetches_now_and_invalidate_drops(face: Face, store: InMemoryBackend) -> None:
    await face.get_secret_string("app/plain")
    store.rotate("app/plain", "second")
    assert (await face.refresh("app/plain")).secret_string == "second"
    assert await face.get_secret_string("app/plain") == "second"
    await face.invalidate("app/plain")
    await face.get_secret_string("app/plain")
    await face.invalidate()
    await face.get_secret_string("app/plain")
    assert gets(store) == 4


async def prime_versions(face: Face, store: InMemoryBackend) -> str:
    old_id = next(iter(store.version_stages("app/db")))
    store.rotate("app/db", json.dumps({"password": canary_value("r")}))
    await face.get_secret_value("app/db")
    await face.get_secret_value("app/db", version_stage="AWSPREVIOUS")
    await face.get_secret_value("app/db", version_id=old_id)
    await face.get_secret_string("app/api-key")
    return old_id


async def test_invalidate_one_secret_drops_every_stage_and_version_of_it_only(
    face: Face, store: InMemoryBackend
) -> None:
    old_id = await prime_versions(face, store)
    assert gets(store) == 4
    await face.invalidate("app/db")
    await face.get_secret_string("app/api-key")
    assert gets(store) == 4
    await face.get_secret_value("app/db")
    await face.get_secret_value("app/db", version_stage="AWSPREVIOUS")
    await face.get_secret_value("app/db", version_id=old_id)
    assert gets(store) == 7


async def test_invalidate_everything(face: Face, store: InMemoryBackend) -> None:
    old_id = await prime_versions(face, store)
    await face.invalidate()
    await face.get_secret_value("app/db")
    await face.get_secret_value("app/db", version_id=old_id)
    await face.get_secret_string("app/api-key")
    assert gets(store) == 7
    await face.invalidate("never/cached")  # unknown ids are fine


async def test_mark_stale_makes_the_next_read_refresh_and_wait(face: Face, store: InMemoryBackend) -> None:
    await face.get_secret_string("app/api-key")
    new = canary_value("new")
    store.rotate("app/api-key", new)
    await face.mark_stale()
    assert await face.get_secret_string("app/api-key") == new  # not the cached value: a blocking refresh
    assert gets(store) == 2
    assert await face.get_secret_string("app/api-key") == new
    assert gets(store) == 2


# -- prefetch -------------------------------------------------------------------------------------------

def bulk_store(n: int) -> InMemoryBackend:
    return InMemoryBackend({f"bulk/{i}": f"value-{i}" for i in range(n)})


async def test_prefetch_uses_batches_of_20_and_then_serves_from_the_cache(make_face: MakeFace) -> None:
    store = bulk_store(45)
    face = make_face(store)
    ids = [f"bulk/{i}" for i in range(45)]
    assert await face.prefetch(ids) == {}
    assert store.calls["BatchGetSecretValue"] == 3
    assert store.calls["GetSecretValue"] == 0
    assert [await face.get_secret_string(i) for i in ids] == [f"value-{i}" for i in range(45)]
    assert store.calls["GetSecretValue"] == 0


async def test_prefetch_falls_back_to_one_get_per_secret_when_the_batch_call_is_denied(
    make_face: MakeFace,
) -> None:
    store = bulk_store(25)
    store.deny_batch = True
    face = make_face(store)
    failures = await face.prefetch([*(f"bulk/{i}" for i in range(25)), "missing"])
    assert list(failures) == ["missing"]
    assert isinstance(failures["missing"], SecretNotFoundError)
    assert store.calls["BatchGetSecretValue"] == 1
    assert store.calls["GetSecretValue"] == 26
    assert await face.get_secret_string("bulk/24") == "value-24"
    assert store.calls["GetSecretValue"] == 26


async def test_prefetch_rejects_a_single_string_and_bad_ids(face: Face, store: InMemoryBackend) -> None:
    with pytest.raises(TypeError):
        await face.prefetch("app/db")
    with pytest.raises(InvalidReferenceError):
        await face.prefetch(["app/db", None])
    assert store.calls["BatchGetSecretValue"] == 0
