"""secretcache.redis against a real Redis 7 with ACL users whose passwords really change.

Redis must listen on 127.0.0.1:6379 (``SECRETCACHE_TEST_REDIS_URL`` to change it) with no password for the
default user; a missing server FAILS these tests. Each test makes its own ACL user and deletes it.
Counts behaviour (operations, AUTH attempts from ``ACL LOG``, GetSecretValue calls), never wall time.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis.asyncio
from redis._parsers.base import BaseParser
from redis.backoff import NoBackoff
from redis.retry import Retry

from secretcache import SecretCache
from secretcache.config import CacheConfig
from secretcache.credentials import auth_stats
from secretcache.errors import SecretFormatError
from secretcache.redis import (
    CredentialProvider,
    RotatingConnection,
    async_client,
    build_async_client,
    client,
    is_login_failure,
)
from secretcache.testing import InMemoryBackend
from tests.fixtures.fix_canary import canary_value
from tests.fixtures.fix_redis import REDIS_URL

pytestmark = pytest.mark.integration

GET = "GetSecretValue"
WORKERS = 8
ROTATIONS = 10
OPS_PER_PHASE = 3  # operations every worker completes in each phase of a rotation (counted, not timed)




class Account:
    """One ACL user, its secret in an InMemoryBackend, a cache whose ttl outlives the test."""

    def __init__(self, redis_admin: redis.Redis, **extra: Any) -> None:
        self.redis_admin = redis_admin
        self.username = f"sc-test-{secrets.token_hex(4)}"
        self.secret_id = f"redis/{self.username}"
        self.passwords = [canary_value("redis")]
        redis_admin.execute_command("ACL", "SETUSER", self.username, "on", "resetpass", f">{self.passwords[0]}",
                              "~*", "+@all")
        kwargs = redis_admin.connection_pool.connection_kwargs
        self.fields = {"host": kwargs["host"], "port": kwargs["port"], **extra}
        self.backend = InMemoryBackend()
        self.current = self.backend.put_secret(self.secret_id, self.secret(self.passwords[0]))
        self.cache = SecretCache(self.backend, config=CacheConfig(ttl=3600))

    def secret(self, password: str) -> str:
        return json.dumps({"username": self.username, "password": password, **self.fields})

    @property
    def calls(self) -> int:
        return self.backend.calls[GET]

    def set_password(self, *passwords: str) -> None:
        self.redis_admin.execute_command("ACL", "SETUSER", self.username, "resetpass", *(f">{p}" for p in passwords))

    def begin_rotation(self) -> str:
        """createSecret + setSecret (single user): AWSPENDING and Redis have the new password, AWSCURRENT not."""
        password = canary_value("redis")
        self.passwords.append(password)
        pending = self.backend.put_secret(self.secret_id, self.secret(password), stages=("AWSPENDING",))
        self.set_password(password)
        return pending

    def finish_rotation(self, version_id: str) -> None:
        self.backend.update_version_stage(self.secret_id, "AWSCURRENT", move_to_version_id=version_id,
                                          remove_from_version_id=self.current)
        self.current = version_id

    def auth_attempts(self) -> int:
        """Refused AUTHs of this user, from the server's ACL LOG (entries of one kind are grouped with a count)."""
        entries = self.redis_admin.execute_command("ACL", "LOG", "128")
        total = 0
        for entry in entries:
            fields = dict(zip(entry[::2], entry[1::2], strict=True)) if isinstance(entry, list) else entry
            if fields.get("username") == self.username and fields.get("reason") == "auth":
                total += int(fields["count"])
        return total

    def assert_no_password(self, *texts: str) -> None:
        for text in texts:
            for password in self.passwords:
                assert password not in text

    def close(self) -> None:
        self.redis_admin.execute_command("ACL", "DELUSER", self.username)
        self.cache.close()


@pytest.fixture
def account(redis_admin: redis.Redis) -> Iterator[Account]:
    made = Account(redis_admin)
    yield made
    made.close()


def _text(reply: object) -> str:
    return reply.decode() if isinstance(reply, bytes) else str(reply)


def _error_text(error: BaseException) -> str:
    return "\n".join([str(error), repr(error), *getattr(error, "__notes__", [])])


