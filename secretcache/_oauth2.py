"""OAuth 2 client credentials whose client secret lives in Secrets Manager and may rotate.

Size: one auth scheme for httpx (sync, async) and requests plus its token-endpoint exchange (~400 lines),
read top to bottom; split apart, the token's lifetime rules would sit away from the flows that use them.

``OAuth2ClientCredentials("prod/api-client", "https://auth.example.com/oauth2/token")`` exchanges the
secret's ``client_id`` / ``client_secret`` for an access token at the token endpoint (RFC 6749 §4.4)
and sends ``Authorization: Bearer <token>``. Why each rule:

- **One token for the process.** The token is kept until ``expires_in`` minus ``early_expiry`` seconds
  (httpx-auth's name and default, 30 s; never less than half the lifetime), and every thread, task and
  client using this object shares it: when it is missing or stale, exactly one token request is made
  while the others wait for its answer (a lock; async callers wait in a worker thread, never on the loop).
- **A 401 from the API gets one new token** (the API may have revoked it early): at most one new token
  and two sends of the request, then the 401 goes to the caller as an HTTP client would hand it over.
  A request whose body cannot be sent twice is sent once.
- **A refused client secret is a rotation.** A token endpoint answering ``invalid_client`` (or a bare 401)
  is a refused login, so the rotation policy of :mod:`secretcache.credentials` runs on the secret: one
  shared forced refresh of AWSCURRENT, then AWSPENDING once (single-user rotation between setSecret and
  finishSecret), then :class:`~secretcache.errors.OAuth2Error` with a note naming the secret.
- **Nothing sensitive escapes.** No client secret or token in a repr, a log record, an exception or a
  local variable of a frame an exception passes through (the secret and tokens are held by objects
  whose repr is redacted). The endpoint's error body is not copied into errors, only its ``error`` code.
- **Same origin only.** On a redirect to another origin (scheme, host or port) the ``Authorization``
  header is removed before the next request is written, as for ``SecretAuth`` (the guards of
  :mod:`secretcache._redirects`); a 401 coming from another origin is not taken for a refused token.
- **One flow.** The token exchange is a login on the rotation policy's flow
  (:class:`secretcache.credentials.Login`), carried out by the credentials package's driver (``drive``);
  async callers run it in a worker thread, so the one lock also serves them.

The token endpoint is called with the HTTP library of the caller (httpx for httpx clients, requests for
requests), with ``timeout`` seconds and default TLS verification. The client authenticates with HTTP
Basic (``auth_method="client_secret_basic"``, RFC 6749's default, Authlib's name) or in the form body
(``"client_secret_post"``).
"""

from __future__ import annotations

import base64
import logging
import math
import threading
from collections.abc import AsyncGenerator, Callable, Generator, Iterable, Mapping
from time import monotonic
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, urlsplit

from ._auth_base import AuthBase, httpx_replayable, requests_replayable
from ._redirects import guard_httpx, strip_on_cross_origin_redirect, url_origin
from .credentials import AuthPolicy, Login, drive
from .errors import OAuth2Error, SecretFormatError
from .model import validate_secret_id

if TYPE_CHECKING:
    import httpx
    import requests
    import requests.auth

    from ._face import AnySecretCache
    from .model import SecretValue

__all__ = ["OAuth2ClientCredentials"]

log = logging.getLogger("secretcache.http")

AuthMethod = Literal["client_secret_basic", "client_secret_post"]
_Library = Literal["httpx", "requests"]



class _Client:
    """One version's client id and secret, redacted in reprs (frames holding it show nothing)."""

    __slots__ = ("id", "secret", "version_id")

    def __init__(self, client_id: str, client_secret: str, version_id: str | None) -> None:
        self.id = client_id
        self.secret = client_secret
        self.version_id = version_id

    def __repr__(self) -> str:
        return f"<OAuth 2 client credentials, version {self.version_id!r}>"


