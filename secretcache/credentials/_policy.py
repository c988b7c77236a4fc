"""The rotation policy shared by every database factory: detect, refresh, retry, try AWSPENDING, give up.

Size: the whole policy (detect, refresh, retry, AWSPENDING, pin, give up), read as one specification;
the per-secret state it shares is :mod:`._state`, owned by the cache.

One connect follows DESIGN.md ("Databases"), at most three logins:

1. log in with the cached credentials (AWSCURRENT, or an AWSPENDING version pinned during a rotation);
2. on an authentication failure, one forced refresh of AWSCURRENT, shared by every connect failing at
   that moment and rate-limited per secret; log in again if it brought other credentials;
3. if that did not help, read AWSPENDING once and log in with it (single-user rotation between
   setSecret and finishSecret); if it works, pin it for new connections until AWSCURRENT moves;
4. otherwise raise the driver's own exception from the last login, with a note naming the secret
   id and the versions tried (never a password).

Every read names its stage ("AWSCURRENT" or "AWSPENDING"): ``version_stage=None`` would mean the cache's
configured default, which need not be AWSCURRENT (``CacheConfig(version_stage="AWSPREVIOUS")``).

Any other error (server down, unknown database, too many connections) is raised at once: no retry,
no refresh. The flow is free of I/O: :meth:`Login.flow` yields :class:`Read` steps (cache work) and
:class:`Connect` steps (a driver login) that :func:`~._flow.drive` or :func:`~._flow.drive_async` carry out, so
sync and async drivers share it (the shape of httpx's auth flow; see ``_flow.py``). No driver is
imported: failures are recognised by duck typing (``_detect.py``). The state every connect with one
secret shares (refused versions, the last forced fetches, the pin, the parsed credentials, the
counters) lives on the cache's core (``_state.py``), so it dies with the cache.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from time import monotonic
from typing import TYPE_CHECKING, Any

from ..cache import blocking_cache
from ..errors import SecretCacheError, SecretFormatError, SecretNotFoundError
from ..model import SecretValue, validate_secret_id
from ._detect import is_auth_failure
from ._flow import Connect, Credentials, Flow, Read, add_note
from ._flow import short as _short
from ._state import CURRENT, PENDING, AuthStats, Fetch, Pin, SecretState, state_of, version_key

if TYPE_CHECKING:
    from .._face import AnySecretCache
    from ..cache import SecretCache

__all__ = ["DEFAULT_POLICY", "AuthPolicy", "Login", "auth_stats"]


# -- configuration -------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class AuthPolicy:
    """Knobs of the rotation policy. The defaults suit real rotations (hours apart, seconds long)."""

    min_refresh_interval: float = 1.0
    """The rate limit: seconds during which a forced fetch whose answer was already known to be no good
    is reused instead of repeated. A version refused only after the last fetch (a new rotation) always
    gets a fresh one; a fetch begun after a connect started is always shared with it."""
    known_bad_ttl: float = 10.0
    """Seconds a refused version is remembered, so other connects skip it instead of logging in again."""
    try_pending: bool = True
    """Whether step 3 reads AWSPENDING (needs ``secretsmanager:GetSecretValue`` on that stage)."""
    auth_messages: tuple[str, ...] = ()
    """Extra server-message fragments meaning "authentication failed" (localised servers)."""

    def __post_init__(self) -> None:
        for name in ("min_refresh_interval", "known_bad_ttl"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"AuthPolicy.{name} must be a number >= 0, got {value!r}")
        if isinstance(self.auth_messages, str) or not all(isinstance(m, str) for m in self.auth_messages):
            raise ValueError("AuthPolicy.auth_messages must be a tuple of str")


DEFAULT_POLICY = AuthPolicy()




def state_for(cache: AnySecretCache, secret_id: str) -> SecretState:
    """The policy's state for ``secret_id`` in ``cache`` (either face: both share it), made on first use."""
    return state_of(cache, secret_id)


def auth_stats(secret_id: str, *, cache: AnySecretCache | None = None) -> AuthStats:
    """Counters of the rotation policy for ``secret_id`` in ``cache`` (default: the module-level cache)."""
    return state_for(blocking_cache(cache), secret_id).stats()


# -- the policy ----------------------------------------------------------------------------------------