# -- rotations under load ------------------------------------------------------------------------------


class Load:
    """Counts each worker's operations, so the rotation waits for work done, not for time passing."""

    def __init__(self) -> None:
        self.done = [0] * WORKERS
        self.failures: list[BaseException] = []
        self.stop = False

    def marks(self) -> list[int]:
        return list(self.done)

    def reached(self, marks: list[int]) -> bool:
        return bool(self.failures) or all(d >= m + OPS_PER_PHASE for d, m in zip(self.done, marks, strict=True))


def test_sync_clients_survive_ten_single_user_rotations_with_no_failed_operation(account: Account) -> None:
    load, changed = Load(), threading.Condition()

    def work(n: int) -> None:
        shared = client(account.secret_id, cache=account.cache, decode_responses=True)
        while not load.stop:
            try:
                if n % 2:  # a new client (new pool, new connection) per operation
                    with client(account.secret_id, cache=account.cache) as own:
                        own.incr(f"{account.username}:ops")
                else:  # a new pooled connection per operation
                    shared.connection_pool.disconnect()
                    shared.incr(f"{account.username}:ops")
            except Exception as e:
                load.failures.append(e)
            with changed:
                load.done[n] += 1
                changed.notify_all()
        shared.close()

    def wait_for_ops() -> None:
        marks = load.marks()
        with changed:
            assert changed.wait_for(lambda: load.reached(marks), timeout=120), "workers stalled"

    threads = [threading.Thread(target=work, args=(n,)) for n in range(WORKERS)]
    for t in threads:
        t.start()
    try:
        wait_for_ops()
        for _ in range(ROTATIONS):
            calls = account.calls
            pending = account.begin_rotation()
            wait_for_ops()
            account.finish_rotation(pending)
            wait_for_ops()
            assert account.calls - calls <= 3
    finally:
        load.stop = True
        for t in threads:
            t.join()
    assert load.failures == []
    assert account.calls <= 1 + 3 * ROTATIONS
    stats = auth_stats(account.secret_id, cache=account.cache)
    assert stats.gave_up == 0
    assert stats.pending_logins > 0


async def test_async_clients_survive_ten_single_user_rotations_with_no_failed_operation(account: Account) -> None:
    load, progressed = Load(), asyncio.Event()

    async def work(n: int) -> None:
        shared = async_client(account.secret_id, cache=account.cache)
        while not load.stop:
            try:
                if n % 2:
                    own = async_client(account.secret_id, cache=account.cache)
                    await own.incr(f"{account.username}:ops")
                    await own.aclose()
                else:
                    await shared.connection_pool.disconnect()
                    await shared.incr(f"{account.username}:ops")
            except Exception as e:
                load.failures.append(e)
            load.done[n] += 1
            progressed.set()
            await asyncio.sleep(0)
        await shared.aclose()

    async def wait_for_ops() -> None:
        marks = load.marks()
        while not load.reached(marks):
            progressed.clear()
            await asyncio.wait_for(progressed.wait(), timeout=120)

    tasks = [asyncio.create_task(work(n)) for n in range(WORKERS)]
    try:
        await wait_for_ops()
        for _ in range(ROTATIONS):
            calls = account.calls
            pending = account.begin_rotation()
            await wait_for_ops()
            account.finish_rotation(pending)
            await wait_for_ops()
            assert account.calls - calls <= 3
    finally:
        load.stop = True
        await asyncio.gather(*tasks)
    assert load.failures == []
    assert account.calls <= 1 + 3 * ROTATIONS
    assert auth_stats(account.secret_id, cache=account.cache).gave_up == 0


def test_a_new_password_accepted_alongside_the_old_one_needs_no_refresh(account: Account) -> None:
    r = client(account.secret_id, cache=account.cache)
    assert r.ping()
    pending = account.begin_rotation()
    account.set_password(account.passwords[-2], account.passwords[-1])  # both accepted during the change
    r.connection_pool.disconnect()
    assert r.ping()
    account.finish_rotation(pending)
    account.set_password(account.passwords[-1])
    r.connection_pool.disconnect()
    assert r.ping()  # AWSCURRENT refused: refresh brings the new version
    assert account.calls <= 3
    r.close()


