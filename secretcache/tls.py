"""TLS contexts whose certificate follows the secret it was loaded from: rotate it, and new handshakes use
the new one, with no restart.

``server_context("prod/tls")`` and ``client_context("prod/mtls-client")`` return an :class:`ssl.SSLContext`
built from a JSON secret holding PEM text under ``certificate`` and ``private_key`` (and optionally
``chain``, intermediate certificates sent after the certificate, and ``ca``, the certificates to trust for
the peer). Pass it wherever a context goes: ``asyncio.start_server(ssl=...)``, aiohttp's
``ssl_context=``, ``httpx.Client(verify=...)``, ``ssl_context.wrap_socket``.

How it follows rotation without slowing handshakes:

- **Checked at most once per interval, never on the handshake path.** A handshake (server: the SNI
  callback, which OpenSSL calls on every ClientHello; client: ``wrap_socket`` / ``wrap_bio``) only reads
  a clock; once ``check_interval`` (default: the cache's ttl) has passed it starts one background thread
  that reads the secret through the cache and, for a new version, builds a complete new context. The
  handshake itself goes on at once with the newest context already built.
- **Swapped whole, never edited in place.** Reloading a certificate into a context that other threads
  are using has a window where the new certificate sits with the old key; instead each version gets its
  own context, and a server handshake switches to the newest in its SNI callback (``SSLSocket.context``)
  while a client wraps with it directly. A connection opened before keeps its context and keeps working.
- **A bad rotation keeps the old certificate.** A version whose PEM does not load (malformed, key not
  matching the certificate) is reported once as a WARNING on the ``secretcache.tls`` logger, naming the
  secret, the version and the key that failed, never key material; handshakes go on with the old one.
- **Settings follow.** What a framework sets on the returned context after creation (ALPN, ciphers,
  options, verify mode, minimum/maximum version, extra verify locations) is applied to every context
  built later, as to the current one.

OpenSSL loads certificates from files, so each build writes the PEM to an anonymous in-memory file
(``memfd_create`` on Linux; elsewhere a 0600 file in a private temporary directory, removed at once).
"""

from __future__ import annotations

import logging
import os
import ssl
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from time import monotonic
from typing import TYPE_CHECKING, Any

from .cache import blocking_cache
from .errors import SecretFormatError
from .model import validate_secret_id

if TYPE_CHECKING:
    from ._face import AnySecretCache
    from .cache import SecretCache
    from .model import SecretValue

__all__ = ["client_context", "server_context"]

log = logging.getLogger("secretcache.tls")


def server_context(
    secret_id: str,
    *,
    cache: AnySecretCache | None = None,
    require_client_cert: bool = False,
    check_interval: float | None = None,
    clock: Callable[[], float] = monotonic,
) -> ssl.SSLContext:
    """A server-side :class:`ssl.SSLContext` presenting the secret's ``certificate`` (and ``chain``).

    With a ``ca`` key, client certificates are verified against it: required with
    ``require_client_cert=True`` (mTLS), else checked when a client offers one. ``cache=None``: the
    module-level default cache (an :class:`~secretcache.AsyncSecretCache` works too: checks run in a
    worker thread). ``check_interval``: seconds between checks for a new version (default:
    the cache's ttl). ``clock``: a monotonic clock (as cachetools' ``timer=``).

    Raises :class:`~secretcache.errors.SecretFormatError` if the current version does not load; the
    context's ``sni_callback`` belongs to the rotation (setting another one stops it).
    """
    return _create(secret_id, True, cache, require_client_cert, check_interval, clock)


def client_context(
    secret_id: str,
    *,
    cache: AnySecretCache | None = None,
    check_interval: float | None = None,
    clock: Callable[[], float] = monotonic,
) -> ssl.SSLContext:
    """A client-side :class:`ssl.SSLContext` presenting the secret's ``certificate`` as the client
    certificate and verifying the server (hostname included) with the secret's ``ca`` (the system's
    trust store when the secret has no ``ca``). Arguments as for :func:`server_context`."""
    return _create(secret_id, False, cache, False, check_interval, clock)


def _create(secret_id: str, server_side: bool, cache: AnySecretCache | None, require_client_cert: bool,
            check_interval: float | None, clock: Callable[[], float]) -> ssl.SSLContext:
    secret_id = validate_secret_id(secret_id)
    if check_interval is not None and (isinstance(check_interval, bool)
                                       or not isinstance(check_interval, (int, float)) or not check_interval >= 0):
        raise ValueError(f"check_interval must be a number >= 0, got {check_interval!r}")
    cache = blocking_cache(cache)
    source = _Source(secret_id, cache, server_side, require_client_cert,
                     cache.config.ttl if check_interval is None else float(check_interval), clock)
    value = cache.get_secret_value(secret_id)
    material = _material_of(value, secret_id)
    context = _RotatingContext(ssl.PROTOCOL_TLS_SERVER if server_side else ssl.PROTOCOL_TLS_CLIENT)
    failed = _configure(context, material, source)
    del material
    if failed is not None:
        raise SecretFormatError(f"secret {secret_id!r} version {value.version_id!r}: {failed}",
                                secret_id=secret_id)
    if server_side:
        context.sni_callback = source.on_hello
    source.current = context
    source.version = value.version_id
    source.next_check = clock() + source.interval
    context.source = source  # from here on, settings made on the context are recorded for later versions
    return context


