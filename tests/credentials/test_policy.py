"""The rotation policy (secretcache.credentials._policy) and secret mapping (_params): fake drivers, a fake clock.

The fake database knows one password per user and raises errors shaped like the real drivers'
(psycopg: OperationalError with ``sqlstate`` None and the message only; PyMySQL: ``args[0] == 1045``).
The real drivers and servers are exercised in tests/db/test_db_{psycopg,pymysql,sqlalchemy}.py.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import secretcache.credentials._policy as auth
from secretcache import SecretCache, SecretFormatError
from secretcache.config import CacheConfig
from secretcache.credentials import Connect, Credentials, Login, Read, drive, drive_async
from secretcache.db import AuthPolicy, auth_stats, is_auth_failure
from secretcache.db._params import PSYCOPG, PYMYSQL, make_params_of, merged, secret_params
from secretcache.testing import InMemoryBackend
from tests.fixtures.fakes import FakeClock, run_threads
from tests.fixtures.fix_canary import canary_value

SECRET = "app/db"
GET = "GetSecretValue"

# -- fake driver errors --------------------------------------------------------------------------------


class FakePGconn:
    """Like psycopg's FinishedPGconn: its repr shows the password. Nothing may ever format it."""

    def __init__(self, password: str) -> None:
        self.password = password

    def __repr__(self) -> str:
        return f"<FakePGconn password={self.password!r}>"


class PgOperationalError(Exception):
    """Shaped like psycopg.OperationalError at connect time: no SQLSTATE, the server text in the message."""

    sqlstate: str | None = None

    def __init__(self, message: str, *, pgconn: FakePGconn | None = None) -> None:
        super().__init__(message)
        self.pgconn = pgconn


class PgError(Exception):
    """An error carrying a SQLSTATE, as psycopg's query errors (and asyncpg's) do."""

    def __init__(self, sqlstate: str, message: str = "") -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


class MyOperationalError(Exception):
    """Shaped like pymysql.err.OperationalError: ``(errno, message)``."""


class Wrapper(Exception):
    """Shaped like sqlalchemy.exc.OperationalError: the driver's exception in ``.orig``."""

    def __init__(self, orig: BaseException) -> None:
        super().__init__(f"({type(orig).__name__}) {orig}")
        self.orig = orig


PG_REFUSED = ('connection failed: connection to server at "127.0.0.1", port 5432 failed: '
              'FATAL:  password authentication failed for user "app"')


# -- detection -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("error", [
    PgOperationalError(PG_REFUSED),
    PgOperationalError("connection failed: FATAL:  PAM authentication failed for user \"app\""),
    PgError("28P01"),
    PgError("28000", 'This RDS proxy has no credentials for the role "app_clone"'),
    MyOperationalError(1045, "Access denied for user 'app'@'localhost' (using password: YES)"),
    MyOperationalError(1698, "Access denied for user 'nobody'@'127.0.0.1'"),
    Wrapper(PgOperationalError(PG_REFUSED)),
    Wrapper(MyOperationalError(1045, "Access denied for user 'app'@'localhost' (using password: YES)")),
], ids=["psycopg-message", "pam", "28P01", "28000-rds-proxy", "mysql-1045", "mariadb-1698", "wrapped-pg",
        "wrapped-mysql"])
def test_refused_credentials_are_detected_as_auth_failures(error: BaseException) -> None:
    assert is_auth_failure(error)


