"""SecretAuth: authentication from a cached secret for httpx (sync and async) and requests, rotation-proof.

``SecretAuth("prod/api-token")`` sends ``Authorization: Bearer <token>`` with the cached value. When the
API answers with a status in ``retry_statuses`` (default 401) the rotation policy of
:mod:`secretcache.credentials` runs, as for a refused database login: one shared, rate-limited forced
refresh of AWSCURRENT, the request sent again if that brought another version; else AWSPENDING once
(single-user rotation between setSecret and finishSecret), pinned while it works. At most three sends
of one request; a request whose body cannot be sent twice (a streaming upload) is sent once. When the
policy gives up, the caller gets the last response, as without auth retries: nothing is raised for it.

Requires httpx or requests (``pip install 'secretcache[httpx]'`` or ``'secretcache[requests]'``); the
class is an ``httpx.Auth`` and a ``requests.auth.AuthBase`` for whichever of them is installed.
No secret value appears in a repr, a log record or an exception of this module.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncGenerator, Generator, Mapping
from typing import TYPE_CHECKING, Any

from ._oauth2 import OAuth2ClientCredentials
from .credentials import AuthPolicy, sync_cache
from .db._auth import Login
from .db._flow import Connect, Read
from .errors import SecretFormatError
from .model import SecretRef, SecretValue

if TYPE_CHECKING:
    import httpx
    import requests
    import requests.auth

    from .aio import AsyncSecretCache
    from .cache import SecretCache
    from .db._flow import Flow

__all__ = ["OAuth2ClientCredentials", "SecretAuth"]


def _bases() -> tuple[type, ...]:
    bases: list[type] = []
    try:
        import httpx
    except ImportError:
        pass
    else:
        bases.append(httpx.Auth)
    try:
        import requests.auth
    except ImportError:
        pass
    else:
        bases.append(requests.auth.AuthBase)
    if not bases:
        raise ImportError(
            "secretcache.http needs httpx or requests: pip install 'secretcache[httpx]' or 'secretcache[requests]'"
        )
    return tuple(bases)


if TYPE_CHECKING:

    class _Base(httpx.Auth, requests.auth.AuthBase):
        pass

else:
    _Base = type("_Base", _bases(), {})


class _Refused(Exception):
    """A response whose status asks for new credentials, handed to the policy as a refused login."""

    def __init__(self, response: Any, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.response = response


def _is_refused(error: BaseException) -> bool:
    return isinstance(error, _Refused)


class SecretAuth(_Base):
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
        cache: SecretCache | AsyncSecretCache | None = None,
        policy: AuthPolicy | None = None,
        retry_statuses: tuple[int, ...] = (401,),
    ) -> None:
        ref = SecretRef.parse(reference)
        if scheme is not None and (not isinstance(scheme, str) or not scheme or scheme != scheme.strip()):
            raise ValueError(f"scheme must be a non-empty str without surrounding spaces, or None; got {scheme!r}")
        if not isinstance(header, str) or not header:
            raise ValueError(f"header must be a non-empty str, got {header!r}")
        statuses = tuple(retry_statuses)
        if not all(isinstance(s, int) and not isinstance(s, bool) and 100 <= s <= 599 for s in statuses):
            raise ValueError(f"retry_statuses must be HTTP status codes, got {retry_statuses!r}")
        self.reference = ref
        self.scheme = scheme
        self.header = header
        self.retry_statuses = frozenset(statuses)
        self._basic = scheme is not None and scheme.lower() == "basic" and ref.json_key is None
        self._cache = sync_cache(cache)
        self._pinned_version = ref.version_id is not None or ref.version_stage is not None
        self._login = Login(ref.secret_id, self._params_of, cache=self._cache, policy=policy, detect=_is_refused)

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
        from ._resolve import string_of

        text = string_of(value, self.reference.json_key)
        return text if self.scheme is None else f"{self.scheme} {text}"

    def _fixed_header(self) -> str:
        """The header for a reference naming a version or a stage (no policy: that version is meant)."""
        from ._default import default_cache

        cache = self._cache if self._cache is not None else default_cache()
        ref = self.reference
        value = cache.get_secret_value(ref.secret_id, version_id=ref.version_id, version_stage=ref.version_stage)
        return self._header_value(value)

    def _flow(self, *, on_event_loop: bool = False) -> Flow:
        """The policy's steps: reads, and sends (``Connect``) whose reply is the response or ``_Refused``."""
        if self._pinned_version:
            return self._fixed_flow()
        return self._login.flow(on_event_loop=on_event_loop)

    def _fixed_flow(self) -> Flow:
        from .db._flow import Credentials

        header: str | None = None

        def read() -> Credentials:
            nonlocal header
            header = self._fixed_header()
            return Credentials(_NO_VALUE, "fixed", "reference", {"header": header})

        credentials = yield Read(read, may_block=True)
        reply = yield Connect(credentials)
        if isinstance(reply, _Refused):
            raise reply
        return reply

    def _reply(self, response: Any, status: int) -> Any:
        return _Refused(response, status) if status in self.retry_statuses else response

    # -- httpx ---------------------------------------------------------------------------------------------

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        replayable = _httpx_replayable(request)
        flow = self._flow()
        sent = 0
        try:
            step = next(flow)
            while True:
                reply: Any
                if isinstance(step, Read):
                    reply = step.fn()
                else:
                    if sent and not replayable:
                        return  # a streaming body is gone: the caller gets the refused response
                    request.headers[self.header] = step.credentials.params["header"]
                    response = yield request
                    sent += 1
                    reply = self._reply(response, response.status_code)
                step = flow.send(reply)
        except (StopIteration, _Refused):
            return  # done, or the policy gave up: httpx returns the last response
        finally:
            flow.close()

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        import asyncio

        replayable = _httpx_replayable(request)
        flow = self._flow(on_event_loop=True)
        sent = 0
        try:
            step = next(flow)
            while True:
                reply: Any
                if isinstance(step, Read):
                    reply = await asyncio.to_thread(step.fn) if step.may_block else step.fn()
                else:
                    if sent and not replayable:
                        return
                    request.headers[self.header] = step.credentials.params["header"]
                    response = yield request
                    sent += 1
                    reply = self._reply(response, response.status_code)
                step = flow.send(reply)
        except (StopIteration, _Refused):
            return
        finally:
            flow.close()

    # -- requests ------------------------------------------------------------------------------------------

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        flow = self._flow()
        step = next(flow)
        while isinstance(step, Read):
            step = flow.send(step.fn())
        r.headers[self.header] = step.credentials.params["header"]
        r.register_hook("response", _RequestsRetry(self, flow, _requests_replayable(r)))
        return r