class _Material:
    """The PEM texts of one version (redacted in reprs: frames holding it show nothing)."""

    __slots__ = ("ca", "certificate", "chain", "private_key")

    def __init__(self, certificate: str, private_key: str, chain: str | None, ca: str | None) -> None:
        self.certificate = certificate
        self.private_key = private_key
        self.chain = chain
        self.ca = ca

    def __repr__(self) -> str:
        return "<TLS certificate and key>"


def _material_of(value: SecretValue, secret_id: str) -> _Material:
    try:
        doc = value.json()
    except SecretFormatError:
        doc = None
    fields = {key: doc.get(key) if isinstance(doc, dict) else None
              for key in ("certificate", "private_key", "chain", "ca")}
    del doc
    wrong = [key for key in ("certificate", "private_key") if not isinstance(fields[key], str) or not fields[key]]
    wrong += [key for key in ("chain", "ca") if fields[key] is not None and not isinstance(fields[key], str)]
    if wrong:
        fields.clear()
        raise SecretFormatError(
            f"secret {secret_id!r}: a TLS secret is a JSON object with PEM strings under 'certificate' and "
            f"'private_key' (optional 'chain', 'ca'); bad or missing: {', '.join(wrong)}", secret_id=secret_id,
        )
    material = _Material(str(fields["certificate"]), str(fields["private_key"]), fields["chain"] or None,
                         fields["ca"] or None)
    fields.clear()
    return material


class _Source:
    """The secret behind one rotating context: when to check it, the newest context built, the settings
    to carry over."""

    def __init__(self, secret_id: str, cache: SecretCache, server_side: bool, require_client_cert: bool,
                 interval: float, clock: Callable[[], float]) -> None:
        self.secret_id = secret_id
        self.cache = cache
        self.server_side = server_side
        self.require_client_cert = require_client_cert
        self.interval = interval
        self.clock = clock
        self.lock = threading.Lock()
        self.checking = False
        self.next_check = 0.0
        self.current: ssl.SSLContext | None = None
        self.version: str | None = None
        self.refused_version: str | None = None
        self.properties: dict[str, Any] = {}  # attribute settings made on the outer context, in order
        self.calls: dict[str, tuple[Any, ...]] = {}  # method settings (last call wins)
        self.verify_locations: list[tuple[Any, ...]] = []

    # -- on the handshake path: a clock read, maybe a thread start -----------------------------------------

    def maybe_check(self) -> None:
        if self.clock() < self.next_check or self.checking:
            return
        with self.lock:
            if self.checking or self.clock() < self.next_check:
                return
            self.checking = True
            self.next_check = self.clock() + self.interval
        threading.Thread(target=self._check, name=f"secretcache-tls-{self.secret_id}", daemon=True).start()

    def on_hello(self, sslobj: Any, server_name: str | None, context: ssl.SSLContext) -> None:
        """The server's SNI callback: every handshake moves to the newest context."""
        self.maybe_check()
        current = self.current
        if current is not None and sslobj.context is not current:
            sslobj.context = current

    # -- in the background ---------------------------------------------------------------------------------

    def _check(self) -> None:
        try:
            value = self.cache.get_secret_value(self.secret_id)
            if value.version_id == self.version or value.version_id == self.refused_version:
                return
            failed = self._build(value)
            if failed is not None:
                self.refused_version = value.version_id
                log.warning("secret %r version %r: new TLS certificate not loaded (%s); keeping version %r",
                            self.secret_id, value.version_id, failed, self.version)
        except Exception as e:  # a failed read: the next interval tries again, handshakes go on meanwhile
            log.warning("secret %r: checking for a new TLS certificate failed (%s); keeping version %r",
                        self.secret_id, type(e).__name__, self.version)
        finally:
            self.checking = False

    def _build(self, value: SecretValue) -> str | None:
        try:
            material = _material_of(value, self.secret_id)
        except SecretFormatError:
            return "the JSON object lacks PEM strings under 'certificate' and 'private_key'"
        protocol = ssl.PROTOCOL_TLS_SERVER if self.server_side else ssl.PROTOCOL_TLS_CLIENT
        context = ssl.SSLContext(protocol)
        for name, setting in self.properties.items():
            setattr(context, name, setting)
        for name, args in self.calls.items():
            getattr(context, name)(*args)
        for args in self.verify_locations:
            context.load_verify_locations(*args)
        failed = _configure(context, material, self)
        del material
        if failed is not None:
            return failed
        if self.server_side:
            context.sni_callback = self.on_hello
        self.current = context
        self.version = value.version_id
        log.info("secret %r: TLS certificate version %r in use for new handshakes", self.secret_id,
                 value.version_id)
        return None