@pytest.mark.parametrize("error", [
    PgOperationalError('connection failed: connection to server at "127.0.0.1", port 5432 failed: '
                       'FATAL:  database "nope" does not exist'),
    PgOperationalError('connection failed: connection to server at "127.0.0.1", port 1 failed: '
                       "Connection refused\n\tIs the server running on that host and accepting TCP/IP "
                       "connections?"),
    PgOperationalError("connection failed: FATAL:  sorry, too many clients already"),
    PgOperationalError("connection failed: fe_sendauth: no password supplied"),
    PgOperationalError('connection failed: FATAL:  role "app" is not permitted to log in'),
    PgError("28000", 'role "app" is not permitted to log in'),
    PgError("28000", 'no pg_hba.conf entry for host "10.0.0.1", user "app"'),
    PgError("3D000", 'database "nope" does not exist'),
    PgError("42601", "syntax error at or near \"SELEC\""),
    PgError("53300", "too many connections"),
    MyOperationalError(1045, "Access denied for user 'app'@'localhost' (using password: NO)"),
    MyOperationalError(1044, "Access denied for user 'app'@'%' to database 'nope'"),
    MyOperationalError(1049, "Unknown database 'nope'"),
    MyOperationalError(2003, "Can't connect to MySQL server on '127.0.0.1' ([Errno 111] Connection refused)"),
    MyOperationalError(1040, "Too many connections"),
    MyOperationalError(4151, "Access denied, this account is locked"),
    ConnectionRefusedError(111, "Connection refused"),
    TimeoutError("timed out"),
    Wrapper(PgError("3D000", 'database "nope" does not exist')),
], ids=["pg-no-db", "pg-refused", "pg-too-many", "pg-no-password", "pg-nologin", "28000-nologin",
        "28000-pg-hba", "3D000", "syntax", "53300", "mysql-no-password", "1044", "1049", "2003", "1040",
        "4151", "socket-refused", "timeout", "wrapped-3D000"])
def test_other_connect_errors_are_not_auth_failures(error: BaseException) -> None:
    assert not is_auth_failure(error)


def test_detection_follows_explicit_causes_but_not_implicit_context() -> None:
    caused = RuntimeError("pool gave up")
    caused.__cause__ = PgOperationalError(PG_REFUSED)
    assert is_auth_failure(caused)

    def raise_while_handling() -> None:
        try:
            raise PgOperationalError(PG_REFUSED)
        except PgOperationalError:
            raise PgError("3D000", 'database "nope" does not exist')  # noqa: B904 - the point of the test

    with pytest.raises(PgError) as info:
        raise_while_handling()
    assert info.value.__context__ is not None
    assert not is_auth_failure(info.value)


def test_detection_survives_a_cause_cycle() -> None:
    a, b = RuntimeError("a"), RuntimeError("b")
    a.__cause__, b.__cause__ = b, a
    assert not is_auth_failure(a)


def test_localised_server_messages_count_only_when_configured() -> None:
    german = PgOperationalError('connection failed: FATAL:  Passwort-Authentifizierung für Benutzer "app" '
                                "fehlgeschlagen")
    assert not is_auth_failure(german)
    assert is_auth_failure(german, extra_messages=("Passwort-Authentifizierung",))


def test_auth_policy_rejects_invalid_values() -> None:
    with pytest.raises(ValueError, match="min_refresh_interval"):
        AuthPolicy(min_refresh_interval=-1)
    with pytest.raises(ValueError, match="known_bad_ttl"):
        AuthPolicy(known_bad_ttl=float("nan"))
    with pytest.raises(ValueError, match="auth_messages"):
        AuthPolicy(auth_messages="password")  # type: ignore[arg-type]


# -- a fake database -----------------------------------------------------------------------------------


class FakeConnection:
    def __init__(self, user: str, password: str) -> None:
        self.user = user
        self._password = password


class FakeServer:
    """A database with one password per user. Counts logins; can hold logins at a barrier; can be down."""

    def __init__(self, users: dict[str, str]) -> None:
        self.users = dict(users)
        self.logins: list[tuple[str, bool]] = []
        self.lock = threading.Lock()
        self.barrier: threading.Barrier | None = None
        self.down = False
        self.mysql = False

    def set_password(self, user: str, password: str) -> None:
        with self.lock:
            self.users[user] = password

    def connect(self, params: dict[str, Any]) -> FakeConnection:
        user, password = params["user"], params["password"]
        with self.lock:
            ok = self.users.get(user) == password
            self.logins.append((user, ok))
            barrier = self.barrier
        if barrier is not None:
            barrier.wait(timeout=10)
        if self.down:
            raise PgOperationalError('connection failed: connection to server at "127.0.0.1", port 5432 '
                                     "failed: Connection refused", pgconn=FakePGconn(password))
        if not ok:
            if self.mysql:
                message = f"Access denied for user '{user}'@'localhost' (using password: YES)"
                raise MyOperationalError(1045, message)
            raise PgOperationalError(PG_REFUSED.replace('"app"', f'"{user}"'), pgconn=FakePGconn(password))
        return FakeConnection(user, password)

    @property
    def refused(self) -> int:
        return sum(1 for _, ok in self.logins if not ok)