class _RequestsRetry:
    """The response hook of one requests call: runs the policy on a refused response and sends again,
    as requests' own digest auth does (same connection, cookies carried over, history kept)."""

    def __init__(self, auth: SecretAuth, flow: Flow, replayable: bool) -> None:
        self._auth = auth
        self._flow: Flow | None = flow
        self._replayable = replayable

    def __call__(self, response: requests.Response, **kwargs: Any) -> requests.Response:
        flow = self._flow
        if flow is None:  # a redirect's response (requests dispatches hooks again): this call is over
            return response
        self._flow = None
        try:
            reply = self._auth._reply(response, response.status_code)
            while True:
                step = flow.send(reply)
                while isinstance(step, Read):
                    step = flow.send(step.fn())
                if not self._replayable:
                    return response
                response = self._send_again(response, step.credentials.params["header"], kwargs)
                reply = self._auth._reply(response, response.status_code)
        except (StopIteration, _Refused):
            return response
        finally:
            flow.close()

    def _send_again(self, response: requests.Response, header: str, kwargs: dict[str, Any]) -> requests.Response:
        from requests.cookies import extract_cookies_to_jar

        response.content  # noqa: B018  (read it all, so the connection can be reused)
        response.close()
        prep = response.request.copy()
        jar = prep._cookies
        if jar is not None:
            extract_cookies_to_jar(jar, response.request, response.raw)
            prep.prepare_cookies(jar)
        prep.headers[self._auth.header] = header
        again: requests.Response = response.connection.send(prep, **kwargs)
        again.history.append(response)
        again.request = prep
        return again


class _NoValue:
    """Stands for the SecretValue in the Credentials of a fixed reference (never read)."""

    version_id = None


_NO_VALUE: Any = _NoValue()


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


def _httpx_replayable(request: httpx.Request) -> bool:
    import httpx

    try:
        request.content  # noqa: B018  (raises for a body not read: a stream that can be sent once)
    except httpx.RequestNotRead:
        return False
    return True


def _requests_replayable(r: requests.PreparedRequest) -> bool:
    return r.body is None or isinstance(r.body, (bytes, str))