# -- what is and is not a login failure ----------------------------------------------------------------


def test_a_wrong_password_fails_with_redis_own_error_after_at_most_three_auth_attempts(account: Account) -> None:
    r = client(account.secret_id, cache=account.cache)
    r.ping()
    account.set_password(canary_value("elsewhere"))  # rotated outside Secrets Manager: nothing will work
    r.connection_pool.disconnect()
    calls, attempts = account.calls, account.auth_attempts()
    with pytest.raises(redis.AuthenticationError) as raised:
        r.ping()
    assert 1 <= account.auth_attempts() - attempts <= 3
    assert account.calls - calls <= 2
    assert any(account.secret_id in note for note in raised.value.__notes__)
    account.assert_no_password(_error_text(raised.value))
    # Again at once: the refused version is remembered, no new API call for it.
    calls = account.calls
    with pytest.raises(redis.AuthenticationError):
        r.ping()
    assert account.calls - calls <= 2
    r.close()


def test_every_version_wrong_takes_exactly_three_auths_and_redis_py_does_not_retry_them(account: Account) -> None:
    r = client(account.secret_id, cache=account.cache)  # AWSCURRENT cached; redis-py's default Retry (10)
    new = account.backend.put_secret(account.secret_id, account.secret(canary_value("wrong-current")))
    account.backend.put_secret(account.secret_id, account.secret(canary_value("wrong-pending")), stages=("AWSPENDING",))
    account.passwords.append(canary_value("elsewhere"))
    account.set_password(account.passwords[-1])
    calls, attempts = account.calls, account.auth_attempts()
    with pytest.raises(redis.AuthenticationError) as raised:
        r.ping()
    assert account.auth_attempts() - attempts == 3  # cached AWSCURRENT, refreshed AWSCURRENT, AWSPENDING
    assert account.calls - calls == 2
    notes = "\n".join(raised.value.__notes__)
    assert "3 login(s) refused" in notes
    assert new[:8] in notes
    account.assert_no_password(_error_text(raised.value))
    r.close()


async def test_a_wrong_password_fails_the_async_client_after_at_most_three_auth_attempts(account: Account) -> None:
    account.set_password(canary_value("elsewhere"))
    attempts = account.auth_attempts()
    r = async_client(account.secret_id, cache=account.cache)
    with pytest.raises(redis.AuthenticationError) as raised:
        await r.ping()
    assert 1 <= account.auth_attempts() - attempts <= 3
    assert account.calls <= 3
    account.assert_no_password(_error_text(raised.value))
    await r.aclose()


def test_noperm_is_not_a_login_failure_and_refreshes_nothing(account: Account, redis_admin: redis.Redis) -> None:
    redis_admin.execute_command("ACL", "SETUSER", account.username, "-get")
    r = client(account.secret_id, cache=account.cache)
    calls = account.calls
    with pytest.raises(redis.exceptions.NoPermissionError):
        r.get("anything")
    assert r.ping()
    assert account.calls == calls
    assert auth_stats(account.secret_id, cache=account.cache).auth_failures == 0
    r.close()


def test_noauth_on_connect_is_not_a_login_failure_and_refreshes_nothing(account: Account) -> None:
    noauth = BaseParser.parse_error("NOAUTH Authentication required.")

    def refuse(connection: Any) -> None:
        raise noauth

    r = client(account.secret_id, cache=account.cache, redis_connect_func=refuse, retry=Retry(NoBackoff(), 1))
    calls = account.calls
    with pytest.raises(redis.AuthenticationError) as raised:
        r.ping()
    assert raised.value is noauth
    assert account.calls == calls
    assert auth_stats(account.secret_id, cache=account.cache).refreshes == 0
    r.close()


@pytest.mark.parametrize(("reply", "refused"), [
    ("WRONGPASS invalid username-password pair or user is disabled.", True),
    ("ERR invalid password", True),
    ("NOAUTH Authentication required.", False),
    ("NOPERM User u has no permissions to run the 'get' command", False),
    ("ERR AUTH <password> called without any password configured for the default user. Are you sure "
     "your configuration is correct?", False),
])
def test_is_login_failure_reads_redis_py_own_exceptions(reply: str, refused: bool) -> None:
    assert is_login_failure(BaseParser.parse_error(reply)) is refused
    assert is_login_failure(redis.AuthenticationError("Invalid Username or Password"))
    assert not is_login_failure(redis.ConnectionError("Connection refused"))