def rds(user: str, password: str, **extra: Any) -> str:
    return json.dumps({"engine": "postgres", "host": "127.0.0.1", "port": 5432, "username": user,
                       "password": password, "dbname": "app", **extra})


class World:
    """A secret in an InMemoryBackend, a SecretCache with a long ttl, a fake server, a frozen policy clock."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, policy: AuthPolicy | None = None) -> None:
        self.password = canary_value("pw0")
        self.backend = InMemoryBackend()
        self.v0 = self.backend.put_secret(SECRET, rds("app", self.password))
        self.cache = SecretCache(self.backend, config=CacheConfig(ttl=3600))
        self.server = FakeServer({"app": self.password})
        self.clock = FakeClock()
        monkeypatch.setattr(auth, "monotonic", self.clock)
        self.policy = policy or AuthPolicy()
        self.passwords = [self.password]

    def login(self, **kwargs: Any) -> Login:
        params_of = make_params_of(SECRET, PSYCOPG, kwargs.pop("keys", None))
        return Login(SECRET, params_of, cache=self.cache, policy=kwargs.pop("policy", self.policy), **kwargs)

    def connect(self, login: Login | None = None, explicit: dict[str, Any] | None = None) -> FakeConnection:
        login = login or self.login()
        return drive(login.flow(), lambda c: self.server.connect(
            merged(c.params, explicit or {}, secret_id=SECRET, names=PSYCOPG)))

    @property
    def calls(self) -> int:
        return self.backend.calls[GET]

    def new_password(self, tag: str) -> str:
        password = canary_value(tag)
        self.passwords.append(password)
        return password

    def create_pending(self, tag: str) -> tuple[str, str]:
        password = self.new_password(tag)
        return self.backend.put_secret(SECRET, rds("app", password), stages=("AWSPENDING",)), password

    def finish(self, version_id: str) -> None:
        current = next(v for v, s in self.backend.version_stages(SECRET).items() if "AWSCURRENT" in s)
        self.backend.update_version_stage(SECRET, "AWSCURRENT", move_to_version_id=version_id,
                                          remove_from_version_id=current)

    def stats(self) -> auth.AuthStats:
        return auth_stats(SECRET, cache=self.cache)


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    w = World(monkeypatch)
    yield w
    w.cache.close()


def assert_no_password(world: World, *texts: str) -> None:
    for text in texts:
        for password in world.passwords:
            assert password not in text


# -- the policy, step by step --------------------------------------------------------------------------


def test_a_cache_hit_logs_in_once_with_no_extra_api_call(world: World) -> None:
    world.connect()
    calls = world.calls
    conn = world.connect()
    assert conn.user == "app"
    assert world.calls == calls == 1
    assert world.server.logins == [("app", True), ("app", True)]


def test_a_completed_rotation_is_picked_up_by_one_refresh(world: World) -> None:
    world.connect()
    new_password = world.new_password("pw1")
    world.backend.rotate(SECRET, rds("app", new_password))
    world.server.set_password("app", new_password)

    conn = world.connect()

    assert conn._password == new_password
    assert world.server.logins[-2:] == [("app", False), ("app", True)]
    assert world.stats().refreshes == 1
    assert world.stats().pending_fetches == 0
    world.connect()  # the cache now holds the new version: no further refresh
    assert world.stats().refreshes == 1


def test_the_single_user_window_is_crossed_with_awspending_and_pinned(world: World) -> None:
    world.connect()
    pending_id, pending_password = world.create_pending("pw1")
    world.server.set_password("app", pending_password)  # setSecret: AWSCURRENT's password is dead

    conn = world.connect()

    assert conn._password == pending_password
    assert world.server.logins[-2:] == [("app", False), ("app", True)]
    stats = world.stats()
    assert (stats.refreshes, stats.pending_fetches, stats.pending_logins) == (1, 1, 1)
    calls = world.calls

    # New connections go straight to the pinned AWSPENDING: one login, no API call.
    for _ in range(3):
        assert world.connect()._password == pending_password
    assert world.server.logins[-3:] == [("app", True)] * 3
    assert world.calls == calls

    # finishSecret moves AWSCURRENT; once the cache sees it (here: a refresh), the pin is dropped.
    world.finish(pending_id)
    world.cache.refresh(SECRET)
    assert world.connect()._password == pending_password
    assert auth.state_for(world.cache, SECRET).pin is None


def test_a_refused_pin_is_dropped_and_refused_versions_are_skipped_for_known_bad_ttl(world: World) -> None:
    world.connect()
    _, p1 = world.create_pending("pw1")
    world.server.set_password("app", p1)
    world.connect()
    assert auth.state_for(world.cache, SECRET).pin is not None

    # The operator rolls back: the database has the old password again, AWSPENDING is stale.
    world.server.set_password("app", world.password)
    world.clock.advance(0.01)
    with pytest.raises(PgOperationalError):  # the old version was refused moments ago: not retried yet
        world.connect()
    assert auth.state_for(world.cache, SECRET).pin is None
    assert world.server.refused == 2

    world.clock.advance(10.0)  # known_bad_ttl later it is worth a login again
    assert world.connect()._password == world.password


def test_a_connect_refused_while_the_awspending_read_was_in_flight_reuses_it(world: World) -> None:
    """Regression (CI, MariaDB window test): B began after A's AWSPENDING read began and was refused with
    AWSCURRENT before A pinned; B must reuse A's read (nobody refused it), not make a second one."""
    world.connect()
    _, p1 = world.create_pending("pw1")
    world.server.set_password("app", p1)
    login = world.login()

    def connect(credentials: Credentials) -> object:
        try:
            return world.server.connect(merged(credentials.params, {}, secret_id=SECRET, names=PSYCOPG))
        except Exception as e:
            return e

    a = login.flow()
    step = next(a)  # A, step 1: AWSCURRENT from the cache
    step = a.send(step.fn())
    step = a.send(connect(step.credentials))  # refused
    step = a.send(step.fn())  # step 2: AWSCURRENT refreshed, the same dead version: nothing to try
    assert isinstance(step, Read)
    gate = world.backend.hold(operation=GET)
    pending_read: list[object] = []
    reader = threading.Thread(target=lambda: pending_read.append(step.fn()))
    reader.start()  # step 3: A's AWSPENDING read, held in flight
    world.backend.wait_held()

    world.clock.advance(0.01)
    b = login.flow()
    b_step = next(b)  # B begins after A's read began; the cache still has AWSCURRENT, nothing is pinned
    b_step = b.send(b_step.fn())
    assert b_step.credentials.stage == "AWSCURRENT"
    b_step = b.send(connect(b_step.credentials))  # refused

    gate.set()
    reader.join(10)
    step = a.send(pending_read[0])
    with pytest.raises(StopIteration) as a_done:
        a.send(connect(step.credentials))
    assert a_done.value.value._password == p1  # A logged in with AWSPENDING and pinned it

    while isinstance(b_step, Read):  # B, steps 2 and 3
        b_step = b.send(b_step.fn())
    with pytest.raises(StopIteration) as b_done:
        b.send(connect(b_step.credentials))
    assert b_done.value.value._password == p1
    assert world.stats().pending_fetches == 1  # B reused A's read
    assert world.calls == 3  # cold read, one refresh, one AWSPENDING read