class _Token:
    """An access token and when to stop using it (monotonic seconds; ``inf``: until the API refuses it)."""

    __slots__ = ("fresh_until", "value")

    def __init__(self, value: str, fresh_until: float) -> None:
        self.value = value
        self.fresh_until = fresh_until

    def __repr__(self) -> str:
        return "<OAuth 2 access token>"

    def header(self) -> str:
        return f"Bearer {self.value}"


def _is_refused_client(error: BaseException) -> bool:
    return isinstance(error, OAuth2Error) and error.code == "invalid_client"


class OAuth2ClientCredentials(AuthBase):
    """OAuth 2 client credentials from a secret, for ``httpx.Client(auth=...)``,
    ``httpx.AsyncClient(auth=...)`` and ``requests.get(url, auth=...)``.

    ``secret_id``: a JSON secret with string keys ``client_id`` and ``client_secret``. ``token_url``: the
    token endpoint (``http`` or ``https``). ``scope``: a string or an iterable of scopes (joined by
    spaces), sent when given. ``token_params``: more form fields for the token request (``audience``,
    ``resource``). ``cache=None``: the module-level default cache; an :class:`~secretcache.AsyncSecretCache`
    works too. ``policy`` tunes the rotation policy. ``clock``: a monotonic clock for token lifetimes
    (as cachetools' ``timer=``).
    """

    def __init__(
        self,
        secret_id: str,
        token_url: str,
        *,
        scope: str | Iterable[str] | None = None,
        cache: AnySecretCache | None = None,
        policy: AuthPolicy | None = None,
        auth_method: AuthMethod = "client_secret_basic",
        early_expiry: float = 30.0,
        timeout: float = 60.0,
        token_params: Mapping[str, str] | None = None,
        clock: Callable[[], float] = monotonic,
    ) -> None:
        self.secret_id = validate_secret_id(secret_id)
        if not isinstance(token_url, str) or urlsplit(token_url).scheme.lower() not in ("http", "https") \
                or not urlsplit(token_url).hostname:
            raise ValueError(f"token_url must be an absolute http(s) URL, got {token_url!r}")
        if auth_method not in ("client_secret_basic", "client_secret_post"):
            raise ValueError(
                f"auth_method must be 'client_secret_basic' or 'client_secret_post', got {auth_method!r}"
            )
        for name, number in (("early_expiry", early_expiry), ("timeout", timeout)):
            if isinstance(number, bool) or not isinstance(number, (int, float)) or not number >= 0:
                raise ValueError(f"{name} must be a number >= 0, got {number!r}")
        if scope is not None and not isinstance(scope, str):
            scope = " ".join(scope)
        form = {"grant_type": "client_credentials"}
        if scope:
            form["scope"] = scope
        for key, field in (token_params or {}).items():
            if not isinstance(key, str) or not isinstance(field, str):
                raise ValueError("token_params must map str to str")
            form[key] = field
        self.token_url = token_url
        self.scope = scope or None
        self.auth_method: AuthMethod = auth_method
        self.early_expiry = float(early_expiry)
        self.timeout = float(timeout)
        self._form = form
        # The token exchange is a login: the policy's one flow, driven by the credentials package's driver.
        self._login = Login(self.secret_id, _client_params, cache=cache, policy=policy,
                            detect=_is_refused_client, logger="secretcache.http")
        self._clock = clock
        self._lock = threading.Lock()
        self._token: _Token | None = None
        self.token_requests = 0
        """Token requests sent so far (answered or not), for tests and dashboards."""

    def __repr__(self) -> str:
        return (f"OAuth2ClientCredentials({self.secret_id!r}, {self.token_url!r}, scope={self.scope!r}, "
                f"auth_method={self.auth_method!r})")

    # -- the token -------------------------------------------------------------------------------------

    def _fresh(self) -> _Token | None:
        """The shared token if it is still fresh (no lock: one attribute read and a clock read)."""
        token = self._token
        return token if token is not None and self._clock() < token.fresh_until else None

    def _new_token(self, library: _Library, refused: _Token | None) -> _Token:
        """The shared token, fetched if missing, stale or ``refused``; one fetch at a time for all threads.

        A caller whose token was refused takes a token another thread fetched meanwhile instead of asking
        again: that one is its "new token"."""
        with self._lock:
            token = self._token
            if token is not None and token is not refused and self._clock() < token.fresh_until:
                return token
            token = drive(self._login.flow(), lambda credentials: self._exchange(library, credentials.params))
            self._token = token
            return token

    def _exchange(self, library: _Library, params: Mapping[str, Any]) -> _Token:
        """One token request with one version's client credentials: a token, or :class:`OAuth2Error`."""
        client: _Client = params["client"]
        started = self._clock()
        self.token_requests += 1
        status, doc = _post(library, self.token_url, self._body(client), self._headers(client), self.timeout)
        del client
        if status == 200 and doc is not None:
            token = _token_of(doc, started, self.early_expiry)
            doc.clear()
            if token is not None:
                log.debug("OAuth 2 token for secret %r from %s", self.secret_id, self.token_url)
                return token
            raise OAuth2Error(
                f"token endpoint {self.token_url} answered 200 without a usable Bearer access_token "
                f"(secret {self.secret_id!r})", secret_id=self.secret_id, code="invalid_token_response",
            )
        code = _error_code(doc, status)
        if doc is not None:
            doc.clear()
        log.debug("OAuth 2 token endpoint %s refused secret %r: HTTP %s %s", self.token_url, self.secret_id,
                  status, code)
        raise OAuth2Error(
            f"token endpoint {self.token_url} refused a token for secret {self.secret_id!r}: HTTP {status}, "
            f"error {code!r}", secret_id=self.secret_id, code=code,
        )

    def _body(self, client: _Client) -> dict[str, str]:
        if self.auth_method == "client_secret_post":
            return {**self._form, "client_id": client.id, "client_secret": client.secret}
        return dict(self._form)

    def _headers(self, client: _Client) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.auth_method == "client_secret_basic":
            # RFC 6749 §2.3.1: each part is form-urlencoded before the Basic encoding.
            pair = f"{quote(client.id, safe='')}:{quote(client.secret, safe='')}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        return headers

    # -- httpx -----------------------------------------------------------------------------------------

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self._fresh() or self._new_token("httpx", None)
        guard_httpx(request, "Authorization", is_async=False)
        request.headers["Authorization"] = token.header()
        response = yield request
        if not self._refused(request, response.status_code, str(response.request.url)) \
                or not httpx_replayable(request):
            return
        token = self._new_token("httpx", token)
        request.headers["Authorization"] = token.header()
        yield request

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        import asyncio

        token = self._fresh()
        if token is None:
            token = await asyncio.to_thread(self._new_token, "httpx", None)
        guard_httpx(request, "Authorization", is_async=True)
        request.headers["Authorization"] = token.header()
        response = yield request
        if not self._refused(request, response.status_code, str(response.request.url)) \
                or not httpx_replayable(request):
            return
        token = await asyncio.to_thread(self._new_token, "httpx", token)
        request.headers["Authorization"] = token.header()
        yield request

    def _refused(self, request: Any, status: int, answered_url: str) -> bool:
        """A 401 from the origin the token was sent to (not from wherever a redirect led)."""
        return status == 401 and url_origin(answered_url) == url_origin(str(request.url))

    # -- requests --------------------------------------------------------------------------------------

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        token = self._fresh() or self._new_token("requests", None)
        r.headers["Authorization"] = token.header()
        r.register_hook("response", _RequestsRetry(self._new_token, token, str(r.url), requests_replayable(r)))
        return r


