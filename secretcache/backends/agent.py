"""AgentBackend: the AWS Secrets Manager Agent / Parameters and Secrets Lambda Extension HTTP API.

``GET /secretsmanager/get?secretId=...&versionStage=...&versionId=...`` on the local agent, with the
SSRF token in ``X-Aws-Parameters-Secrets-Token``; parameters (``ssm:NAME``, parameter ARNs) through the
Lambda extension's ``GET /systemsmanager/parameters/get?name=...&withDecryption=true``. Standard library
only (``http.client``), so using the agent costs no dependency and no boto3 import. Over TCP (``http://``,
``https://``) or over the Unix socket of ``secretcache serve --unix-socket`` (``unix_socket=PATH``, or the
endpoint ``unix:///PATH``).
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import sys
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

from ..errors import SecretAccessDeniedError, SecretCacheError, SecretUnavailableError, error_for_code
from ..model import SecretValue, value_from_answer
from ..parameters import api_name, is_parameter, selector
from . import _fork, _ssm

__all__ = ["TOKEN_ENV_VARS", "AgentBackend"]

TOKEN_HEADER = "X-Aws-Parameters-Secrets-Token"  # a header name  # nosec B105
TOKEN_ENV_VARS = ("AWS_TOKEN", "AWS_SESSION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN")
"""Where the agent (and so we) look for the token, in order. ``file://PATH`` reads it from a file."""

_MAX_SHOWN = 400  # serve's configuration errors carry their advice: show it whole


class _UnixConnection(http.client.HTTPConnection):
    """HTTP/1.1 over a Unix domain socket (``secretcache serve --unix-socket PATH``)."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)  # the Host header serve sees
        self._socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self._socket_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def _parse_date(raw: object) -> datetime | None:
    """``CreatedDate`` as the agent sends it: epoch seconds as a number or a string, or ISO 8601."""
    if raw is None or isinstance(raw, bool):
        return None
    try:
        return datetime.fromtimestamp(float(raw), tz=timezone.utc)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError, OSError):
        pass
    if isinstance(raw, str):
        try:
            parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            return None  # a date we cannot read never costs the caller the secret
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    return None


def _error_text(body: bytes) -> tuple[str | None, str]:
    """(code, message) from an error body: the agent forwards AWS's ``{"__type", "message"}`` JSON.

    Only error bodies come here; a 200 body (the secret) is never quoted in a message.
    """
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        code = str(doc.get("__type") or doc.get("code") or "").rpartition("#")[2] or None
        message = str(doc.get("message") or doc.get("Message") or "")
        return code, " ".join(message.split())[:_MAX_SHOWN]
    return None, " ".join(body.decode("utf-8", "replace").split())[:_MAX_SHOWN]


def _answer(body: bytes, secret_id: str) -> SecretValue | str:
    """The value of the agent's 200 answer, or why it is malformed. Returns rather than raises: a raise
    from here would leave the body in this frame's locals, and a caught decode error keeps it too."""
    try:
        doc: Any = json.loads(body)
    except (ValueError, RecursionError):
        return "not JSON"
    del body
    if not isinstance(doc, dict):
        return f"expected a JSON object, got {type(doc).__name__}"
    binary = doc.get("SecretBinary")
    if isinstance(binary, str):
        try:
            binary = base64.b64decode(binary, validate=True)
        except ValueError:
            return "SecretBinary is not valid base64"
    string = doc.get("SecretString")
    if string is None and binary is None:
        return "no SecretString or SecretBinary"
    stages = doc.get("VersionStages") or ()
    if isinstance(stages, list) and all(isinstance(s, str) for s in stages):
        stages = tuple(sys.intern(s) for s in stages)
    return value_from_answer(doc.get("Name") or secret_id, doc.get("ARN"), doc.get("VersionId"), stages,
                             string, binary, _parse_date(doc.get("CreatedDate")))


