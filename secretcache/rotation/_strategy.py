"""What a rotation strategy does at each step, written once for every engine.

A strategy turns the AWSCURRENT secret into the AWSPENDING one (createSecret), makes the database accept it
(setSecret) and proves it logs in (testSecret). :class:`SingleUser` and :class:`AlternatingUsers` hold the
logic of AWS's ``...RotationSingleUser`` and ``...RotationMultiUser`` templates; an engine module
(``postgres.py``, ``mysql.py``) supplies the few driver operations they call.
"""

from __future__ import annotations

import ipaddress
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..credentials import is_auth_failure
from .passwords import PasswordPolicy

__all__ = [
    "AlternatingUsers", "DatabaseStrategy", "RotationError", "RotationStrategy", "SecretFields", "SingleUser",
    "StepContext", "alternate_username",
]

log = logging.getLogger("secretcache.rotation")

Secret = dict[str, Any]
TlsMode = Literal["require", "prefer", "disable"]
CLONE_SUFFIX = "_clone"


class SecretFields(dict[str, Any]):
    """A secret's JSON fields. Its repr names the keys only: a traceback's frame locals (pytest, Sentry)
    or a log line formatting a step's arguments never show a password."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"<secret fields {sorted(map(str, self))}>"


class RotationError(Exception):
    """A rotation step cannot proceed. The message names the secret, version and user, never a password."""


@dataclass(frozen=True)
class StepContext:
    """What setSecret knows: both versions, and loaders for AWSPREVIOUS and other secrets (``masterarn``)."""

    secret_id: str
    token: str
    current: Secret = field(repr=False)
    pending: Secret = field(repr=False)
    load_previous: Callable[[], Secret | None]
    load_secret: Callable[[str], Secret]


class RotationStrategy(ABC):
    """The database side of a rotation; :class:`~secretcache.rotation.RotationHandler` drives it."""

    password_policy: PasswordPolicy

    def validate(self, secret: Secret, what: str) -> None:  # noqa: B027 (optional hook, accepts anything)
        """Raise :class:`RotationError` when ``secret`` (described by ``what``) cannot be rotated."""

    @abstractmethod
    def new_pending(self, current: Secret, password: str) -> Secret:
        """createSecret: the AWSPENDING value made from AWSCURRENT and a new password."""

    @abstractmethod
    def set_secret(self, ctx: StepContext) -> None:
        """setSecret: make the database accept the pending credentials (idempotent)."""

    @abstractmethod
    def test_secret(self, pending: Secret) -> None:
        """testSecret: log in with the pending credentials; raise if that fails."""


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class DatabaseStrategy(RotationStrategy):
    """A strategy for an RDS-shaped secret (``engine``, ``host``, ``port``, ``username``, ``password``,
    ``dbname``). Engine modules implement the ``_open``/``_set_own_password``/``_ensure_user`` driver calls.

    TLS: the secret's ``ssl`` key (true/false) wins, then ``tls``; the default requires TLS except on a
    loopback host (plaintext never leaves the machine there). Unlike AWS's templates there is no silent
    fallback from TLS to plaintext for remote hosts.
    """

    engines: tuple[str, ...] = ()
    default_port: int = 0
    default_dbname: str | None = None
    username_limit: int = 63
    default_exclude: str = ""

    def __init__(self, *, password_policy: PasswordPolicy | None = None, tls: TlsMode | None = None,
                 connect_timeout: float = 5.0) -> None:
        self.password_policy = password_policy or PasswordPolicy(exclude_characters=self.default_exclude)
        self.tls = tls
        self.connect_timeout = connect_timeout

    def __repr__(self) -> str:
        return f"{type(self).__name__}(tls={self.tls!r})"

    # -- driver operations (engine modules) ------------------------------------------------------------

    @abstractmethod
    def _open(self, secret: Secret, tls: TlsMode) -> Any:
        """An autocommit connection with the secret's credentials; raise the driver's error on failure."""

    @abstractmethod
    def _set_own_password(self, conn: Any, username: str, password: str) -> None:
        """Logged in as ``username``, change its own password."""

    @abstractmethod
    def _ensure_user(self, admin: Any, current_user: str, pending_user: str, password: str) -> None:
        """As admin, create ``pending_user`` with ``current_user``'s rights if missing; set its password."""

    def _ping(self, conn: Any) -> None:
        with conn.cursor() as cur:
            cur.execute("SELECT NOW()")
            cur.fetchone()

    # -- shared steps -----------------------------------------------------------------------------------

    def validate(self, secret: Secret, what: str) -> None:
        missing = [k for k in ("host", "username", "password") if not isinstance(secret.get(k), str)
                   or not secret.get(k)]
        if missing:
            raise RotationError(f"{what}: missing or empty field(s) {missing}")
        engine = secret.get("engine")
        if engine not in self.engines:
            raise RotationError(f"{what}: engine {engine!r} is not one of {list(self.engines)} for "
                                f"{type(self).__name__}")

    def tls_mode(self, secret: Mapping[str, Any]) -> TlsMode:
        ssl = secret.get("ssl")
        if isinstance(ssl, str) and ssl.strip().lower() in ("true", "false"):
            ssl = ssl.strip().lower() == "true"
        if isinstance(ssl, bool):
            return "require" if ssl else "disable"
        if self.tls is not None:
            return self.tls
        return "prefer" if _is_loopback(str(secret.get("host", ""))) else "require"

    def port(self, secret: Mapping[str, Any]) -> int:
        return int(secret.get("port") or self.default_port)

    def connect(self, secret: Secret) -> Any:
        """Log in with ``secret`` (raises the driver's error)."""
        return self._open(secret, self.tls_mode(secret))

    def try_login(self, secret: Secret | None) -> Any | None:
        """A connection, or None when the server refused these credentials. Other errors propagate."""
        if secret is None:
            return None
        try:
            return self.connect(secret)
        except Exception as e:
            if is_auth_failure(e):
                return None
            raise

    def new_pending(self, current: Secret, password: str) -> Secret:
        return SecretFields(current, password=password)

    def test_secret(self, pending: Secret) -> None:
        conn = self.try_login(pending)
        if conn is None:
            raise RotationError(f"testSecret: the pending credentials of user {pending.get('username')!r} "
                                "were refused by the database")
        try:
            self._ping(conn)
        finally:
            conn.close()