# -- the credential provider ---------------------------------------------------------------------------


def test_credential_provider_works_with_a_plain_redis_client(account: Account) -> None:
    provider = CredentialProvider(account.secret_id, cache=account.cache)
    r = redis.Redis.from_url(REDIS_URL, credential_provider=provider)
    assert r.ping()
    assert _text(r.acl_whoami()) == account.username
    account.assert_no_password(repr(provider), repr(r), repr(r.connection_pool))
    r.close()


async def test_credential_provider_works_with_an_asyncio_client(account: Account) -> None:
    provider = CredentialProvider(account.secret_id, cache=account.cache)
    r = redis.asyncio.Redis.from_url(REDIS_URL, credential_provider=provider)
    assert await r.ping()
    assert await provider.get_credentials_async() == provider.get_credentials()
    await r.aclose()


def test_credential_provider_serves_the_pending_version_the_policy_pinned(account: Account) -> None:
    provider = CredentialProvider(account.secret_id, cache=account.cache)
    r = client(account.secret_id, cache=account.cache)
    account.begin_rotation()
    assert r.ping()  # AWSCURRENT refused, AWSPENDING works and is pinned
    assert provider.get_credentials() == (account.username, account.passwords[-1])
    r.close()


def test_a_secret_without_username_logs_in_as_the_default_user() -> None:
    backend = InMemoryBackend()
    backend.put_secret("plain", json.dumps({"password": "pw"}))
    with SecretCache(backend) as cache:
        assert CredentialProvider("plain", cache=cache).get_credentials() == ("pw",)


# -- the secret's fields and the factories' arguments --------------------------------------------------


def test_keys_rename_the_secret_fields(redis_admin: redis.Redis) -> None:
    made = Account(redis_admin)
    try:
        made.backend.put_secret(made.secret_id, json.dumps(
            {"user": made.username, "pass": made.passwords[0], "endpoint": made.fields["host"]}))
        r = client(made.secret_id, cache=made.cache, keys={"username": "user", "password": "pass", "host": "endpoint"})
        assert _text(r.acl_whoami()) == made.username
        r.close()
    finally:
        made.close()


def test_the_secret_ssl_key_selects_tls_unless_the_caller_says_otherwise() -> None:
    backend = InMemoryBackend()
    backend.put_secret("tls", json.dumps({"password": "pw", "host": "cache.example", "port": "6380", "ssl": "true"}))
    with SecretCache(backend) as cache:
        tls = client("tls", cache=cache)
        assert issubclass(tls.connection_pool.connection_class, redis.SSLConnection)
        assert tls.connection_pool.connection_kwargs["port"] == 6380
        plain = client("tls", cache=cache, ssl=False)
        assert not issubclass(plain.connection_pool.connection_class, redis.SSLConnection)
        atls = async_client("tls", cache=cache)
        assert issubclass(atls.connection_pool.connection_class, redis.asyncio.SSLConnection)


def test_single_connection_clients_log_in_through_the_policy(account: Account) -> None:
    r = client(account.secret_id, cache=account.cache, single_connection_client=True)
    assert _text(r.acl_whoami()) == account.username
    account.begin_rotation()
    assert r.connection is not None
    r.connection.disconnect()
    assert r.ping()  # reconnects inside the command: AWSPENDING found and used
    r.close()


async def test_async_single_connection_clients_log_in_through_the_policy(account: Account) -> None:
    r = async_client(account.secret_id, cache=account.cache, single_connection_client=True)
    assert _text(await r.acl_whoami()) == account.username
    account.begin_rotation()
    assert r.connection is not None
    await r.connection.disconnect()
    assert await r.ping()
    await r.aclose()


def test_clients_share_fixed_connection_classes_and_each_pool_carries_its_own_target(account: Account) -> None:
    first, second = client(account.secret_id, cache=account.cache), client(account.secret_id, cache=account.cache)
    assert first.connection_pool.connection_class is second.connection_pool.connection_class is RotatingConnection
    other = client(account.secret_id, cache=account.cache, keys={"password": "password"})
    assert other.connection_pool.connection_class is RotatingConnection  # no class is made at run time
    targets = [c.connection_pool.connection_kwargs["secretcache_target"] for c in (first, second, other)]
    assert targets[0] == targets[1] != targets[2]
    assert targets[2].keys == (("password", "password"),)
    assert other.ping()