class AgentBackend:
    """Reads through the local Secrets Manager Agent or the Lambda extension (default port 2773).

    The token is ``token=``, else the first of ``AWS_TOKEN``, ``AWS_SESSION_TOKEN``,
    ``AWS_CONTAINER_AUTHORIZATION_TOKEN`` that is set (``file://PATH``: the file's content), read once
    on first use; when the agent rejects it (403) a token from the environment is read again once,
    in case the agent was restarted with a new one. The agent has no batch endpoint, so
    ``batch_get_secret_values`` makes one GET per secret. Forced reads (``refresh()``, the rotation
    policy's) send ``refreshNow=true``, so they bypass the agent's own cache.

    ``unix_socket=PATH`` (or ``endpoint="unix:///PATH"``) talks to ``secretcache serve --unix-socket
    PATH`` instead of a TCP port: a socket file's permissions decide who may connect, and no other host
    can reach it.
    """

    def __init__(self, endpoint: str = "http://localhost:2773", *, token: str | None = None,
                 timeout: float = 5.0, unix_socket: str | None = None) -> None:
        parts = urlsplit(endpoint)
        if parts.scheme == "unix":  # unix:///run/secretcache.sock (the path, percent-decoded)
            if unix_socket is not None:
                raise ValueError("AgentBackend takes a unix:// endpoint or unix_socket=, not both")
            unix_socket = unquote(parts.path)
            if not unix_socket:
                raise ValueError(f"AgentBackend unix:// endpoint names no socket path, got {endpoint!r}")
        elif parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"AgentBackend endpoint must be an http(s) URL or unix:///PATH, got {endpoint!r}")
        if timeout <= 0:
            raise ValueError(f"AgentBackend timeout must be > 0, got {timeout!r}")
        self.timeout = timeout
        self.unix_socket = unix_socket
        if unix_socket is not None:
            self.endpoint = f"unix://{unix_socket}"
            self._https = False
            self._host = "localhost"
            self._port = 80
            base = ""
        else:
            self.endpoint = endpoint
            self._https = parts.scheme == "https"
            self._host = parts.hostname or ""
            self._port = parts.port or (443 if self._https else 80)
            base = parts.path.rstrip("/")
        self._path = base + "/secretsmanager/get"
        self._parameters_path = base + "/systemsmanager/parameters/get"
        self._explicit_token = token
        self._token: str | None = token
        self._lock = threading.Lock()
        _fork.track(self, AgentBackend._after_fork_in_child)

    def _after_fork_in_child(self) -> None:
        """In a forked child: a fresh token lock (a parent thread may have held it at the fork). Each
        request opens its own connection, so no socket is shared with the parent."""
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"AgentBackend(endpoint={self.endpoint!r})"  # the token is never shown

    # -- the token --------------------------------------------------------------------------------

    def _read_token(self) -> str:
        for name in TOKEN_ENV_VARS:
            value = os.environ.get(name)
            if not value:
                continue
            if not value.startswith("file://"):
                return value
            path = value[len("file://"):]
            try:
                with open(path, encoding="utf-8") as f:
                    return f.read().strip()
            except OSError as e:
                raise SecretAccessDeniedError(
                    f"cannot read the agent token file {path!r} named by ${name} ({type(e).__name__})"
                ) from None
        raise SecretAccessDeniedError(
            "no token for the Secrets Manager Agent: pass token= or set one of " + ", ".join(TOKEN_ENV_VARS)
        )

    def _current_token(self) -> str:
        if self._token is None:
            with self._lock:
                if self._token is None:
                    self._token = self._read_token()
        return self._token

    # -- HTTP -------------------------------------------------------------------------------------

    def _request(self, query: Mapping[str, str], token: str, path: str | None = None) -> tuple[int, str, bytes]:
        conn: http.client.HTTPConnection
        if self.unix_socket is not None:
            conn = _UnixConnection(self.unix_socket, self.timeout)
        else:
            conn_class = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            conn = conn_class(self._host, self._port, timeout=self.timeout)
        try:
            conn.request("GET", f"{path or self._path}?{urlencode(query)}", headers={TOKEN_HEADER: token})
            response = conn.getresponse()
            return response.status, response.reason, response.read()
        finally:
            conn.close()

    def get_secret_value(
        self, secret_id: str, *, version_id: str | None = None, version_stage: str | None = None
    ) -> SecretValue:
        """One GET to the agent; its answer and errors mapped as GetSecretValue's would be."""
        return self._get(secret_id, version_id, version_stage, refresh_now=False)

    def refresh_secret_value(
        self, secret_id: str, *, version_id: str | None = None, version_stage: str | None = None
    ) -> SecretValue:
        """A forced read (``refreshNow=true``): the agent fetches from Secrets Manager instead of answering
        from its own cache, whose ttl (300 s by default) would otherwise hide a rotation from
        ``refresh()`` and the rotation policy. See :class:`~secretcache.backends.base.ForcedReads`."""
        return self._get(secret_id, version_id, version_stage, refresh_now=True)

    def _get(self, secret_id: str, version_id: str | None, version_stage: str | None, *,
             refresh_now: bool) -> SecretValue:
        path = None
        if is_parameter(secret_id):
            # The extension's parameters endpoint (it has no refreshNow: a forced read of a parameter may
            # be answered from the agent's cache).
            path, query = self._parameters_path, {"name": api_name(secret_id), "withDecryption": "true"}
            chosen = selector(secret_id, version_id, version_stage)
            if chosen is not None:
                query["version" if version_id is not None else "label"] = chosen
        else:
            query = {"secretId": secret_id}
            if version_id is not None:
                query["versionId"] = version_id
            if version_stage is not None:
                query["versionStage"] = version_stage
            if refresh_now:
                query["refreshNow"] = "true"
        token = self._current_token()
        try:
            status, reason, body = self._request(query, token, path)
            if status == 403 and self._explicit_token is None:
                fresh = self._read_token()
                if fresh != token:
                    self._token = fresh
                    status, reason, body = self._request(query, fresh, path)
        except (OSError, http.client.HTTPException) as e:  # refused, reset, timeout, bad status line
            raise SecretUnavailableError(
                f"Secrets Manager Agent at {self.endpoint} unreachable reading secret {secret_id!r} "
                f"({type(e).__name__})", secret_id=secret_id,
            ) from e
        if status == 200:
            try:
                if path is not None:
                    return self._parameter_value(body, secret_id, version_id, version_stage)
                return self._to_value(body, secret_id)
            finally:
                del body  # a failed parse must not leave the answer in the traceback's frames
        raise self._error(status, reason, body, secret_id)

    def _error(self, status: int, reason: str, body: bytes, secret_id: str) -> SecretCacheError:
        code, message = _error_text(body)
        if status == 403 and code is None:
            return SecretAccessDeniedError(
                f"the Secrets Manager Agent rejected the token (HTTP 403 {message or reason}) reading secret "
                f"{secret_id!r}", secret_id=secret_id,
            )
        if code is None and status < 500 and status != 429:
            # Not an AWS error: the agent refused the request itself (unknown parameter, wrong path).
            return SecretCacheError(
                f"Secrets Manager Agent at {self.endpoint} answered HTTP {status} {message or reason} "
                f"reading secret {secret_id!r}", secret_id=secret_id,
            )
        message = message or f"HTTP {status} {reason}"
        return error_for_code(code, message, secret_id=secret_id, http_status=status)

    def _to_value(self, body: bytes, secret_id: str) -> SecretValue:
        """The value of a 200 answer. A malformed one (not a JSON object, no value, a value of the wrong
        type, invalid base64, over the size limit) is the agent's fault, not the secret's: the transient
        SecretUnavailableError naming the secret id, raised once the answer is dropped, so no frame of
        the traceback holds it (and nothing is chained: a decode error's ``.doc`` is the body)."""
        outcome = _answer(body, secret_id)
        del body
        if isinstance(outcome, SecretValue):
            return outcome
        raise SecretUnavailableError(f"Secrets Manager Agent sent a malformed answer for secret {secret_id!r}: "
                                     f"{outcome}", secret_id=secret_id)

    def _parameter_value(self, body: bytes, secret_id: str, version_id: str | None,
                         version_stage: str | None) -> SecretValue:
        """The value of the parameters endpoint's 200 answer (``{"Parameter": {...}}``, GetParameter's
        shape); a malformed one is transient, raised once the body is dropped."""
        try:
            doc: Any = json.loads(body)
        except (ValueError, RecursionError):
            doc = None
        del body
        parameter = doc.get("Parameter") if isinstance(doc, dict) else None
        del doc
        if isinstance(parameter, dict):
            parameter["LastModifiedDate"] = _parse_date(parameter.get("LastModifiedDate"))
        chosen = selector(secret_id, version_id, version_stage)
        try:
            return _ssm.to_value(parameter, secret_id, chosen if version_id is None else None, "the agent")
        finally:
            del parameter  # a malformed answer raises: this frame must not hold it in the traceback

    def batch_get_secret_values(
        self, secret_ids: Sequence[str]
    ) -> tuple[list[SecretValue], dict[str, SecretCacheError]]:
        """One GET per secret. Permanent failures are collected by id; a transient one (the agent is
        down, timing out or throttled) raises at once: asking it again for each id would not help."""
        values: list[SecretValue] = []
        errors: dict[str, SecretCacheError] = {}
        for secret_id in dict.fromkeys(secret_ids):
            try:
                values.append(self.get_secret_value(secret_id))
            except SecretUnavailableError:
                raise
            except SecretCacheError as e:
                errors[secret_id] = e
        return values, errors