def _same(ctx: StepContext, field: str) -> None:
    if ctx.current.get(field) != ctx.pending.get(field):
        raise RotationError(f"setSecret: the pending version of {ctx.secret_id!r} changes {field!r}; "
                            "this strategy only changes passwords")


class SingleUser(DatabaseStrategy):
    """One user changes its own password at setSecret (the old one stops working right then)."""

    def set_secret(self, ctx: StepContext) -> None:
        conn = self.try_login(ctx.pending)
        if conn is not None:
            conn.close()
            log.info("setSecret: the pending password of %r already works; nothing to do", ctx.secret_id)
            return
        _same(ctx, "username")
        _same(ctx, "host")
        conn = self.try_login(ctx.current) or self.try_login(ctx.load_previous())
        if conn is None:
            raise RotationError(f"setSecret: cannot log in to the database as {ctx.current['username']!r} "
                                f"with the current, previous or pending version of {ctx.secret_id!r}")
        try:
            self._set_own_password(conn, ctx.pending["username"], ctx.pending["password"])
        finally:
            conn.close()
        log.info("setSecret: changed the password of %r for %r", ctx.pending["username"], ctx.secret_id)


def alternate_username(username: str) -> str:
    """``app`` -> ``app_clone`` -> ``app``: the two users an alternating rotation flips between."""
    return username.removesuffix(CLONE_SUFFIX) if username.endswith(CLONE_SUFFIX) else username + CLONE_SUFFIX


class AlternatingUsers(DatabaseStrategy):
    """Flip between ``user`` and ``user_clone``; an admin (the secret's ``masterarn``) creates the clone
    with the user's rights and sets passwords. The previous user's password keeps working until the next
    rotation, so clients holding AWSPREVIOUS never fail."""

    def validate(self, secret: Secret, what: str) -> None:
        super().validate(secret, what)
        if not isinstance(secret.get("masterarn"), str) or not secret["masterarn"]:
            raise RotationError(f"{what}: alternating-users rotation needs 'masterarn' (the admin secret)")

    def new_pending(self, current: Secret, password: str) -> Secret:
        username = alternate_username(current["username"])
        if len(username) > self.username_limit:
            raise RotationError(f"createSecret: the alternate user name {username!r} is longer than "
                                f"{self.username_limit} characters")
        return SecretFields(current, username=username, password=password)

    def set_secret(self, ctx: StepContext) -> None:
        conn = self.try_login(ctx.pending)
        if conn is not None:
            conn.close()
            log.info("setSecret: the pending user %r already logs in; nothing to do", ctx.pending["username"])
            return
        if ctx.pending["username"] != alternate_username(ctx.current["username"]):
            raise RotationError(f"setSecret: pending user {ctx.pending['username']!r} is not the alternate "
                                f"of current user {ctx.current['username']!r} in {ctx.secret_id!r}")
        _same(ctx, "host")
        # Confused-deputy guard (as the templates): only an owner of working credentials gets the clone.
        current = self.try_login(ctx.current)
        if current is None:
            raise RotationError(f"setSecret: the current credentials of {ctx.secret_id!r} "
                                f"(user {ctx.current['username']!r}) do not log in")
        current.close()
        master = SecretFields(ctx.load_secret(ctx.current["masterarn"]))
        master_what = f"admin secret {ctx.current['masterarn']!r}"
        master.setdefault("engine", ctx.current["engine"])
        DatabaseStrategy.validate(self, master, master_what)
        if (master["host"], self.port(master)) != (ctx.current["host"], self.port(ctx.current)):
            raise RotationError(f"setSecret: {master_what} is for another server than {ctx.secret_id!r}")
        master["dbname"] = ctx.current.get("dbname")
        admin = self.try_login(master)
        if admin is None:
            raise RotationError(f"setSecret: the {master_what} (user {master['username']!r}) does not log in")
        try:
            self._ensure_user(admin, ctx.current["username"], ctx.pending["username"],
                              ctx.pending["password"])
        finally:
            admin.close()
        log.info("setSecret: user %r ready with a new password for secret %r", ctx.pending["username"],
                 ctx.secret_id)