def test_malformed_secrets_and_conflicting_arguments_name_the_field_never_a_value() -> None:
    backend = InMemoryBackend()
    backend.put_secret("bad-port", json.dumps({"password": canary_value(), "host": "h", "port": "x"}))
    backend.put_secret("no-host", json.dumps({"password": canary_value()}))
    with SecretCache(backend) as cache:
        with pytest.raises(SecretFormatError, match="'port'"):
            client("bad-port", cache=cache)
        with pytest.raises(SecretFormatError, match="host"):
            client("no-host", cache=cache)
        with pytest.raises(TypeError, match="password="):
            client("no-host", cache=cache, host="h", password="x")
        with pytest.raises(ValueError, match="unknown field"):
            client("no-host", cache=cache, host="h", keys={"pwd": "x"})


# -- imports -------------------------------------------------------------------------------------------


def test_import_secretcache_does_not_import_redis_and_a_missing_redis_names_the_extra() -> None:
    code = (
        "import sys, secretcache\n"
        "assert 'redis' not in sys.modules\n"
        "sys.modules['redis'] = None\n"
        "try:\n"
        "    import secretcache.redis\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert "pip install 'secretcache[redis]'" in out.stdout


def test_the_docs_local_example_runs_as_written(redis_admin: redis.Redis, capsys: pytest.CaptureFixture[str]) -> None:
    page = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "docs", "redis.md")
    with open(page, encoding="utf-8") as f:
        text = f.read()
    section = text.split("## Try it on a local Redis", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    try:
        exec(compile(code, "docs/redis.md", "exec"), {"__name__": "docs_redis"})
    finally:
        redis_admin.execute_command("ACL", "DELUSER", "docs-app")
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == ["docs-app", "True"]
    assert "pending_logins=1" in out[2]


# -- building an async client on a running loop never blocks it -------------------------------------------


class GatedBackend(InMemoryBackend):
    """Reads wait for ``gate`` (Secrets Manager taking its time), and record the thread they ran on."""

    def __init__(self, secrets: dict[str, str]) -> None:
        super().__init__(secrets)
        self.gate = threading.Event()
        self.threads: list[threading.Thread] = []

    def get_secret_value(self, secret_id: str, **kwargs: Any) -> Any:
        self.threads.append(threading.current_thread())
        assert self.gate.wait(30), "never released"
        return super().get_secret_value(secret_id, **kwargs)


def test_build_async_client_reads_a_cold_secret_off_the_event_loop() -> None:
    secret = json.dumps({"host": "redis.example", "port": 6380, "username": "app", "password": canary_value("r")})
    backend = GatedBackend({"prod/cache": secret})
    released_by: list[str] = []

    async def main() -> redis.asyncio.Redis:
        loop_thread = threading.current_thread()

        async def release() -> None:
            for _ in range(1000):  # the loop keeps running while the read waits: this coroutine gets turns
                await asyncio.sleep(0.01)
                if backend.threads:
                    break
            released_by.append("loop")
            backend.gate.set()

        with SecretCache(backend) as cache:
            made, _ = await asyncio.wait_for(asyncio.gather(build_async_client("prod/cache", cache=cache), release()),
                                             timeout=30)
        assert backend.threads
        assert loop_thread not in backend.threads  # the miss was read in a worker thread
        return made

    made = asyncio.run(main())
    assert released_by == ["loop"]
    kwargs = made.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"]) == ("redis.example", 6380)
    assert "Rotating" in made.connection_pool.connection_class.__name__


def test_build_async_client_refuses_wrong_arguments_before_reading() -> None:
    backend = InMemoryBackend({"prod/cache": json.dumps({"host": "h", "password": "p"})})
    with SecretCache(backend) as cache, pytest.raises(TypeError, match="password="):
        asyncio.run(build_async_client("prod/cache", cache=cache, password="x"))
    assert sum(backend.calls.values()) == 0