def test_fetches_from_the_previous_rotation_are_not_reused_once_the_password_changes_again(
    world: World,
) -> None:
    world.connect()
    v1, p1 = world.create_pending("pw1")
    world.server.set_password("app", p1)
    world.connect()  # rotation 1: AWSCURRENT refreshed (unchanged), AWSPENDING v1 read and pinned
    world.finish(v1)
    state = auth.state_for(world.cache, SECRET)
    state.pin = None  # as if another connect had dropped it: the cache's AWSCURRENT is still the dead v0

    world.clock.advance(0.3)  # within min_refresh_interval of rotation 1's fetches
    _, p2 = world.create_pending("pw2")
    world.server.set_password("app", p2)  # rotation 2's setSecret
    calls = world.calls

    assert world.connect()._password == p2  # v1 (last AWSPENDING read) refused: AWSPENDING read again
    assert world.calls - calls <= 2
    assert world.server.logins[-2:] == [("app", False), ("app", True)]


def test_back_to_back_rotations_each_get_a_fresh_fetch_within_the_rate_limit(world: World) -> None:
    world.connect()
    for i in range(1, 6):
        version, password = world.create_pending(f"pw{i}")
        world.server.set_password("app", password)
        world.clock.advance(0.3)  # well inside min_refresh_interval (1 s)
        assert world.connect()._password == password
        world.finish(version)
    stats = world.stats()
    assert stats.gave_up == 0
    assert stats.refreshes + stats.pending_fetches <= 2 * 5


