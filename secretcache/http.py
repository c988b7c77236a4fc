"""SecretAuth: authentication from a cached secret for httpx (sync and async) and requests, rotation-proof.

``SecretAuth("prod/api-token")`` sends ``Authorization: Bearer <token>`` with the cached value. When the
API answers with a status in ``retry_statuses`` (default 401) the rotation policy of
:mod:`secretcache.credentials` runs, as for a refused database login: one shared, rate-limited forced
refresh of AWSCURRENT, the request sent again if that brought another version; else AWSPENDING once
(single-user rotation between setSecret and finishSecret), pinned while it works. At most three sends
of one request; a request whose body cannot be sent twice (a streaming upload) is sent once. When the
policy gives up, the caller gets the last response, as without auth retries: nothing is raised for it.

One flow, two drivers, in httpx's style: :meth:`SecretAuth._exchange` is a generator free of I/O that
yields the policy's cache reads and the header to send the request with, and receives the responses; the
policy (:class:`secretcache.credentials.Login`) sees a response in ``retry_statuses`` as a refused login.
``sync_auth_flow`` and ``async_auth_flow`` drive it for httpx (the async one runs a read that may wait
for Secrets Manager in a worker thread), and a response hook drives it for requests.

Requires httpx or requests (``pip install 'secretcache[httpx]'`` or ``'secretcache[requests]'``); the
class is an ``httpx.Auth`` and a ``requests.auth.AuthBase`` for whichever of them is installed.
No secret value appears in a repr, a log record or an exception of this module.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncGenerator, Generator, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, TypeAlias

from ._auth_base import AuthBase, httpx_replayable, requests_replayable
from ._oauth2 import OAuth2ClientCredentials
from ._redirects import guard_httpx, strip_on_cross_origin_redirect
from .cache import blocking_cache
from .credentials import AuthPolicy, Connect, Credentials, Login, Read
from .errors import SecretFormatError
from .model import SecretRef, SecretValue

if TYPE_CHECKING:
    import httpx
    import requests
    import requests.auth

    from ._face import AnySecretCache
    from .credentials import Flow

__all__ = ["OAuth2ClientCredentials", "SecretAuth"]



class _Send(NamedTuple):
    """Step of an exchange: send the request with this header value; reply with the response."""

    header: str


Exchange: TypeAlias = Generator["Read | _Send", Any, None]


class SecretAuth(AuthBase):
    """Authentication from a secret, for ``httpx.Client(auth=...)``, ``httpx.AsyncClient(auth=...)`` and
    ``requests.get(url, auth=...)``.

    ``reference``: any reference form (``prod/api``, ``prod/api#token``, an ECS ``valueFrom`` ARN, a
    ``{{resolve:...}}`` reference). Sends ``<header>: <scheme> <value>`` (``scheme=None``: the bare
    value). ``scheme="Basic"`` with a JSON secret (no JSON key in the reference) sends HTTP basic auth
    from its ``username`` and ``password``. ``retry_statuses``: the statuses meaning "these credentials
    are refused" (e.g. ``(401, 403)`` for an API that answers 403). A reference naming a version or a
    stage is sent as it is, with no retry. ``cache=None``: the module-level default cache, looked up at
    each request; a :class:`~secretcache.AsyncSecretCache` works too.
    """

    def __init__(
        self,
        reference: str,
        *,
        scheme: str | None = "Bearer",
        header: str = "Authorization",
        cache: AnySecretCache | None = None,
        policy: AuthPolicy | None = None,
        retry_statuses: tuple[int, ...] = (401,),
    ) -> None:
        ref = SecretRef.parse(reference)
        if scheme is not None and (not isinstance(scheme, str) or not scheme or scheme != scheme.strip()):
            raise ValueError(f"scheme must be a non-empty str without surrounding spaces, or None; got {scheme!r}")
        if not isinstance(header, str) or not header:
            raise ValueError(f"header must be a non-empty str, got {header!r}")
        try:
            statuses = tuple(retry_statuses) if not isinstance(retry_statuses, (str, bytes)) else None
        except TypeError:
            statuses = None
        if statuses is None:
            raise TypeError(f"retry_statuses must be a tuple of HTTP status codes, e.g. (401,); got {retry_statuses!r}")
        if not all(isinstance(s, int) and not isinstance(s, bool) and 100 <= s <= 599 for s in statuses):
            raise ValueError(f"retry_statuses must be HTTP status codes, got {retry_statuses!r}")
        self.reference = ref
        self.scheme = scheme
        self.header = header
        self.retry_statuses = frozenset(statuses)
        self._basic = scheme is not None and scheme.lower() == "basic" and ref.json_key is None
        self._cache = None if cache is None else blocking_cache(cache)  # None: the default, at each request
        self._pinned_version = ref.version_id is not None or ref.version_stage is not None
        self._login = Login(ref.secret_id, self._params_of, cache=self._cache, policy=policy, refused=self._refused,
                            logger="secretcache.http")

    def __repr__(self) -> str:
        return f"SecretAuth({str(self.reference)!r}, scheme={self.scheme!r}, header={self.header!r})"

    # -- the header --------------------------------------------------------------------------------------

    def _params_of(self, value: SecretValue) -> Mapping[str, Any]:
        """The header value for one version of the secret (held by the policy's Credentials, never shown)."""
        return {"header": self._header_value(value)}

    def _header_value(self, value: SecretValue) -> str:
        secret_id = self.reference.secret_id
        if self._basic:
            pair = _username_password(value)
            if pair is None:
                raise SecretFormatError(
                    f"secret {secret_id!r}: scheme='Basic' needs a JSON object with string keys 'username' and "
                    "'password'", secret_id=secret_id,
                )
            token = base64.b64encode(f"{pair[0]}:{pair[1]}".encode()).decode("ascii")
            return f"Basic {token}"
        text = value.text(self.reference.json_key)
        return text if self.scheme is None else f"{self.scheme} {text}"

    def _refused(self, response: Any) -> bool:
        """Whether a response (httpx's or requests') says "these credentials are refused"."""
        return response.status_code in self.retry_statuses

    # -- the one flow --------------------------------------------------------------------------------------

    def _exchange(self, *, replayable: bool, on_event_loop: bool = False) -> Exchange:
        """One authenticated request, free of I/O: yields the policy's cache reads (:class:`Read`) and the
        header to send the request with (:class:`_Send`), receives their results and the responses. Ends
        after the response the caller gets: the first accepted one, the last refused one when the policy
        gives up, or a refused one when the body cannot be sent again (a streaming upload)."""
        flow = self._fixed_flow() if self._pinned_version else self._login.flow(on_event_loop=on_event_loop)
        sent = False
        try:
            step = next(flow)
            while True:
                if isinstance(step, Read):
                    reply = yield step
                else:
                    if sent and not replayable:
                        return
                    reply = yield _Send(step.credentials.params["header"])
                    sent = True
                step = flow.send(reply)
        except StopIteration:
            return
        finally:
            flow.close()

    def _fixed_flow(self) -> Flow:
        """A reference naming a version or a stage: that version is meant, sent once, no policy."""
        credentials = yield Read(self._fixed_credentials, may_block=True)
        return (yield Connect(credentials))

    def _fixed_credentials(self) -> Credentials:
        ref = self.reference
        value = blocking_cache(self._cache).get_secret_value(
            ref.secret_id, version_id=ref.version_id, version_stage=ref.version_stage)
        return Credentials(value, "fixed", "reference", self._params_of(value))

    # -- the two drivers for httpx -------------------------------------------------------------------------

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        steps = self._exchange(replayable=httpx_replayable(request))
        guard_httpx(request, self.header, is_async=False)
        reply: Any = None
        try:
            while True:
                step = steps.send(reply)
                if isinstance(step, Read):
                    reply = step.fn()
                else:
                    request.headers[self.header] = step.header
                    reply = yield request
        except StopIteration:
            return

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        import asyncio

        steps = self._exchange(replayable=httpx_replayable(request), on_event_loop=True)
        guard_httpx(request, self.header, is_async=True)
        reply: Any = None
        try:
            while True:
                step = steps.send(reply)
                if isinstance(step, Read):
                    reply = await asyncio.to_thread(step.fn) if step.may_block else step.fn()
                else:
                    request.headers[self.header] = step.header
                    reply = yield request
        except StopIteration:
            return

    # -- requests ------------------------------------------------------------------------------------------

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        steps = self._exchange(replayable=requests_replayable(r))
        step = next(steps)
        while isinstance(step, Read):
            step = steps.send(step.fn())
        r.headers[self.header] = step.header
        r.register_hook("response", _RequestsRetry(self.header, steps))
        return r


class _RequestsRetry:
    """The response hook of one requests call: drives the exchange on, sending again when the policy asks,
    as requests' own digest auth does (same connection, cookies carried over, history kept). On every
    redirect response (requests dispatches the hook for each) it first removes the header from the
    request requests copies for the next hop when that hop goes to another origin."""

    def __init__(self, header: str, steps: Exchange) -> None:
        self._header = header
        self._steps: Exchange | None = steps

    def __call__(self, response: requests.Response, **kwargs: Any) -> requests.Response:
        strip_on_cross_origin_redirect(response, self._header)
        steps = self._steps
        if steps is None:  # a redirect's response (requests dispatches hooks again): this call is over
            return response
        self._steps = None
        reply: Any = response
        try:
            while True:
                step = steps.send(reply)
                if isinstance(step, Read):
                    reply = step.fn()
                else:
                    response = reply = self._send_again(response, step.header, kwargs)
        except StopIteration:
            return response
        finally:
            steps.close()

    def _send_again(self, response: requests.Response, header: str, kwargs: dict[str, Any]) -> requests.Response:
        from requests.cookies import extract_cookies_to_jar

        response.content  # noqa: B018  (read it all, so the connection can be reused)
        response.close()
        prep = response.request.copy()
        jar = prep._cookies  # noqa: SLF001  (requests' own HTTPDigestAuth reads it: no public accessor)
        if jar is not None:
            extract_cookies_to_jar(jar, response.request, response.raw)
            prep.prepare_cookies(jar)
        prep.headers[self._header] = header
        again: requests.Response = response.connection.send(prep, **kwargs)
        again.history.append(response)
        again.request = prep
        return again


def _username_password(value: SecretValue) -> tuple[str, str] | None:
    """Basic auth's pair from a JSON secret, or None. Returns rather than raises, so no frame of a
    traceback holds the parsed secret."""
    try:
        doc = value.json()
    except SecretFormatError:
        return None
    username, password = doc.get("username"), doc.get("password")
    del doc
    if isinstance(username, str) and isinstance(password, str):
        return username, password
    return None

