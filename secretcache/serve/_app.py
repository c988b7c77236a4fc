"""The Secrets Manager Agent's HTTP API as a pure function of (method, target, headers).

No socket here: :class:`AgentApi` turns one request into one :class:`Response`, so the HTTP front end
(uvicorn, ``_asgi.py``) only moves bytes, and the rules (token, forwarded header, methods, parameters, error
mapping) are written once. A 200 body holds a secret value; nothing else this module builds does.

Size: the Agent's two read routes (secrets, and the extension's parameters) with the rules they share
(token, forwarded header, methods, roles, error mapping, the rendered-body memo), ~460 lines: split by
route, every rule would be imported back into both halves.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import parse_qsl, unquote, urlsplit

from ..errors import (
    AssumeRoleError,
    InvalidReferenceError,
    RegionNotConfiguredError,
    SecretAccessDeniedError,
    SecretCacheError,
    SecretDecryptionError,
    SecretDeletedError,
    SecretNotFoundError,
    SecretThrottledError,
    SecretUnavailableError,
)
from ..parameters import is_parameter

if TYPE_CHECKING:
    from ..cache import SecretCache
    from ..model import SecretValue

__all__ = ["TOKEN_HEADERS", "AgentApi", "Response", "error_status"]

log = logging.getLogger("secretcache.serve")

TOKEN_HEADERS = ("x-aws-parameters-secrets-token", "x-vault-token")
"""Where a request may carry the SSRF token (the Agent's default ``ssrf_headers``), lower-cased."""

_PARAMS = frozenset({"secretId", "versionId", "versionStage", "refreshNow", "roleArn"})
_BAD_ROLE = "invalid roleArn format, expected arn:<partition>:iam::<account>:role/<name>"  # the Agent's words
PARAMETERS_PATH = "/systemsmanager/parameters/get"
_PARAMETER_PARAMS = frozenset({"name", "version", "label", "withDecryption", "refreshNow"})
_BOOLS = {"true": True, "1": True, "false": False, "0": False}
_JSON = "application/json"
_TEXT = "text/plain; charset=utf-8"


class Response(NamedTuple):
    status: int
    body: bytes
    content_type: str = _TEXT


def _text(status: int, message: str) -> Response:
    return Response(status, message.encode())


def _aws_error(status: int, code: str, message: str) -> Response:
    return Response(status, json.dumps({"__type": code, "message": message}).encode(), _JSON)


_CAUSE_TIMEOUT = ("ReadTimeoutError", "ConnectTimeoutError", "TimeoutError", "timeout")
_CAUSE_CONNECTION = ("EndpointConnectionError", "ConnectionClosedError", "ConnectionError",
                     "ProxyConnectionError", "ConnectionRefusedError", "ConnectionResetError")


def error_status(error: SecretCacheError) -> tuple[int, str]:
    """(HTTP status, ``__type``) for a typed error, as the Agent answers for the AWS error behind it.

    AWS's own codes keep the status AWS gives them (400 for the permanent ones and for throttling, 5xx
    for service faults); a timeout is 504 ``TimeoutError`` and a connection failure 502
    ``ConnectionError``, as the Agent reports SDK failures that carry no AWS code.
    """
    code = error.code
    if isinstance(error, SecretThrottledError):
        return 400, code or "ThrottlingException"
    if isinstance(error, SecretUnavailableError):
        if code:
            return (503 if code in ("ServiceUnavailable", "ServiceUnavailableException") else 500), code
        cause = type(error.__cause__).__name__ if error.__cause__ is not None else ""
        text = str(error).lower()
        if cause in _CAUSE_TIMEOUT or "timed out" in text or "timeout" in text:
            return 504, "TimeoutError"
        if cause in _CAUSE_CONNECTION or "unreachable" in text or "connect" in text:
            return 502, "ConnectionError"
        return 500, "InternalFailure"
    if isinstance(error, SecretNotFoundError):
        return 400, code or "ResourceNotFoundException"
    if isinstance(error, SecretAccessDeniedError):
        return 400, code or "AccessDeniedException"
    if isinstance(error, SecretDecryptionError):
        return 400, code or "DecryptionFailure"
    if isinstance(error, SecretDeletedError):
        return 400, code or "InvalidRequestException"
    return 400, code or ""  # no AWS code: the request itself was refused (see _read)


_BOTOCORE_PREFIX = re.compile(r"^An error occurred \([^)]*\) when calling the \w+ operation(?: \([^)]*\))?: ")


def _aws_message(error: SecretCacheError) -> str:
    """AWS's own message for the error, as the Agent forwards it: our message (value-free by
    construction, as every SecretCacheError's is) without botocore's prefix and our secret/code suffix."""
    message = str(error)
    if error.secret_id is not None:
        cut = message.rfind(" (secret ")
        if cut > 0:
            message = message[:cut]
    message = _BOTOCORE_PREFIX.sub("", message)
    if isinstance(error, SecretDeletedError) and "delet" not in message.lower():
        message = "You can't perform this operation on the secret because it was marked for deletion."
    return message


def _is_configuration_error(error: SecretCacheError) -> bool:
    """True for a failure of serve's own AWS configuration (no Region, no usable credentials), which no
    request can avoid: not an answer of AWS (those carry a code), not a refusal of the request."""
    if isinstance(error, RegionNotConfiguredError):
        return True
    return isinstance(error, SecretAccessDeniedError) and error.code is None


def _configuration_code(error: SecretCacheError) -> str:
    return "NoRegionError" if isinstance(error, RegionNotConfiguredError) else "NoCredentialsError"


def render(value: SecretValue) -> bytes:
    """The GetSecretValue JSON of ``value``; ``CreatedDate`` as the Agent sends it (epoch seconds in a
    JSON string), ``SecretBinary`` base64."""
    doc: dict[str, object] = {"ARN": value.arn, "Name": value.name, "VersionId": value.version_id}
    if value.secret_binary is not None:
        doc["SecretBinary"] = base64.b64encode(value.secret_binary).decode("ascii")
    else:
        doc["SecretString"] = value.secret_string
    doc["VersionStages"] = list(value.version_stages)
    if value.created_date is not None:
        doc["CreatedDate"] = f"{value.created_date.timestamp():.3f}"
    return json.dumps(doc, separators=(",", ":")).encode()


def render_parameter(value: SecretValue, chosen: str | None) -> bytes:
    """GetParameter's JSON of ``value`` as the extension sends it: ``{"Parameter": {...}, "ResultMetadata": {}}``.

    ``Type`` and ``DataType`` are what the backend reported (``String`` / ``text`` when it could not say);
    ``Version`` a number; ``LastModifiedDate`` epoch seconds; ``Selector`` the version or label asked for.
    """
    version: object = value.version_id
    if isinstance(version, str) and version.isdigit():
        version = int(version)
    doc: dict[str, object] = {
        "Name": value.name,
        "Type": getattr(value, "parameter_type", None) or "String",
        "Value": value.secret_string if value.secret_string is not None else
        base64.b64encode(value.secret_binary or b"").decode("ascii"),
        "Version": version,
        "Selector": f":{chosen}" if chosen else None,
        "LastModifiedDate": value.created_date.timestamp() if value.created_date is not None else None,
        "ARN": value.arn,
        "DataType": getattr(value, "data_type", None) or "text",
    }
    shown = {k: v for k, v in doc.items() if v is not None}  # as GetParameter: absent rather than null
    return json.dumps({"Parameter": shown, "ResultMetadata": {}}, separators=(",", ":")).encode()


class AgentApi:
    """The Agent's API over one :class:`~secretcache.SecretCache`.

    ``token`` None means no token was configured (loopback only): a request must still carry one of
    the token headers (what stops a server-side request forgery, which cannot set headers), with any
    value. ``path_prefix`` is the path-style prefix (the Agent's default ``/v1/``).

    ``role_cache(role_arn)`` builds the cache that reads through an assumed role (raising ValueError
    for a malformed ARN), for the Agent's ``roleArn`` parameter: each role gets its own cache, so two
    roles reading the same name never share an answer; at most ``max_roles`` of them (more -> 400
    ``MaxRolesExceeded``). A role whose AssumeRole fails before it ever answered is forgotten (it does
    not hold one of the ``max_roles`` places). Without ``role_cache``, ``roleArn`` is an unknown parameter.
    """

    def __init__(self, cache: SecretCache, *, token: str | None, path_prefix: str = "/v1/",
                 role_cache: Callable[[str], SecretCache] | None = None, max_roles: int = 20) -> None:
        self.cache = cache
        self._token = token.encode() if token is not None else None
        self.path_prefix = path_prefix
        self._bodies: dict[tuple[str | None, str, str | None, str | None], tuple[SecretValue, bytes]] = {}
        self._max_bodies = 2 * cache.config.max_size
        self._role_cache = role_cache
        self.max_roles = max_roles
        self._roles: dict[str, SecretCache] = {}
        self._answered: set[str] = set()  # roles that served a value at least once
        self._roles_lock = threading.Lock()
        self._config_logged: dict[str, float] = {}  # configuration error kind -> when last logged

    def cache_for(self, role_arn: str | None) -> SecretCache:
        """The cache that reads as ``role_arn`` (None: the main one), created on first use.

        Raises ValueError naming the problem for a malformed ARN or past ``max_roles``.
        """
        found = self._cache_or_refusal(role_arn)
        if isinstance(found, Response):
            raise ValueError(found.body.decode())
        return found

    def _cache_or_refusal(self, role_arn: str | None) -> SecretCache | Response:
        if role_arn is None:
            return self.cache
        known = self._roles.get(role_arn)
        if known is not None:
            return known
        with self._roles_lock:
            known = self._roles.get(role_arn)
            if known is not None:
                return known
            if self._role_cache is None:
                return _text(400, "unknown parameter: roleArn")
            if len(self._roles) >= self.max_roles:
                return _aws_error(400, "MaxRolesExceeded", f"The maximum number of assumed roles ({self.max_roles}) "
                                  f"has been reached. Unable to assume the following role: {role_arn}"[:600])
            try:
                made = self._role_cache(role_arn)
            except ValueError:
                return _text(400, _BAD_ROLE)
            self._roles[role_arn] = made
            log.info("serve: reading through role %s (%d/%d roles)", role_arn, len(self._roles), self.max_roles)
            return made

    def _forget_role(self, role_arn: str, cache: SecretCache) -> None:
        """Drop a role whose AssumeRole failed before it ever answered, so it holds no place."""
        with self._roles_lock:
            if role_arn in self._answered or self._roles.get(role_arn) is not cache:
                return
            del self._roles[role_arn]
        cache.close()

    def close(self) -> None:
        """Close the roles' caches (the main cache is its owner's to close)."""
        with self._roles_lock:
            caches, self._roles = list(self._roles.values()), {}
        for cache in caches:
            cache.close()

    def _log_configuration_error(self, error: SecretCacheError) -> None:
        """ERROR once a minute per kind of configuration error (every request fails the same way)."""
        kind = _configuration_code(error)
        now = time.monotonic()
        if now - self._config_logged.get(kind, -1e9) >= 60.0:
            self._config_logged[kind] = now
            log.error("serve: requests fail: %s", error)
        else:
            log.debug("serve: %s", error)

    def handle(self, method: str, target: str, headers: Callable[[str], str | None], *,
               fresh_only: bool = False) -> Response | None:
        """One request: ``headers(name)`` returns a header's value (case-insensitive) or None.

        ``fresh_only``: answer only if that cannot wait on Secrets Manager (a hit within ttl, or any
        answer that is not a read); None means "call again without it, where blocking is fine".
        """
        if headers("x-forwarded-for") is not None:
            return _text(400, "Forwarded")
        if method != "GET":
            return _text(405, "Not allowed")
        try:
            parts = urlsplit(target)
        except ValueError:  # e.g. "//[::1/": an authority that does not parse
            return _text(400, "Bad Request")
        path = parts.path
        if path == "/ping":
            return _text(200, "healthy")
        if not self._token_ok(headers):
            return _text(403, "Bad Token")
        if path == PARAMETERS_PATH:
            return self._parameter(parts.query, fresh_only)
        if path == "/secretsmanager/get":
            secret_id = None
        elif path.startswith(self.path_prefix) and len(path) > len(self.path_prefix):
            secret_id = unquote(path[len(self.path_prefix):])
        else:
            return _text(404, "Not found")
        query: dict[str, str] = {}
        for key, val in parse_qsl(parts.query, keep_blank_values=True):
            if key not in _PARAMS or (key == "secretId" and secret_id is not None and path != "/secretsmanager/get"):
                return _text(400, f"unknown parameter: {key}"[:200])
            query[key] = val
        if secret_id is None:
            secret_id = query.get("secretId")
        if not secret_id:
            return _text(400, "missing parameter secretId")
        refresh = _BOOLS.get(query.get("refreshNow", "false").lower())
        if refresh is None:
            return _text(400, "invalid parameter: refreshNow")
        version_id, stage = query.get("versionId") or None, query.get("versionStage") or None
        role = query.get("roleArn")
        cache = self._cache_or_refusal(role)
        if isinstance(cache, Response):
            return cache
        if fresh_only:
            if refresh and version_id is None:
                return None
            try:
                value = cache.peek(secret_id, version_id=version_id, version_stage=stage)
            except Exception:  # a bad request: the full path answers it
                return None
            return None if value is None else self._body(role, secret_id, version_id, stage, value)
        return self._read(cache, role, secret_id, version_id, stage, refresh)

    def _parameter(self, raw_query: str, fresh_only: bool) -> Response | None:
        """``GET /systemsmanager/parameters/get?name=NAME[&version=V|&label=L][&withDecryption=true]``, as the
        Parameters and Secrets Lambda Extension answers it (``{"Parameter": {...}}``, GetParameter's body).
        Values are always decrypted (the cache holds them so); ``withDecryption`` is accepted either way."""
        query: dict[str, str] = {}
        for key, val in parse_qsl(raw_query, keep_blank_values=True):
            if key not in _PARAMETER_PARAMS:
                return _text(400, f"unknown parameter: {key}"[:200])
            query[key] = val
        name = query.get("name")
        if not name:
            return _text(400, "missing parameter name")
        if _BOOLS.get(query.get("withDecryption", "true").lower()) is None:
            return _text(400, "invalid parameter: withDecryption")
        refresh = _BOOLS.get(query.get("refreshNow", "false").lower())
        if refresh is None:
            return _text(400, "invalid parameter: refreshNow")
        from ..model import SecretRef

        try:
            ref = SecretRef.parse(name if name.startswith("arn:") else "ssm:" + name)
            if not is_parameter(ref.secret_id) or ref.json_key is not None:
                raise InvalidReferenceError(f"not a parameter name: {name[:200]!r}")
        except InvalidReferenceError as e:
            return _aws_error(400, "ValidationException", str(e)[:500])
        version_id = query.get("version") or ref.version_id
        label = query.get("label") or ref.version_stage
        if version_id is not None and label is not None:
            return _aws_error(400, "ValidationException", "give a version or a label, not both")
        if fresh_only:
            if refresh:
                return None
            try:
                value = self.cache.peek(ref.secret_id, version_id=version_id, version_stage=label)
            except Exception:  # a bad request: the full path answers it
                return None
            return None if value is None else self._parameter_body(ref.secret_id, version_id, label, value)
        try:
            if refresh and version_id is None:
                value = self.cache.refresh(ref.secret_id, version_stage=label)
            else:
                value = self.cache.get_secret_value(ref.secret_id, version_id=version_id, version_stage=label)
        except SecretCacheError as e:
            status, code = error_status(e)
            if isinstance(e, SecretNotFoundError) and not code.startswith("Parameter"):
                code = "ParameterNotFound"  # e.g. a backend that says ResourceNotFoundException
            log.debug("serve: %s reading parameter %r -> %d %s", type(e).__name__, ref.secret_id, status, code)
            return _aws_error(status, code or "ValidationException", _aws_message(e))
        except Exception as e:  # not ours: its text was not written with secrets in mind
            log.error("serve: unexpected %s reading parameter %r", type(e).__name__, ref.secret_id)
            return _aws_error(500, "InternalFailure", f"unexpected {type(e).__name__}")
        return self._parameter_body(ref.secret_id, version_id, label, value)

    def _parameter_body(self, secret_id: str, version_id: str | None, label: str | None,
                        value: SecretValue) -> Response:
        key = (None, "\0" + secret_id, version_id, label)  # no role; apart from the secret route's bodies
        known = self._bodies.get(key)
        if known is not None and known[0] is value:
            return Response(200, known[1], _JSON)
        body = render_parameter(value, version_id or label)
        if len(self._bodies) >= self._max_bodies:
            self._bodies.clear()
        self._bodies[key] = (value, body)
        return Response(200, body, _JSON)

    def _token_ok(self, headers: Callable[[str], str | None]) -> bool:
        for name in TOKEN_HEADERS:
            given = headers(name)
            if given is None:
                continue
            if self._token is None:
                return True
            return hmac.compare_digest(given.encode(), self._token)
        return False

    def _read(self, cache: SecretCache, role: str | None, secret_id: str, version_id: str | None,
              stage: str | None, refresh: bool) -> Response:
        try:
            if refresh and version_id is None:
                value = cache.refresh(secret_id, version_stage=stage)
            else:
                value = cache.get_secret_value(secret_id, version_id=version_id, version_stage=stage)
        except AssumeRoleError as e:  # the Agent's answer when it cannot assume the role: 403
            _, code = error_status(e)
            code = "AccessDeniedException" if isinstance(e, SecretAccessDeniedError) else code
            log.debug("serve: %s reading secret %r through role %s -> 403 %s", type(e).__name__, secret_id, role,
                      code)
            if role is not None:
                self._forget_role(role, cache)
            return _aws_error(403, code or "AccessDeniedException", _aws_message(e))
        except SecretCacheError as e:
            if _is_configuration_error(e):
                # serve's own configuration is wrong (no Region, no credentials): every request fails
                # alike, and only the operator can fix it. Said once at ERROR, in the error's own words
                # (ids, AWS's text and advice; never a value), and answered as the Agent's JSON error.
                self._log_configuration_error(e)
                return _aws_error(500, _configuration_code(e), _aws_message(e))
            status, code = error_status(e)
            log.debug("serve: %s reading secret %r -> %d %s", type(e).__name__, secret_id, status, code)
            if not code:  # refused before reaching AWS (botocore's parameter validation): plain text,
                return _text(status, _aws_message(e)[:500])  # as the Agent's own refusals
            return _aws_error(status, code, _aws_message(e))
        except Exception as e:  # not ours: its text was not written with secrets in mind
            log.error("serve: unexpected %s reading secret %r", type(e).__name__, secret_id)
            return _aws_error(500, "InternalFailure", f"unexpected {type(e).__name__}")
        if role is not None and role not in self._answered:
            self._answered.add(role)
        return self._body(role, secret_id, version_id, stage, value)

    def _body(self, role: str | None, secret_id: str, version_id: str | None, stage: str | None,
              value: SecretValue) -> Response:
        key = (role, secret_id, version_id, stage)
        known = self._bodies.get(key)
        if known is not None and known[0] is value:
            return Response(200, known[1], _JSON)
        body = render(value)
        if len(self._bodies) >= self._max_bodies:
            self._bodies.clear()
        self._bodies[key] = (value, body)
        return Response(200, body, _JSON)


def read_token(environ: Mapping[str, str], token_file: str | None) -> str | None:
    """The token: ``--token-file``'s content, else the first set of ``AWS_TOKEN``, ``AWS_SESSION_TOKEN``,
    ``AWS_CONTAINER_AUTHORIZATION_TOKEN`` (``file://PATH``: that file's content), else None.

    Raises OSError naming the file when a named file cannot be read, ValueError when it is empty.
    """
    from ..backends.agent import TOKEN_ENV_VARS

    path = token_file
    if path is None:
        for name in TOKEN_ENV_VARS:
            value = environ.get(name)
            if not value:
                continue
            if not value.startswith("file://"):
                return value
            path = value[len("file://"):]
            break
        else:
            return None
    with open(path, encoding="utf-8") as f:
        token = f.read().strip()
    if not token:
        raise ValueError(f"the token file {path!r} is empty")
    return token
