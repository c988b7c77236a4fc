"""FileBackend: secrets mounted as files (Kubernetes CSI driver / ASCP, Docker and ECS ``/run/secrets``,
Vault Agent templates), read with rotation awareness.

The writers these mounts have never change a file in place: the kubelet's atomic writer (which the
Secrets Store CSI driver uses too) writes a new timestamped directory and renames a ``..data`` symlink
over the old one; Vault Agent renders to a temporary file and renames it. So a change is a new *file*
at the same path, which an inode watch misses and a path re-check sees. The backend re-checks the path
(one ``stat``) at most once per ``check_interval`` per secret and reads the file again only when the
stat says it changed; between checks a read is a dict lookup and a clock reading, with no I/O at all.

Standard library only: no boto3, no dependency, nothing imported that ``import secretcache`` does not
already load (``hashlib`` and ``stat`` aside).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import stat
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import NamedTuple

from ..errors import (
    SecretAccessDeniedError,
    SecretCacheError,
    SecretFormatError,
    SecretNotFoundError,
    SecretUnavailableError,
)
from ..model import MAX_SECRET_BYTES, SecretValue, validate_secret_id
from . import _fork

__all__ = ["FileBackend"]

log = logging.getLogger("secretcache")

CURRENT = "AWSCURRENT"
_ARN = re.compile(r"arn:[^:]+:secretsmanager:[^:]*:[^:]*:secret:(?P<rest>.+)")
_SUFFIX = re.compile(r"(?P<name>.+)-[A-Za-z0-9]{6}")
_DATA_LINK = "..data"
_UNSEEN = object()
_SWAPS_FOLLOWED = 20
"""Attempts while the ``..data`` link keeps moving (a writer swapping over and over during one read)."""
_SETTLE = (0.0, 0.005)
"""Pauses before the attempts that follow a missing or torn read when nothing visibly moved: an
immediate retry (a swap completes its rename before it removes the old directory), then one short
pause for writers that delete and re-create; then the answer stands."""

# A keyed digest: the version id names a content without revealing it. An unkeyed hash of a short
# password could be reversed offline from any log line or event that carries the version id.
_DIGEST_KEY = os.urandom(32)


class _Seen:
    """What one secret id read last: the value, the file it came from, and when that was last checked.

    ``checked`` is the only field that changes, and only forwards in practice: it is the clock reading
    taken *before* a check's ``stat``, so a slow check can never make an old file look freshly checked
    (a late write of an older reading only causes one more check, never one less).
    """

    __slots__ = ("checked", "path", "signature", "value")

    def __init__(self, value: SecretValue, path: str, signature: tuple[int, ...], checked: float) -> None:
        self.value, self.path, self.signature, self.checked = value, path, signature, checked


class _Missing(NamedTuple):
    errno_name: str


class _Torn(NamedTuple):
    why: str


def _signature(st: os.stat_result) -> tuple[int, ...]:
    # A rename swap gives a new inode; an in-place write changes size or the ns timestamps.
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class FileBackend:
    """Reads each secret from the file that ASCP (or Docker, ECS, Vault Agent) mounts for it under ``root``.

    - **Naming**, as ASCP writes files: ``aliases`` first (``{secret_id: file}``, like ``objectAlias``;
      jmesPath files are plain files addressed by their alias), else the secret's name with ``/``
      replaced by ``path_translation`` (``None``: kept, so ``prod/db`` is the file ``db`` in the
      directory ``prod``). A full ARN maps to its name without the 6-character suffix
      (``...:secret:prod/db-AbCdEf`` -> ``prod_db``), a partial ARN to its name as written; when that
      file does not exist, the file ASCP writes for an ARN ``objectName`` without an alias (the ARN
      itself, translated) is tried.
    - **Values**: UTF-8 content is ``secret_string``, anything else ``secret_binary``; ``version_id`` is
      a keyed digest of the content (the same content, the same id, in this process);
      ``version_stages`` is ``("AWSCURRENT",)``. Another stage, or a version id the file does not hold
      now, raises :class:`SecretNotFoundError` (so a :class:`ChainBackend` asks the next backend).
    - **Freshness**: the path is re-checked (one ``stat``) at most once per ``check_interval`` seconds
      per id; within the interval a read does no I/O. A change re-reads the file. A read that finds the
      file missing or torn (a swap in progress, a writer mid-write) tries again and never keeps what
      it saw. :meth:`refresh_secret_value` (what ``SecretCache.refresh`` and the rotation policy's
      forced reads call) reads the file at once.

    ``timer`` is the monotonic clock the interval is measured with (tests pass their own).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        path_translation: str | None = "_",
        check_interval: float = 1.0,
        aliases: Mapping[str, str] | None = None,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        if path_translation is not None and (
            not isinstance(path_translation, str) or len(path_translation) != 1 or path_translation in "/\0."
        ):
            raise ValueError(
                f"FileBackend path_translation must be one character other than '/', '.' or NUL, or None "
                f"(keep '/'), got {path_translation!r}"
            )
        if isinstance(check_interval, bool) or not isinstance(check_interval, (int, float)) \
                or not 0 <= check_interval < float("inf"):
            raise ValueError(f"FileBackend check_interval must be a finite number >= 0, got {check_interval!r}")
        self.root = os.path.abspath(os.fspath(root))
        self.path_translation = path_translation
        self.check_interval = float(check_interval)
        self.aliases = dict(aliases or {})
        for secret_id, file_name in self.aliases.items():
            if not isinstance(secret_id, str) or not isinstance(file_name, str) or _unsafe(file_name):
                raise ValueError(
                    f"FileBackend aliases map secret ids to relative file names under root (no '..', not "
                    f"absolute); got {secret_id!r}: {file_name!r}"
                )
        self._timer = timer
        self._seen: dict[str, _Seen] = {}
        self._paths: dict[str, tuple[str, ...]] = {}
        self._lock = threading.Lock()
        _fork.track(self, FileBackend._after_fork_in_child)

    def _after_fork_in_child(self) -> None:
        """A fresh lock in a forked child (a parent thread may have held it); the values are kept."""
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"FileBackend({self.root!r}, check_interval={self.check_interval!r})"

    # -- the protocol -----------------------------------------------------------------------------

    def get_secret_value(
        self, secret_id: str, *, version_id: str | None = None, version_stage: str | None = None
    ) -> SecretValue:
        """The secret's file as a SecretValue, re-checked when ``check_interval`` has passed."""
        return self._get(secret_id, version_id, version_stage, forced=False)

    def refresh_secret_value(
        self, secret_id: str, *, version_id: str | None = None, version_stage: str | None = None
    ) -> SecretValue:
        """Read the file now, whatever the interval (see :class:`~secretcache.backends.ForcedReads`)."""
        return self._get(secret_id, version_id, version_stage, forced=True)

    def batch_get_secret_values(
        self, secret_ids: Sequence[str]
    ) -> tuple[list[SecretValue], dict[str, SecretCacheError]]:
        """Each id read on its own; every failure is kept by id (a file cannot fail a whole batch)."""
        values: list[SecretValue] = []
        errors: dict[str, SecretCacheError] = {}
        for secret_id in dict.fromkeys(secret_ids):
            try:
                values.append(self.get_secret_value(secret_id))
            except SecretCacheError as e:
                errors[secret_id] = e
        return values, errors

    # -- reading ----------------------------------------------------------------------------------

    def _get(self, secret_id: str, version_id: str | None, version_stage: str | None, *,
             forced: bool) -> SecretValue:
        if version_stage is not None and version_stage != CURRENT:
            raise SecretNotFoundError(
                f"secret {secret_id!r}: a mounted file holds only AWSCURRENT, not {version_stage!r}",
                secret_id=secret_id,
            )
        now = self._timer()
        seen = self._seen.get(secret_id)
        if seen is None or forced or now - seen.checked >= self.check_interval:
            seen = self._check(secret_id, seen, now, forced=forced)
        if version_id is not None and seen.value.version_id != version_id:
            raise SecretNotFoundError(
                f"secret {secret_id!r}: the mounted file does not hold version {version_id!r}", secret_id=secret_id
            )
        return seen.value

    def _check(self, secret_id: str, seen: _Seen | None, now: float, *, forced: bool) -> _Seen:
        """Stat the file read last; read again when it changed (or was never read, or the read is forced)."""
        if seen is not None and not forced:
            try:
                unchanged = _signature(os.stat(seen.path)) == seen.signature
            except (OSError, ValueError):
                unchanged = False  # gone or unreadable: the read below says which, with retries
            if unchanged:
                seen.checked = now  # a plain store: no lock on the path every interval takes
                return seen
        fresh = self._read(secret_id, now)
        with self._lock:
            current = self._seen.get(secret_id)
            # Checks may finish out of order: keep the one that started last.
            if current is None or current.checked <= now:
                self._seen[secret_id] = fresh
        if seen is None or seen.value.version_id != fresh.value.version_id:
            log.debug("read secret %r from %s", secret_id, fresh.path)
        return fresh

    def _read(self, secret_id: str, now: float) -> _Seen:
        """Read the secret's file, retrying while a swap or a write is visibly in progress."""
        paths = self._paths_of(secret_id)
        link = os.path.join(self.root, _DATA_LINK)
        settled = 0
        problem: _Missing | _Torn | None = None
        target: object = _UNSEEN
        for _ in range(_SWAPS_FOLLOWED + len(_SETTLE)):
            for path in paths:
                outcome = _read_file(path, secret_id)
                if isinstance(outcome, _Read):
                    return self._seen_of(secret_id, path, outcome, now)
                problem = outcome
                if isinstance(outcome, _Torn):
                    break  # the file exists: the alternative names are not what was meant
            # Only a failed attempt looks at the ..data link: when it moved since the last failure, a
            # writer is swapping, so try again at once; otherwise settle (retry now, then after a pause).
            current = _link_target(link)
            moved, target = target is not _UNSEEN and current != target, current
            if not moved:
                if settled == len(_SETTLE):
                    break
                time.sleep(_SETTLE[settled])
                settled += 1
        if isinstance(problem, _Torn):
            raise SecretUnavailableError(
                f"secret {secret_id!r}: the file {paths[0]!r} kept changing while it was read ({problem.why})",
                secret_id=secret_id,
            )
        tried = ", ".join(repr(path) for path in paths)
        raise SecretNotFoundError(f"secret {secret_id!r}: no file at {tried}", secret_id=secret_id)

    @staticmethod
    def _seen_of(secret_id: str, path: str, read: _Read, now: float) -> _Seen:
        # Everything that could fail is computed before the content is decoded.
        try:
            created: datetime | None = datetime.fromtimestamp(read.mtime_ns / 1e9, tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            created = None
        arn = secret_id if secret_id.startswith("arn:") else None
        version_id = hashlib.blake2b(read.raw, digest_size=16, key=_DIGEST_KEY).hexdigest()
        try:
            text: str | None = read.raw.decode("utf-8")
        except UnicodeDecodeError:  # binary; the error (which holds the bytes) dies with this block
            text = None
        value = SecretValue(_name_of(secret_id), arn, version_id, (CURRENT,), text,
                            None if text is not None else read.raw, created)
        del text
        return _Seen(value, path, read.signature, now)

    # -- naming -----------------------------------------------------------------------------------

    def _paths_of(self, secret_id: str) -> tuple[str, ...]:
        """The files that may hold ``secret_id``, in the order tried (computed once per id)."""
        paths = self._paths.get(secret_id)
        if paths is None:
            validate_secret_id(secret_id)
            paths = tuple(os.path.join(self.root, name) for name in self._file_names(secret_id))
            if not paths:
                raise SecretNotFoundError(
                    f"secret {secret_id!r}: its name cannot be a file under {self.root!r}", secret_id=secret_id
                )
            if len(self._paths) < 4096:
                self._paths[secret_id] = paths
        return paths

    def _file_names(self, secret_id: str) -> list[str]:
        names = [secret_id]
        m = _ARN.fullmatch(secret_id)
        if m is not None:
            rest = m["rest"]
            full = _SUFFIX.fullmatch(rest)
            # A full ARN's name drops the suffix; a partial ARN's is as written (AWS advises against
            # names ending in "-" and six characters because the two cannot be told apart: try both).
            names = ([full["name"]] if full else []) + [rest]
        for name in names:
            alias = self.aliases.get(name) if name != secret_id else None
            if alias is None and name is names[0]:
                alias = self.aliases.get(secret_id)
            if alias is not None:
                return [alias]
        if m is not None:
            names.append(secret_id)  # ASCP names an ARN objectName's file after the ARN itself
        translated = [self._translate(name) for name in names]
        return [name for name in dict.fromkeys(translated) if not _unsafe(name)]

    def _translate(self, name: str) -> str:
        if self.path_translation is None:
            return name.lstrip("/")  # as ASCP does with pathTranslation: False
        return name.replace("/", self.path_translation)


def _name_of(secret_id: str) -> str:
    """The secret's name as GetSecretValue would return it: a full ARN's without its suffix."""
    m = _ARN.fullmatch(secret_id)
    if m is None:
        return secret_id
    full = _SUFFIX.fullmatch(m["rest"])
    return full["name"] if full else m["rest"]


def _unsafe(file_name: str) -> bool:
    """A name that is not a plain relative path under the root (absolute, empty, '.' or '..' parts)."""
    if not file_name or file_name.startswith("/") or "\0" in file_name:
        return True
    return any(part in ("", ".", "..") for part in file_name.split("/"))


def _link_target(link: str) -> str | None:
    try:
        return os.readlink(link)
    except (OSError, ValueError):
        return None


class _Read(NamedTuple):
    raw: bytes
    signature: tuple[int, ...]
    mtime_ns: int


def _read_file(path: str, secret_id: str) -> _Read | _Missing | _Torn:
    """One attempt: open by path (following every symlink now), read it whole, check nothing moved.

    Returns instead of raising for the outcomes worth retrying; raises the typed error for the others
    (permission, a directory, too large), never while holding the content.
    """
    try:
        # O_NONBLOCK: a FIFO at the path must not block the reader until some writer opens it (it is then
        # refused as not a regular file); on a regular file the flag changes nothing.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0))
    except (FileNotFoundError, NotADirectoryError) as e:
        return _Missing(type(e).__name__)
    except PermissionError as e:
        raise SecretAccessDeniedError(f"secret {secret_id!r}: cannot read {path!r} (permission denied)",
                                      secret_id=secret_id) from e
    except OSError as e:
        raise SecretUnavailableError(f"secret {secret_id!r}: cannot open {path!r} ({type(e).__name__})",
                                     secret_id=secret_id) from e
    chunks: list[bytes] = []
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            raise SecretNotFoundError(f"secret {secret_id!r}: {path!r} is not a regular file", secret_id=secret_id)
        if before.st_size > MAX_SECRET_BYTES:
            raise SecretFormatError(
                f"secret {secret_id!r}: {path!r} is {before.st_size} bytes, over the {MAX_SECRET_BYTES}-byte limit",
                secret_id=secret_id,
            )
        total = 0
        while total <= before.st_size:  # one read past the size, to see a file that grew meanwhile
            chunk = os.read(fd, before.st_size + 1 - total or 1)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        after = os.fstat(fd)
    except OSError as e:
        chunks.clear()  # no part of the content stays in this frame's locals
        raise SecretUnavailableError(f"secret {secret_id!r}: cannot read {path!r} ({type(e).__name__})",
                                     secret_id=secret_id) from e
    finally:
        os.close(fd)
    signature = _signature(before)
    if total != before.st_size or _signature(after) != signature:
        del chunks
        return _Torn("its size or timestamps changed during the read")
    if total == 0:
        return _Torn("it is empty")
    return _Read(b"".join(chunks), signature, before.st_mtime_ns)