class _RequestsRetry:
    """The response hook of one requests call: a 401 from the origin gets one new token and one more send
    on the same connection (as requests' own digest auth resends), the history kept."""

    def __init__(self, renew: Callable[[_Library, _Token | None], _Token], token: _Token, url: str,
                 replayable: bool) -> None:
        self._renew = renew
        self._token = token
        self._origin = url_origin(url)
        self._replayable = replayable
        self._done = False

    def __call__(self, response: requests.Response, **kwargs: Any) -> requests.Response:
        strip_on_cross_origin_redirect(response, "Authorization")  # before requests builds the next hop
        if self._done or response.status_code != 401 or url_origin(str(response.url)) != self._origin \
                or not self._replayable:
            return response
        self._done = True  # one new token per call, whatever the resend answers
        token = self._renew("requests", self._token)
        return _send_again(response, token, kwargs)


def _send_again(response: requests.Response, token: _Token, kwargs: dict[str, Any]) -> requests.Response:
    from requests.cookies import extract_cookies_to_jar

    response.content  # noqa: B018  (read it all, so the connection can be reused)
    response.close()
    prep = response.request.copy()
    jar = getattr(prep, "_cookies", None)  # requests' own digest auth carries cookies over the same way
    if jar is not None:
        extract_cookies_to_jar(jar, response.request, response.raw)
        prep.prepare_cookies(jar)
    prep.headers["Authorization"] = token.header()
    again: requests.Response = response.connection.send(prep, **kwargs)
    again.history.append(response)
    again.request = prep
    return again