class _Attempts:
    """What one connect tried, for its decisions and for the note on the final error."""

    __slots__ = ("current_version", "notes", "refused", "started", "tried")

    def __init__(self) -> None:
        self.started = monotonic()  # a shared fetch that began after this is as new as this connect needs
        self.refused: list[tuple[Credentials, object]] = []  # each with the exception or refused result
        self.tried: set[object] = set()
        self.current_version: str | None = None
        self.notes: list[str] = []


class Login:
    """How one factory logs in with one secret: the cache, the policy and the driver's parameter mapping.

    ``params_of`` turns a version of the secret into driver keyword arguments (raising
    :class:`SecretFormatError` for a malformed secret); its result is memoised per version in the
    cache's state for the secret, keyed by ``params_of`` itself, so pass the same function each time
    (``make_params_of`` does). ``cache`` is a SecretCache or an AsyncSecretCache (read through its
    blocking face); ``None`` uses the module-level default cache, looked up at each connect. ``detect``
    tells a refused login from any other error (default: the database drivers' duck-typed detection,
    with the policy's ``auth_messages``);
    :mod:`secretcache.credentials` passes the caller's own. ``refused`` tells a result of a login that means
    "these credentials were refused" without an exception (an HTTP 401 response): it is handled as a
    refused login, and when the policy gives up on it the flow returns it instead of raising. ``logger``
    names the logger of the client logging in (``secretcache.db``, ``secretcache.http``,
    ``secretcache.credentials``).
    """

    def __init__(
        self,
        secret_id: str,
        params_of: Callable[[SecretValue], Mapping[str, Any]],
        *,
        cache: AnySecretCache | None = None,
        policy: AuthPolicy | None = None,
        detect: Callable[[BaseException], bool] | None = None,
        refused: Callable[[Any], bool] | None = None,
        logger: str = "secretcache.db",
    ) -> None:
        validate_secret_id(secret_id)
        if policy is not None and not isinstance(policy, AuthPolicy):
            raise TypeError(f"policy must be an AuthPolicy, got {type(policy).__name__}")
        self.secret_id = secret_id
        self.policy = policy or DEFAULT_POLICY
        self._params_of = params_of
        self._detect = detect
        self._refused = refused
        self._log = logging.getLogger(logger)  # the client's own: HTTP give-ups are no database events
        # None: the default cache, looked up at each connect; an async cache: its blocking twin, made once.
        self._cache = None if cache is None else blocking_cache(cache)
        self._bound: tuple[SecretCache, SecretState] | None = None

    def __repr__(self) -> str:
        return f"<Login secret={self.secret_id!r}>"

    def _cache_and_state(self) -> tuple[SecretCache, SecretState]:
        cache = blocking_cache(self._cache)
        bound = self._bound
        if bound is None or bound[0] is not cache:
            bound = self._bound = (cache, state_for(cache, self.secret_id))
        return bound

    def flow(self, *, on_event_loop: bool = False) -> Flow:
        """One connect, as the steps of DESIGN.md's rotation policy; returns the connection.

        ``on_event_loop``: mark the first read blocking unless it is a cache hit (async executors
        then run it in a worker thread); the later reads are always marked blocking.
        """
        attempts = _Attempts()
        # 1. The cached credentials: AWSCURRENT, or the AWSPENDING version in use during a rotation.
        may_block = on_event_loop and not self._fresh_in_cache()
        credentials = yield Read(lambda: self._cached(attempts), may_block=may_block)
        assert credentials is not None
        result = yield Connect(credentials)
        if self._succeeded(credentials, result, attempts):
            return result
        # 2. Refused: one shared, rate-limited refresh of AWSCURRENT; log in again if it brought news.
        credentials = yield Read(lambda: self._refreshed_current(attempts), may_block=True)
        if credentials is not None:
            result = yield Connect(credentials)
            if self._succeeded(credentials, result, attempts):
                return result
        # 3. Still refused: AWSPENDING, once (single-user rotation between setSecret and finishSecret).
        credentials = yield Read(lambda: self._pending(attempts), may_block=True)
        if credentials is not None:
            result = yield Connect(credentials)
            if self._succeeded(credentials, result, attempts):
                return result
        # 4. Give up: the driver's own exception from the last login, noting the secret and what was tried
        # (or the last refused result, such as an HTTP 401 response: the caller gets it as it came).
        last = self._give_up(attempts)
        if isinstance(last, BaseException):
            raise last
        return last

    def in_use(self, *, on_event_loop: bool = False) -> Flow:
        """The version a login would use now, as a flow of one read (no login, no refresh): the pinned
        AWSPENDING while AWSCURRENT has not moved, else AWSCURRENT. For contracts that only hand out
        credentials and never see a refusal (redis-py's ``CredentialProvider``)."""
        may_block = on_event_loop and not self._fresh_in_cache()
        credentials = yield Read(lambda: self._cached(_Attempts()), may_block=may_block)
        assert credentials is not None
        return credentials.value

    # -- step 1 ----------------------------------------------------------------------------------------

    def _fresh_in_cache(self) -> bool:
        """Whether reading AWSCURRENT is a hit, i.e. safe on an event loop (no backend call)."""
        cache, _ = self._cache_and_state()
        return cache.peek(self.secret_id, version_stage=CURRENT) is not None

    def _cached(self, attempts: _Attempts) -> Credentials:
        """The pin while AWSCURRENT has not moved; else AWSCURRENT, unless it was just refused and a
        later AWSPENDING read brought a version nobody refused (the pin-to-be: no wasted login)."""
        cache, state = self._cache_and_state()
        current = cache.get_secret_value(self.secret_id, version_stage=CURRENT)
        attempts.current_version = current.version_id
        pin = state.pin
        if pin is not None:
            if pin.over == current.version_id:
                return self._credentials(pin.value, PENDING, "pinned")
            self._unpin(state, pin, "AWSCURRENT moved")
        now, ttl = monotonic(), self.policy.known_bad_ttl
        current_refused = state.refused_since(version_key(current), ttl, now)
        pending = state.fetches.get(PENDING)
        if (
            current_refused is not None
            and pending is not None
            and isinstance(pending.outcome, SecretValue)
            and pending.started >= current_refused
            and state.refused_since(version_key(pending.outcome), ttl, now) is None
        ):
            return self._credentials(pending.outcome, PENDING, "pending")
        return self._credentials(current, CURRENT, "cached")

    def _credentials(self, value: SecretValue, stage: str, source: str) -> Credentials:
        _, state = self._cache_and_state()
        return state.credentials(self._params_of, value, stage, source)

    # -- after each login ------------------------------------------------------------------------------

    def _succeeded(self, credentials: Credentials, result: object, attempts: _Attempts) -> bool:
        """True for a connection; False for refused credentials (recorded); any other error is raised."""
        _, state = self._cache_and_state()
        if not isinstance(result, BaseException):
            if self._refused is None or not self._refused(result):
                if credentials.stage == PENDING:
                    state.count("pending_logins")
                    if credentials.source != "pinned":
                        self._pin(credentials, attempts)
                return True
        elif not (self._detect(result) if self._detect is not None
                  else is_auth_failure(result, extra_messages=self.policy.auth_messages)):
            raise result  # not rotation: the driver's error as it is, nothing retried or refreshed
        state.mark_refused(version_key(credentials.value), self.policy.known_bad_ttl, monotonic())
        attempts.refused.append((credentials, result))
        attempts.tried.add(version_key(credentials.value))
        if credentials.source == "pinned":
            self._unpin(state, None, "AWSPENDING refused")
        return False

    def _usable(self, value: SecretValue, attempts: _Attempts, what: str) -> bool:
        """False (with a note) for a version this connect tried, or one refused within ``known_bad_ttl``."""
        key = version_key(value)
        if key in attempts.tried:
            attempts.notes.append(f"{what} returned a version already refused ({_short(value)})")
            return False
        _, state = self._cache_and_state()
        if state.refused_since(key, self.policy.known_bad_ttl, monotonic()) is not None:
            attempts.notes.append(f"{what} returned version {_short(value)}, refused moments ago")
            return False
        return True

    # -- steps 2 and 3 ---------------------------------------------------------------------------------

    def _forced_fetch(self, stage: str, attempts: _Attempts) -> SecretValue | SecretCacheError:
        """The newest value of ``stage``: the last shared fetch when it will do, else a fetch now.

        The last fetch will do when it began after this connect did (it is as new as anything this
        connect could learn; a herd of failing connects shares one fetch this way), or when it began
        less than ``min_refresh_interval`` ago and nothing has happened since that it did not know: its
        answer was an error, a version nobody has refused, or one refused before that fetch began (the
        rate limit for credentials that stay wrong). A version refused only after the last fetch is
        news (a new rotation): that always fetches. The interval counts from the fetch's start, since its
        answer is only as new as that: a change made after it shows within the interval, however long the
        fetch took. Fetches of a stage are serialised per secret, so waiters share the one in flight.
        """
        cache, state = self._cache_and_state()
        with state.fetch_locks[stage]:
            last = state.fetches.get(stage)
            if last is not None and (
                last.started >= attempts.started
                or (monotonic() - last.started < self.policy.min_refresh_interval and not self._overtaken(last))
            ):
                if stage == CURRENT and isinstance(last.outcome, SecretValue):
                    # As new as the shared fetch, or newer.
                    return cache.get_secret_value(self.secret_id, version_stage=CURRENT)
                return last.outcome
            started = monotonic()
            state.count("refreshes" if stage == CURRENT else "pending_fetches")
            outcome: SecretValue | SecretCacheError
            try:
                outcome = cache.refresh(self.secret_id, version_stage=stage)
            except SecretCacheError as e:
                outcome = e
            state.fetches[stage] = Fetch(started, outcome)
            self._log.debug("secret %r: forced fetch of %s (%s)", self.secret_id, stage, type(outcome).__name__)
            return outcome

    def _overtaken(self, fetch: Fetch) -> bool:
        """Whether a fetch's answer was refused only after the fetch began: news it could not know."""
        if isinstance(fetch.outcome, SecretCacheError):
            return False
        _, state = self._cache_and_state()
        since = state.refused_since(version_key(fetch.outcome), self.policy.known_bad_ttl, monotonic())
        return since is not None and since > fetch.started

    def _refreshed_current(self, attempts: _Attempts) -> Credentials | None:
        outcome = self._forced_fetch(CURRENT, attempts)
        if isinstance(outcome, SecretCacheError):
            attempts.notes.append(f"refreshing AWSCURRENT failed ({type(outcome).__name__})")
            return None
        attempts.current_version = outcome.version_id
        if not self._usable(outcome, attempts, "refreshing AWSCURRENT"):
            return None
        return self._credentials(outcome, CURRENT, "refreshed")

    def _pending(self, attempts: _Attempts) -> Credentials | None:
        if not self.policy.try_pending:
            return None
        outcome = self._forced_fetch(PENDING, attempts)
        if isinstance(outcome, SecretNotFoundError):
            attempts.notes.append("no AWSPENDING version")
            return None
        if isinstance(outcome, SecretCacheError):
            attempts.notes.append(f"reading AWSPENDING failed ({type(outcome).__name__})")
            return None
        if not self._usable(outcome, attempts, "AWSPENDING"):
            return None
        try:
            return self._credentials(outcome, PENDING, "pending")
        except SecretFormatError as e:
            attempts.notes.append(f"AWSPENDING unusable ({e})")
            return None

    # -- the pin ---------------------------------------------------------------------------------------

    def _pin(self, credentials: Credentials, attempts: _Attempts) -> None:
        """Use a working AWSPENDING for new connections until AWSCURRENT moves (any new version)."""
        _, state = self._cache_and_state()
        with state.lock:
            if state.pin is not None and state.pin.value is credentials.value:
                return
            state.pin = Pin(credentials.value, attempts.current_version)
        self._log.info(
            "secret %r: AWSCURRENT refused, AWSPENDING version %s works; using it for new connections "
            "until AWSCURRENT moves (rotation in progress)", self.secret_id, _short(credentials.value),
        )

    def _unpin(self, state: SecretState, pin: Pin | None, why: str) -> None:
        with state.lock:
            current = state.pin
            if current is None or (pin is not None and current is not pin):
                return
            state.pin = None
        self._log.info("secret %r: stopped using pinned AWSPENDING version %s (%s)", self.secret_id,
                 _short(current.value), why)

    # -- step 4 ----------------------------------------------------------------------------------------

    def _give_up(self, attempts: _Attempts) -> object:
        """The last driver error, chained to the first, with a note naming the secret, never a value (or the
        last refused result as it came)."""
        _, state = self._cache_and_state()
        state.count("gave_up")
        first, last = attempts.refused[0][1], attempts.refused[-1][1]
        tried = ", ".join(c.describe() for c, _ in attempts.refused)
        note = f"secretcache: secret {self.secret_id!r}: {len(attempts.refused)} login(s) refused: {tried}"
        if attempts.notes:
            note += "; " + "; ".join(attempts.notes)
        if isinstance(last, BaseException):
            add_note(last, note)
            if last is not first and last.__cause__ is None and isinstance(first, BaseException):
                last.__cause__ = first  # as `raise last from first`: the first refusal shows in the traceback
                last.__suppress_context__ = True
        self._log.info("%s", note.removeprefix("secretcache: "))
        return last