def _configure(context: ssl.SSLContext, material: _Material, source: _Source) -> str | None:
    """Load one version into a fresh context: None, or which part failed (never the PEM itself)."""
    if material.ca is not None:
        try:
            context.load_verify_locations(cadata=material.ca)
        except (ssl.SSLError, ValueError) as e:
            return f"'ca' does not load: {_reason(e)}"
    elif not source.server_side:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if source.server_side and material.ca is not None and "verify_mode" not in source.properties:
        context.verify_mode = ssl.CERT_REQUIRED if source.require_client_cert else ssl.CERT_OPTIONAL
    elif source.server_side and source.require_client_cert:
        return "require_client_cert needs a 'ca' key with the certificates to verify clients against"
    chain = material.certificate.rstrip("\n") + "\n" + (material.chain or "")
    try:
        with _pem_file(chain) as certfile, _pem_file(material.private_key) as keyfile:
            context.load_cert_chain(certfile, keyfile)
    except (ssl.SSLError, ValueError, OSError) as e:
        return f"'certificate' / 'private_key' do not load: {_reason(e)}"
    finally:
        del chain
    return None


def _reason(error: BaseException) -> str:
    """OpenSSL's reason code (``KEY_VALUES_MISMATCH``, ``NO_START_LINE``): names, never data."""
    reason = getattr(error, "reason", None)
    return str(reason) if isinstance(reason, str) else type(error).__name__


@contextmanager
def _pem_file(text: str) -> Iterator[str]:
    """A path OpenSSL can read ``text`` from, for as long as the block runs; nothing left on disk."""
    data = text.encode()
    del text
    if hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd"):
        fd = os.memfd_create("secretcache-tls", os.MFD_CLOEXEC)
        try:
            os.write(fd, data)
            del data
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    directory = tempfile.mkdtemp(prefix="secretcache-tls-")
    path = os.path.join(directory, "pem")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        del data
        yield path
    finally:
        if os.path.exists(path):
            os.unlink(path)
        os.rmdir(directory)


_PROPERTIES = ("check_hostname", "verify_mode", "options", "minimum_version", "maximum_version",
               "verify_flags", "post_handshake_auth")


class _RotatingContext(ssl.SSLContext):
    """The context handed out: itself the first version's context, and the place settings are recorded
    so every later version's context gets them too."""

    source: _Source

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if name in _PROPERTIES and "source" in self.__dict__:
            source = self.source
            source.properties.pop(name, None)
            source.properties[name] = value
            current = source.current
            if current is not None and current is not self:
                setattr(current, name, value)

    def _record(self, name: str, *args: Any) -> None:
        source = self.__dict__.get("source")
        if source is None or source.calls.get(name) == args:
            return
        source.calls[name] = args
        current = source.current
        if current is not None and current is not self:
            getattr(current, name)(*args)

    def set_alpn_protocols(self, alpn_protocols: Any) -> None:
        protocols = tuple(alpn_protocols)
        super().set_alpn_protocols(protocols)
        self._record("set_alpn_protocols", protocols)

    def set_ciphers(self, cipherlist: str, /) -> None:
        super().set_ciphers(cipherlist)
        self._record("set_ciphers", cipherlist)

    def set_ecdh_curve(self, name: str, /) -> None:
        super().set_ecdh_curve(name)
        self._record("set_ecdh_curve", name)

    def load_verify_locations(self, cafile: Any = None, capath: Any = None, cadata: Any = None) -> None:
        super().load_verify_locations(cafile, capath, cadata)
        source = self.__dict__.get("source")
        if source is not None and source.current is not None:  # the caller's own, after creation
            source.verify_locations.append((cafile, capath, cadata))
            if source.current is not self:
                source.current.load_verify_locations(cafile, capath, cadata)

    # A client wraps with the newest context directly (no SNI callback on the client side).

    def wrap_socket(self, sock: Any, *args: Any, **kwargs: Any) -> Any:
        return self._newest().wrap_socket(sock, *args, **kwargs) if self._delegates() \
            else super().wrap_socket(sock, *args, **kwargs)

    def wrap_bio(self, incoming: Any, outgoing: Any, *args: Any, **kwargs: Any) -> Any:
        return self._newest().wrap_bio(incoming, outgoing, *args, **kwargs) if self._delegates() \
            else super().wrap_bio(incoming, outgoing, *args, **kwargs)

    def _delegates(self) -> bool:
        source = self.__dict__.get("source")
        if source is None or source.server_side:
            return False
        source.maybe_check()
        return source.current is not None and source.current is not self

    def _newest(self) -> ssl.SSLContext:
        current = self.source.current
        assert current is not None
        return current

    @property
    def secret_version(self) -> str | None:
        """The version of the secret whose certificate new handshakes use."""
        source = self.__dict__.get("source")
        return None if source is None else source.version