# -- the token endpoint ------------------------------------------------------------------------------


def _client_params(secret: SecretValue) -> Mapping[str, Any]:
    """The policy's parameters of one version (memoised per version by the policy): its client credentials."""
    return {"client": _client_of(secret, secret.name or "?")}


def _client_of(secret: SecretValue, secret_id: str) -> _Client:
    """The client credentials of one version. Parsed and checked here, so no frame outside holds the JSON."""
    try:
        doc = secret.json()
    except SecretFormatError:
        doc = None
    client_id = doc.get("client_id") if isinstance(doc, dict) else None
    client_secret = doc.get("client_secret") if isinstance(doc, dict) else None
    del doc
    if isinstance(client_id, str) and client_id and isinstance(client_secret, str) and client_secret:
        return _Client(client_id, client_secret, secret.version_id)
    del client_id, client_secret
    raise SecretFormatError(
        f"secret {secret_id!r}: OAuth 2 client credentials need a JSON object with non-empty string keys "
        "'client_id' and 'client_secret'", secret_id=secret_id,
    )


def _post(library: _Library, url: str, form: dict[str, str], headers: dict[str, str],
          timeout: float) -> tuple[int, dict[str, Any] | None]:
    """POST the token request; the status and the JSON object of the answer (None if it is not one).

    The form and headers (holding the client secret) are emptied before returning or raising, so no frame
    of a traceback shows them."""
    try:
        if library == "httpx":
            import httpx

            with httpx.Client(timeout=timeout, follow_redirects=False) as client:
                answer = client.post(url, data=form, headers=headers)
                status, raw = answer.status_code, answer.content
        else:
            import requests

            reply = requests.post(url, data=form, headers=headers, timeout=timeout, allow_redirects=False)
            status, raw = reply.status_code, reply.content
    finally:
        form.clear()
        headers.clear()
    return status, _json_object(raw)


def _json_object(raw: bytes) -> dict[str, Any] | None:
    import json

    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def _token_of(doc: dict[str, Any], started: float, early_expiry: float) -> _Token | None:
    """The token of a 200 answer, fresh until ``expires_in`` minus the margin (at most half the lifetime),
    counted from when the request was sent; without ``expires_in``, until the API refuses it."""
    value = doc.get("access_token")
    token_type = doc.get("token_type", "Bearer")
    if not isinstance(value, str) or not value or not isinstance(token_type, str) \
            or token_type.lower() != "bearer":
        return None
    expires_in = doc.get("expires_in")
    if isinstance(expires_in, str):
        try:
            expires_in = float(expires_in)
        except ValueError:
            expires_in = None
    if isinstance(expires_in, bool) or not isinstance(expires_in, (int, float)) or not math.isfinite(expires_in):
        return _Token(value, math.inf)
    lifetime = max(float(expires_in), 0.0)
    return _Token(value, started + lifetime - min(early_expiry, lifetime / 2))


def _error_code(doc: dict[str, Any] | None, status: int) -> str:
    error = doc.get("error") if doc is not None else None
    if isinstance(error, str) and error.isascii() and error.replace("_", "").isalnum() and len(error) <= 64:
        return error
    return "invalid_client" if status == 401 else f"http_{status}"

