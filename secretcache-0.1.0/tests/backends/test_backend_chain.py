"""ChainBackend: not-found falls through to the next backend, every other error stops the chain; forced
reads are forced on each backend; batches ask the next backend only for what the earlier ones lacked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devtools.atomic_writer import AtomicWriter
from secretcache import SecretCache
from secretcache.backends import ChainBackend, FileBackend, ForcedReads, SecretsBackend
from secretcache.config import CacheConfig
from secretcache.errors import (
    SecretAccessDeniedError,
    SecretNotFoundError,
    SecretThrottledError,
    SecretUnavailableError,
)
from secretcache.model import SecretValue
from secretcache.testing import InMemoryBackend

GET = "GetSecretValue"


@pytest.fixture
def files(tmp_path: Path) -> FileBackend:
    AtomicWriter(tmp_path).write({"app_db": json.dumps({"password": "from-file"}), "only_file": "f"})
    return FileBackend(tmp_path, check_interval=0)


@pytest.fixture
def aws() -> InMemoryBackend:
    store = InMemoryBackend({"app/db": json.dumps({"password": "from-aws"}), "only/aws": "a"})
    store.put_secret("app/db", json.dumps({"password": "pending"}), stages=("AWSPENDING",))
    return store


def test_the_first_backend_that_has_the_secret_answers(files: FileBackend, aws: InMemoryBackend) -> None:
    chain = ChainBackend(files, aws)
    assert chain.get_secret_value("app/db").json()["password"] == "from-file"
    assert aws.calls[GET] == 0
    assert chain.get_secret_value("only/aws").secret_string == "a"
    assert chain.get_secret_value("only_file").secret_string == "f"


def test_awspending_and_version_ids_the_files_lack_fall_through_to_aws(files: FileBackend,
                                                                       aws: InMemoryBackend) -> None:
    chain = ChainBackend(files, aws)
    pending = chain.get_secret_value("app/db", version_stage="AWSPENDING")
    assert pending.json()["password"] == "pending"
    by_id = chain.get_secret_value("app/db", version_id=pending.version_id)
    assert (by_id.version_id, by_id.secret_string) == (pending.version_id, pending.secret_string)
    mounted = chain.get_secret_value("app/db")
    assert chain.get_secret_value("app/db", version_id=mounted.version_id) is mounted  # the file's own id


def test_not_found_everywhere_raises_the_last_backends_error(files: FileBackend, aws: InMemoryBackend) -> None:
    with pytest.raises(SecretNotFoundError) as caught:
        ChainBackend(files, aws).get_secret_value("nowhere")
    assert caught.value.code == "ResourceNotFoundException"  # InMemoryBackend's, the last one asked


@pytest.mark.parametrize(("fault", "error"), [("throttle", SecretThrottledError), ("denied", SecretAccessDeniedError),
                                          ("5xx", SecretUnavailableError)])
def test_other_errors_do_not_fall_through(aws: InMemoryBackend, fault: str, error: type[Exception]) -> None:
    broken = InMemoryBackend({"app/db": "first"})
    broken.fail_next(fault, operation=GET)
    with pytest.raises(error):
        ChainBackend(broken, aws).get_secret_value("app/db")
    assert aws.calls[GET] == 0


def test_forced_reads_are_forced_on_each_backend_that_hears_them(files: FileBackend,
                                                                 aws: InMemoryBackend) -> None:
    class Recording:
        def __init__(self) -> None:
            self.forced: list[str] = []

        def get_secret_value(self, secret_id: str, *, version_id: str | None = None,
                             version_stage: str | None = None) -> SecretValue:
            raise SecretNotFoundError("no", secret_id=secret_id)

        def refresh_secret_value(self, secret_id: str, *, version_id: str | None = None,
                                 version_stage: str | None = None) -> SecretValue:
            self.forced.append(secret_id)
            raise SecretNotFoundError("no", secret_id=secret_id)

        def batch_get_secret_values(self, secret_ids: object) -> tuple[list[SecretValue], dict[str, object]]:
            return [], {}

    recording = Recording()
    chain = ChainBackend(recording, aws)  # type: ignore[arg-type]
    assert isinstance(chain, ForcedReads)
    assert chain.refresh_secret_value("only/aws").secret_string == "a"
    assert recording.forced == ["only/aws"]


def test_batches_ask_the_next_backend_only_for_what_was_not_found(files: FileBackend, aws: InMemoryBackend) -> None:
    broken = InMemoryBackend({"x": "1"})
    values, errors = ChainBackend(files, aws).batch_get_secret_values(["app/db", "only/aws", "nowhere"])
    assert {v.name: v.secret_string for v in values} == {
        "app/db": json.dumps({"password": "from-file"}), "only/aws": "a"}
    assert list(errors) == ["nowhere"]
    assert isinstance(errors["nowhere"], SecretNotFoundError)
    assert broken.calls["BatchGetSecretValue"] == 0


def test_a_cache_over_files_then_aws_prefetches_and_reads_through_the_chain(files: FileBackend,
                                                                            aws: InMemoryBackend) -> None:
    with SecretCache(ChainBackend(files, aws), config=CacheConfig(ttl=60)) as cache:
        assert cache.prefetch(["app/db", "only/aws"]) == {}
        assert cache.get("app/db#password") == "from-file"
        assert cache.get_secret_json("app/db", version_stage="AWSPENDING")["password"] == "pending"
        assert cache.get("only/aws") == "a"


def test_construction_checks_its_backends() -> None:
    with pytest.raises(ValueError, match="at least one"):
        ChainBackend()
    with pytest.raises(TypeError, match="SecretsBackend"):
        ChainBackend(object())  # type: ignore[arg-type]
    chain = ChainBackend(InMemoryBackend())
    assert isinstance(chain, SecretsBackend)
    assert "InMemoryBackend" in repr(chain)