def test_a_wrong_password_fails_fast_with_the_drivers_error_named_and_chained(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    world.server.set_password("app", world.new_password("db-only"))
    caplog.set_level(logging.DEBUG)

    with pytest.raises(PgOperationalError) as info:
        world.connect()

    error = info.value
    assert "password authentication failed" in str(error)
    notes = getattr(error, "__notes__", [])
    assert any(repr(SECRET) in note for note in notes)
    assert world.server.refused == 1  # the refresh brought the same version; no AWSPENDING exists
    assert world.calls == 3  # cold read + one refresh + one AWSPENDING read
    assert world.stats().gave_up == 1
    assert_no_password(world, str(error), repr(error), *notes, caplog.text)


def test_at_most_three_logins_per_connect(world: World) -> None:
    world.connect()
    world.server.set_password("app", world.new_password("db-only"))
    world.backend.rotate(SECRET, rds("app", world.new_password("wrong-current")))  # refresh brings news
    world.create_pending("wrong-pending")

    with pytest.raises(PgOperationalError) as info:
        world.connect()

    assert world.server.logins[1:] == [("app", False)] * 3
    assert info.value.__cause__ is not None  # the first refusal, chained
    assert isinstance(info.value.__cause__, PgOperationalError)
    assert "3 login(s) refused" in info.value.__notes__[0]


def test_repeated_wrong_password_connects_are_rate_limited(world: World) -> None:
    world.server.set_password("app", world.new_password("db-only"))
    with pytest.raises(PgOperationalError):
        world.connect()
    calls = world.calls

    for _ in range(5):  # within min_refresh_interval: one real login each, no API call
        with pytest.raises(PgOperationalError):
            world.connect()
    assert world.calls == calls
    assert world.server.refused == 6

    world.clock.advance(1.5)  # past the interval: one more refresh and AWSPENDING read
    with pytest.raises(PgOperationalError):
        world.connect()
    assert world.calls == calls + 2


def test_the_rate_limit_counts_from_a_slow_fetchs_start_so_a_change_during_it_shows_within_the_interval(
    world: World,
) -> None:
    old = world.cache.get_secret_value(SECRET)
    world.connect()
    new_password = world.new_password("pw1")
    world.server.set_password("app", new_password)  # setSecret: the cached password dies

    def slow_read_of_the_old_version(_secret_id: str) -> object:
        # The fetch read AWSCURRENT before the new value was put (a file swapped, a PutSecretValue), then
        # took 0.8 s to come back.
        world.clock.advance(0.8)
        world.backend.put_secret(SECRET, rds("app", new_password))
        return old

    world.backend.script(SECRET, slow_read_of_the_old_version)
    with pytest.raises(PgOperationalError):  # the refresh brought the refused version; no AWSPENDING
        world.connect()
    calls = world.calls

    world.clock.advance(0.4)  # 1.2 s after that fetch began, 0.4 s after it finished
    assert world.connect()._password == new_password  # a fresh fetch, not the slow fetch's stale answer
    assert world.calls == calls + 1


def test_a_non_auth_error_is_raised_at_once_without_refresh(world: World) -> None:
    world.connect()
    world.server.down = True
    calls = world.calls

    with pytest.raises(PgOperationalError, match="Connection refused") as info:
        world.connect()

    assert world.calls == calls
    assert len(world.server.logins) == 2
    assert not getattr(info.value, "__notes__", None)
    assert world.stats() == auth.AuthStats()


def test_a_failing_refresh_leaves_the_drivers_error_with_a_note(world: World) -> None:
    world.connect()
    world.server.set_password("app", world.new_password("db-only"))
    world.backend.fail_always("5xx")

    with pytest.raises(PgOperationalError) as info:
        world.connect()

    note = info.value.__notes__[0]
    assert "refreshing AWSCURRENT failed (SecretUnavailableError)" in note
    assert "reading AWSPENDING failed" in note


def test_an_unreadable_awspending_is_not_an_error_of_its_own(world: World) -> None:
    world.connect()
    world.create_pending("pw1")
    world.server.set_password("app", world.new_password("db-only"))
    world.backend.fail_always("AccessDeniedException", secret_id=SECRET)

    with pytest.raises(PgOperationalError) as info:
        world.connect()
    assert "reading AWSPENDING failed (SecretAccessDeniedError)" in info.value.__notes__[0]


def test_awspending_is_not_read_when_the_policy_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    world = World(monkeypatch, policy=AuthPolicy(try_pending=False))
    world.connect()
    _, p1 = world.create_pending("pw1")
    world.server.set_password("app", p1)
    with pytest.raises(PgOperationalError):
        world.connect()
    assert world.stats().pending_fetches == 0


def test_a_herd_of_failing_connects_shares_one_refresh_and_one_pending_read(world: World) -> None:
    world.connect()
    _, p1 = world.create_pending("pw1")
    world.server.set_password("app", p1)
    world.server.barrier = threading.Barrier(8)  # the 8 stale logins are in flight together
    calls = world.calls

    def first_eight_then_free(i: int) -> FakeConnection:
        return world.connect()

    original_connect = world.server.connect

    def connect_and_release(params: dict[str, Any]) -> FakeConnection:
        try:
            return original_connect(params)
        finally:
            with world.server.lock:
                if len(world.server.logins) >= 9:
                    world.server.barrier = None

    world.server.connect = connect_and_release  # type: ignore[method-assign]
    results = run_threads(8, first_eight_then_free)

    assert all(isinstance(r, FakeConnection) for r in results), results
    assert world.calls - calls == 2  # one AWSCURRENT refresh, one AWSPENDING read, for all eight
    assert world.server.refused == 8  # each thread's stale login; no second wrong login
    stats = world.stats()
    assert (stats.refreshes, stats.pending_fetches) == (1, 1)


def test_a_version_refused_moments_ago_is_skipped_by_other_connects(world: World) -> None:
    world.connect()
    _, p1 = world.create_pending("pw1")
    world.server.set_password("app", p1)
    world.connect()  # refuses v0, pins AWSPENDING
    # A second factory (its own Login) for the same secret shares the state: pin used, v0 never retried.
    other = world.login()
    assert world.connect(other)._password == p1
    assert world.server.logins[-1] == ("app", True)
    assert world.server.refused == 1


# -- secret shapes -------------------------------------------------------------------------------------


def test_a_secret_without_password_fails_before_any_login(world: World) -> None:
    world.backend.put_secret(SECRET, json.dumps({"host": "h", "username": "app"}))
    with pytest.raises(SecretFormatError, match=r"'app/db'.*'password'") as info:
        world.connect()
    assert world.server.logins == []
    assert info.value.secret_id == SECRET


def test_a_non_json_secret_fails_clearly_without_showing_it(world: World) -> None:
    text = canary_value("not-json")
    world.backend.put_secret(SECRET, text)
    with pytest.raises(SecretFormatError, match="not valid JSON") as info:
        world.connect()
    assert text not in str(info.value)
    assert world.server.logins == []


def test_explicit_arguments_win_and_fill_what_the_secret_lacks(world: World) -> None:
    rds_managed = {"username": "app", "password": world.password}
    world.backend.put_secret(SECRET, json.dumps(rds_managed))
    world.cache.invalidate()
    seen: list[dict[str, Any]] = []
    login = world.login()
    drive(login.flow(), lambda c: seen.append(merged(c.params, {"host": "db.internal", "dbname": "x"},
                                                         secret_id=SECRET, names=PSYCOPG)))
    assert seen[0]["host"] == "db.internal"
    assert seen[0]["dbname"] == "x"
    assert "port" not in seen[0]


def test_custom_key_names_and_string_ports(world: World) -> None:
    value = json.dumps({"user": "app", "pass": world.password, "hostname": "h", "port": "6432", "db": "d"})
    world.backend.put_secret(SECRET, value)
    world.cache.invalidate()
    login = world.login(keys={"username": "user", "password": "pass", "host": "hostname", "dbname": "db"})
    params = drive(login.flow(), lambda c: dict(c.params))
    assert params == {"host": "h", "port": 6432, "user": "app", "password": world.password, "dbname": "d"}


def test_driver_names_differ_per_driver() -> None:
    value = auth.SecretValue(SECRET, None, "v1", ("AWSCURRENT",), secret_string=rds("app", "p"))
    assert secret_params(value, secret_id=SECRET, names=PYMYSQL)["database"] == "app"
    assert secret_params(value, secret_id=SECRET, names=PSYCOPG)["dbname"] == "app"


@pytest.mark.parametrize(("field", "raw", "message"), [
    ("port", "fifty", "is not a number"),
    ("port", True, "is not a number"),
    ("username", 42, "must be a string"),
])
def test_malformed_fields_are_named_without_their_value(field: str, raw: Any, message: str) -> None:
    data = json.loads(rds("app", canary_value("pw")))
    data[field] = raw
    value = auth.SecretValue(SECRET, None, "v1", ("AWSCURRENT",), secret_string=json.dumps(data))
    with pytest.raises(SecretFormatError, match=message) as info:
        secret_params(value, secret_id=SECRET, names=PSYCOPG)
    assert repr(field) in str(info.value)
    assert str(raw) not in str(info.value) or isinstance(raw, bool)


def test_unknown_key_names_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown field"):
        make_params_of(SECRET, PSYCOPG, {"pasword": "pw"})


# -- the flow itself: I/O-free steps, sync and async executors -----------------------------------------


def test_the_flow_yields_steps_and_does_no_io_itself(world: World) -> None:
    world.connect()
    calls, logins = world.calls, len(world.server.logins)
    flow = world.login().flow()
    step = next(flow)
    assert isinstance(step, Read)
    credentials = step.fn()
    assert isinstance(credentials, Credentials)
    step = flow.send(credentials)
    assert isinstance(step, Connect)
    assert step.credentials.stage == "AWSCURRENT"
    assert world.password not in repr(step)  # a step (and its credentials) never shows the password
    with pytest.raises(StopIteration) as done:
        flow.send("a connection")
    assert done.value.value == "a connection"
    assert (world.calls, len(world.server.logins)) == (calls, logins)


def test_the_first_read_is_marked_blocking_for_an_event_loop_only_on_a_miss(world: World) -> None:
    assert next(world.login().flow(on_event_loop=True)).may_block is True  # cold cache
    world.connect()
    assert next(world.login().flow(on_event_loop=True)).may_block is False  # a hit: fine on the loop
    assert next(world.login().flow()).may_block is False


async def test_the_async_executor_runs_the_same_policy(world: World) -> None:
    import asyncio

    loop_thread = threading.get_ident()
    threads: list[int] = []

    async def connect(credentials: Credentials) -> FakeConnection:
        await asyncio.sleep(0)
        return world.server.connect(merged(credentials.params, {}, secret_id=SECRET, names=PSYCOPG))

    def watching(step_fn: Any) -> Any:
        def run() -> Any:
            threads.append(threading.get_ident())
            return step_fn()
        return run

    await drive_async(world.login().flow(on_event_loop=True), connect)  # cold: read in a thread
    _, p1 = world.create_pending("pw1")
    world.server.set_password("app", p1)

    flow = world.login().flow(on_event_loop=True)
    original_send = flow.send

    class Spy:
        def __iter__(self) -> Spy:
            return self

        def __next__(self) -> Any:
            return self.wrap(next(flow))

        def send(self, value: Any) -> Any:
            return self.wrap(original_send(value))

        def close(self) -> None:
            flow.close()

        @staticmethod
        def wrap(step: Any) -> Any:
            return Read(watching(step.fn), step.may_block) if isinstance(step, Read) else step

    conn = await drive_async(Spy(), connect)  # type: ignore[arg-type]
    assert conn._password == p1
    assert threads[0] == loop_thread  # the hit was read on the loop
    assert all(t != loop_thread for t in threads[1:])  # refresh and AWSPENDING in worker threads
    assert len(threads) == 3


def test_the_default_cache_is_used_when_none_is_given(world: World) -> None:
    from secretcache import set_default_cache

    previous = set_default_cache(world.cache)
    try:
        login = Login(SECRET, make_params_of(SECRET, PSYCOPG, None))
        conn = drive(login.flow(), lambda c: world.server.connect(
            merged(c.params, {}, secret_id=SECRET, names=PSYCOPG)))
    finally:
        set_default_cache(previous)
    assert conn.user == "app"


def test_mysql_style_refusals_follow_the_same_policy(world: World) -> None:
    world.server.mysql = True
    world.connect()
    _, p1 = world.create_pending("pw1")
    world.server.set_password("app", p1)
    assert world.connect()._password == p1
    assert world.stats().pending_logins == 1


# -- packaging -----------------------------------------------------------------------------------------


def test_importing_secretcache_db_loads_no_driver() -> None:
    import subprocess
    import sys

    code = ("import sys, secretcache.db; "
            "print(sorted(m for m in ('psycopg', 'psycopg_pool', 'pymysql', 'sqlalchemy', 'boto3', 'asyncio') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize(("module", "driver", "extra"), [
    ("secretcache.db.psycopg", "psycopg", "secretcache[postgres]"),
    ("secretcache.db.pymysql", "pymysql", "secretcache[mysql]"),
    ("secretcache.db.sqlalchemy", "sqlalchemy", "secretcache[sqlalchemy]"),
])
def test_a_missing_driver_names_the_extra_to_install(
    module: str, driver: str, extra: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib
    import sys

    monkeypatch.setitem(sys.modules, driver, None)  # what an absent package looks like to `import`
    monkeypatch.delitem(sys.modules, module, raising=False)
    with pytest.raises(ImportError, match=re.escape(extra)):
        importlib.import_module(module)


# -- every read names its stage: the cache's default stage is not AWSCURRENT for everyone --------------


class StageLoggingBackend(InMemoryBackend):
    """An InMemoryBackend that also logs the stage each GetSecretValue asked for (None: unnamed)."""

    def __init__(self) -> None:
        super().__init__()
        self.stages: list[str | None] = []

    def get_secret_value(
        self, secret_id: str, *, version_id: str | None = None, version_stage: str | None = None
    ) -> Any:
        self.stages.append(version_stage)
        return super().get_secret_value(secret_id, version_id=version_id, version_stage=version_stage)


def test_with_a_previous_default_stage_the_policy_reads_and_refreshes_awscurrent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(auth, "monotonic", FakeClock())
    backend = StageLoggingBackend()
    passwords = [canary_value(f"stage{i}") for i in range(3)]
    backend.put_secret(SECRET, rds("app", passwords[0]))
    backend.rotate(SECRET, rds("app", passwords[1]))  # AWSCURRENT: 1, AWSPREVIOUS: 0
    server = FakeServer({"app": passwords[1]})
    cache = SecretCache(backend, config=CacheConfig(ttl=3600, version_stage="AWSPREVIOUS"))
    login = Login(SECRET, make_params_of(SECRET, PSYCOPG, None), cache=cache, policy=AuthPolicy())

    def connect() -> FakeConnection:
        return drive(login.flow(), lambda c: server.connect(merged(c.params, {}, secret_id=SECRET,
                                                                      names=PSYCOPG)))

    try:
        assert connect()._password == passwords[1]  # step 1 read AWSCURRENT, not the default AWSPREVIOUS
        backend.rotate(SECRET, rds("app", passwords[2]))
        server.set_password("app", passwords[2])
        backend.stages.clear()
        assert connect()._password == passwords[2]  # the forced refresh read AWSCURRENT
        assert backend.stages == ["AWSCURRENT"]
        assert auth_stats(SECRET, cache=cache).refreshes == 1
        assert server.logins[-2:] == [("app", False), ("app", True)]
    finally:
        cache.close()
