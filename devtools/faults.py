"""Fault injection for the reliability tests: an HTTP proxy in front of moto, and database disruptions.

AWS side. :class:`FaultProxy` is a ``ThreadingHTTPServer`` on 127.0.0.1:0 that forwards Secrets Manager
requests to moto's HTTP server and, per request, applies a *mode* instead (research/test-infra.md §2):

=================  ========================================================================
mode               what the client sees
=================  ========================================================================
``pass``           moto's answer
``throttle``       HTTP 400 ``ThrottlingException``   (these three: ``secretcache.testing.FAULTS``, the
``5xx``            HTTP 500 ``InternalServiceError``  fault names InMemoryBackend, the botocore hook
``denied``         HTTP 400 ``AccessDeniedException`` and the benchmarks' client share)
``503``            HTTP 503 ``ServiceUnavailable``
``502-html``       HTTP 502 with an HTML body (a load balancer in the way)
``hang``           nothing, until the proxy is cleared (past any sane ``read_timeout``)
``fin``            the connection closed cleanly before any response
``rst``            the connection reset (SO_LINGER 0) before any response
``slow``           moto's answer after ``slow_seconds`` (below the client's read_timeout)
``truncate``       moto's answer with a Content-Length promising more than the body sent
``garbled``        HTTP 200 whose body is not JSON
``trickle``        moto's answer, ``trickle_bytes`` at a time with ``trickle_pause`` between chunks:
                   each pause is under botocore's ``read_timeout`` (no read ever times out), the
                   whole answer takes far longer than a ``fetch_timeout`` (released by ``clear()``)
``rewrite``        moto's answer for the secret asked, with ``rewrite_fields`` (default ``Name`` and
                   ``ARN``) taken from the AWSCURRENT answer of the secret ``rewrite_as`` maps it to:
                   an answer crossed between processes (BatchGetSecretValue: per entry)
a permanent code   HTTP 400 with that AWS error code (``PERMANENT`` lists them with messages)
=================  ========================================================================

Faults apply only to the operations in ``ops`` (default: the two read calls) and, when ``targets`` is
set, only to requests naming one of those secrets, so a test can set up secrets through the same proxy.
Each request is recorded as ``(operation, secret_id, mode)`` (``secret_id`` None for a batch call).

``python -m devtools.faults`` runs moto and a proxy in a process of their own (:func:`serve`), driven with
:class:`RemoteFaults` over the proxy's control path ``/__faults__/``.

Database side. :func:`terminate_pg_backends` / :func:`kill_mysql_connections` drop every connection of
one user (``pg_terminate_backend`` / MariaDB ``KILL``), and :class:`PostgresRestarter` stops and starts a
private PostgreSQL cluster through ``pg_ctl`` (connections drop, the port stays).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import struct
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Collection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from secretcache.testing import FAULTS

__all__ = [
    "PERMANENT",
    "TRANSIENT",
    "FaultProxy",
    "PostgresRestarter",
    "RemoteFaults",
    "Seen",
    "kill_mysql_connections",
    "terminate_pg_backends",
]

PERMANENT: dict[str, str] = {
    "ResourceNotFoundException": "Secrets Manager can't find the specified secret.",
    "AccessDeniedException": "User is not authorized to perform: secretsmanager:GetSecretValue",
    "DecryptionFailure":
        "Secrets Manager can't decrypt the protected secret text using the provided KMS key.",
    "InvalidRequestException":
        "You can't perform this operation on the secret because it was marked for deletion.",
    "InvalidParameterException": "The parameter SecretId is not valid.",
}
"""Every permanent error code the service documents for GetSecretValue, with a representative message."""

TRANSIENT = ("throttle", "5xx", "503", "502-html", "hang", "fin", "rst", "truncate", "garbled")
"""Modes that fail a request transiently (``slow`` succeeds; permanent codes are in ``PERMANENT``)."""

ANSWERING = ("pass", "slow", "trickle", "rewrite")
"""Modes that answer with moto's 200 (``trickle`` slowly, ``rewrite`` with another secret's fields)."""

_AMZ_JSON = "application/x-amz-json-1.1"
CONTROL = "/__faults__/"
_DROP = {"content-length", "transfer-encoding", "connection", "date", "server"}
_HANG_LIMIT = 30.0  # a hung request is released at the latest after this, so no thread lingers forever


class Seen(NamedTuple):
    """One request the proxy handled."""

    operation: str
    secret_id: str | None
    mode: str


class FaultProxy:
    """Forward to ``upstream`` (moto's HTTP server), injecting the scripted fault modes.

    ``script(*modes)`` queues modes for the next matching requests, one each; ``fail(mode)`` sets a
    standing mode for every matching request after the script runs out; ``clear()`` removes both and
    releases hung requests. Use as a context manager, or call ``close()``.
    """

    def __init__(
        self,
        upstream: str,
        *,
        ops: tuple[str, ...] = ("GetSecretValue", "BatchGetSecretValue"),
        slow_seconds: float = 0.05,
        trickle_bytes: int = 8,
        trickle_pause: float = 0.25,
    ) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.ops = ops
        self.slow_seconds = slow_seconds
        self.trickle_bytes = trickle_bytes
        self.trickle_pause = trickle_pause
        """``trickle``: bytes per chunk and seconds between chunks (keep the pause under the read_timeout)."""
        self.rewrite_as: dict[str, str] = {}
        """``rewrite``: secret asked (id as sent, or the answer's Name/ARN) -> the secret whose fields answer."""
        self.rewrite_fields: tuple[str, ...] = ("Name", "ARN")
        """``rewrite``: the answer fields replaced by the other secret's (add SecretString, VersionId...)."""
        self.seen: list[Seen] = []
        self.targets: Collection[str] | None = None
        """When set, faults apply only to requests naming one of these SecretIds (a batch: any of them)."""
        self._lock = threading.Lock()
        self._script: deque[str] = deque()
        self._standing = "pass"
        self._release = threading.Event()
        self._server = _QuietServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # -- the plan -------------------------------------------------------------------------------

    def script(self, *modes: str) -> None:
        """The next ``len(modes)`` matching requests take these modes, in order."""
        for mode in modes:
            _check_mode(mode)
        with self._lock:
            self._script.extend(modes)

    def fail(self, mode: str) -> None:
        """Every matching request after the script takes ``mode`` until ``clear()``."""
        _check_mode(mode)
        with self._lock:
            self._standing = mode

    def rewrite(self, mapping: dict[str, str], *, fields: tuple[str, ...] = ("Name", "ARN")) -> None:
        """Set what ``rewrite`` answers with: for each secret asked, ``fields`` of ``mapping[asked]``'s answer."""
        with self._lock:
            self.rewrite_as = dict(mapping)
            self.rewrite_fields = tuple(fields)

    def clear(self) -> None:
        """Back to passing everything through; hung and trickling requests are released (dropped)."""
        with self._lock:
            self._script.clear()
            self._standing = "pass"
            release, self._release = self._release, threading.Event()
        release.set()

    def count(self, operation: str = "GetSecretValue", secret_id: str | None = None) -> int:
        """Requests seen for ``operation`` (and ``secret_id``), faulted or not."""
        with self._lock:
            return sum(1 for s in self.seen if s.operation == operation and secret_id in (None, s.secret_id))

    def reset_counts(self) -> None:
        with self._lock:
            self.seen.clear()

    def close(self) -> None:
        self.clear()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- used by the handler --------------------------------------------------------------------

    def _next_mode(self, operation: str, secret_ids: list[str]) -> tuple[str, threading.Event]:
        targets = self.targets
        with self._lock:
            applies = operation in self.ops and (targets is None or any(i in targets for i in secret_ids))
            mode = "pass"
            if applies:
                mode = self._script.popleft() if self._script else self._standing
            self.seen.append(Seen(operation, secret_ids[0] if len(secret_ids) == 1 else None, mode))
            return mode, self._release


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], OSError):
            return  # a client that reset or timed out mid-request: expected under fault injection
        super().handle_error(request, client_address)


def _check_mode(mode: str) -> None:
    if mode not in (*ANSWERING, *TRANSIENT) and mode not in PERMANENT and mode not in FAULTS:
        raise ValueError(f"unknown fault mode {mode!r}")


def _error_body(code: str, message: str) -> bytes:
    return json.dumps({"__type": code, "message": message, "Message": message}).encode()


def _handler_for(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in two writes: without NODELAY, Nagle's algorithm and the client's
            # delayed ACK add ~40 ms to every answer.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the test output stays clean; the proxy's record is ``proxy.seen``

        def do_POST(self) -> None:
            try:
                if self.path.startswith(CONTROL):
                    self._control()
                else:
                    self._handle()
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client gave up first (it timed out): nothing to answer

        def _control(self) -> None:
            """The plan, driven from another process: ``POST /__faults__/{fail,script,clear,count,rewrite}``."""
            request = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            action = self.path[len(CONTROL):]
            answer: dict[str, Any] = {}
            if action == "fail":
                proxy.targets = set(request["targets"]) if request.get("targets") is not None else None
                proxy.fail(request["mode"])
            elif action == "script":
                proxy.script(*request["modes"])
            elif action == "clear":
                proxy.clear()
                proxy.targets = None
            elif action == "rewrite":
                proxy.rewrite(request["mapping"], fields=tuple(request.get("fields", ("Name", "ARN"))))
            elif action == "count":
                operation = request.get("operation", "GetSecretValue")
                answer["count"] = proxy.count(operation, request.get("secret_id"))
            else:
                self._reply(404, "application/json", b"{}")
                return
            self._reply(200, "application/json", json.dumps(answer).encode())

        def _handle(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            operation = (self.headers.get("X-Amz-Target") or ".").rpartition(".")[2]
            secret_ids: list[str] = []
            try:
                payload = json.loads(body or b"{}")
                if isinstance(payload, dict):
                    single = payload.get("SecretId")
                    secret_ids = [single] if single is not None else payload.get("SecretIdList", [])
            except ValueError:
                pass
            mode, release = proxy._next_mode(operation, secret_ids)  # noqa: SLF001  (its own proxy)
            if mode in PERMANENT:
                self._reply(400, _AMZ_JSON, _error_body(mode, PERMANENT[mode]))
            elif mode in FAULTS:
                code, status, message = FAULTS[mode]
                self._reply(status, _AMZ_JSON, _error_body(code, message))
            elif mode == "503":
                self._reply(503, _AMZ_JSON, _error_body("ServiceUnavailable", "injected 503"))
            elif mode == "502-html":
                self._reply(502, "text/html", b"<html><body><h1>502 Bad Gateway</h1></body></html>")
            elif mode == "hang":
                release.wait(_HANG_LIMIT)
                self._drop(reset=False)
            elif mode in ("fin", "rst"):
                self._drop(reset=mode == "rst")
            elif mode == "garbled":
                self._reply(200, _AMZ_JSON, b'{"ARN": "arn:aws:secretsmanager:us-east-1:1234')
            else:
                if mode == "slow":
                    release.wait(proxy.slow_seconds)
                try:
                    status, headers, answer = self._forward(body)
                    if mode == "rewrite" and status == 200:
                        answer = self._rewritten(operation, secret_ids, answer)
                except OSError:  # moto is gone (shutting down): answer as a load balancer would
                    self._reply(502, "text/html", b"<html><body>502 Bad Gateway (no upstream)</body></html>")
                    return
                if mode == "trickle":
                    self._trickle(status, headers, answer, release)
                elif mode == "truncate":
                    self._reply(status, headers.get("content-type", _AMZ_JSON), answer[: len(answer) // 2],
                                length=len(answer), extra=headers)
                    self._drop(reset=False)
                else:
                    self._reply(status, headers.get("content-type", _AMZ_JSON), answer, extra=headers)

        def _rewritten(self, operation: str, secret_ids: list[str], answer: bytes) -> bytes:
            """moto's answer with the mapped fields of each entry taken from another secret's answer."""
            with proxy._lock:  # noqa: SLF001  (the handler belongs to its proxy)
                mapping, fields = dict(proxy.rewrite_as), proxy.rewrite_fields
            document = json.loads(answer)
            if operation == "BatchGetSecretValue":
                entries = document.get("SecretValues", [])
            else:
                entries = [document]
                secret_ids = secret_ids[:1]
            for entry in entries:
                keys = [*secret_ids, entry.get("Name"), entry.get("ARN")] if len(entries) == 1 else \
                    [entry.get("Name"), entry.get("ARN")]
                target = next((mapping[k] for k in keys if k in mapping), None)
                if target is None:
                    continue
                status, _, other = self._forward(json.dumps({"SecretId": target}).encode(),
                                                 target_op="GetSecretValue")
                assert status == 200, f"rewrite: reading {target!r} upstream gave HTTP {status}"
                source = json.loads(other)
                for field in fields:
                    if field in source:
                        entry[field] = source[field]
                    else:
                        entry.pop(field, None)  # e.g. SecretBinary in place of SecretString
            return json.dumps(document).encode()

        def _trickle(self, status: int, headers: dict[str, str], answer: bytes, release: threading.Event) -> None:
            """Send the headers, then the body a few bytes at a time; stop (and drop) once released."""
            self.send_response(status)
            for name, value in headers.items():
                if name != "content-type":
                    self.send_header(name, value)
            self.send_header("Content-Type", headers.get("content-type", _AMZ_JSON))
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.flush()
            step = max(1, proxy.trickle_bytes)
            for start in range(0, len(answer), step):
                if release.wait(proxy.trickle_pause):  # cleared or closed: free this thread at once
                    self._drop(reset=False)
                    return
                self.wfile.write(answer[start:start + step])
                self.wfile.flush()

        def _forward(self, body: bytes, *, target_op: str | None = None) -> tuple[int, dict[str, str], bytes]:
            conn = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=30)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _DROP}
                if target_op is not None:
                    headers = {k: v for k, v in headers.items() if k.lower() != "x-amz-target"}
                    headers["X-Amz-Target"] = f"secretsmanager.{target_op}"
                conn.request("POST", self.path, body=body, headers=headers)
                response = conn.getresponse()
                answer = response.read()
                kept = {k.lower(): v for k, v in response.getheaders() if k.lower() not in _DROP}
                return response.status, kept, answer
            finally:
                conn.close()

        def _reply(
            self, status: int, content_type: str, body: bytes, *, length: int | None = None,
            extra: dict[str, str] | None = None,
        ) -> None:
            self.send_response(status)
            for name, value in (extra or {}).items():
                if name != "content-type":
                    self.send_header(name, value)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body) if length is None else length))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()

        def _drop(self, *, reset: bool) -> None:
            self.close_connection = True
            try:
                if reset:  # RST: linger 0, then close; the peer sees "connection reset by peer"
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                else:  # FIN: an orderly shutdown with nothing sent
                    self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # the client already went away (it timed out first)

        def finish(self) -> None:
            with contextlib.suppress(OSError, ValueError):  # after a reset the stream is closed under us
                super().finish()

    return Handler


class RemoteFaults:
    """Drive a :class:`FaultProxy` that runs in another process (``python -m devtools.faults``) over HTTP."""

    def __init__(self, proxy_url: str) -> None:
        self.url = proxy_url

    def _post(self, action: str, **payload: Any) -> dict[str, Any]:
        parts = urlsplit(self.url)
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=30)
        try:
            conn.request("POST", CONTROL + action, body=json.dumps(payload),
                         headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            answer = response.read()
            assert response.status == 200, f"fault proxy control {action}: HTTP {response.status}"
            return json.loads(answer) if answer else {}
        finally:
            conn.close()

    def fail(self, mode: str, targets: Collection[str] | None = None) -> None:
        self._post("fail", mode=mode, targets=None if targets is None else sorted(targets))

    def script(self, *modes: str) -> None:
        self._post("script", modes=list(modes))

    def clear(self) -> None:
        self._post("clear")

    def rewrite(self, mapping: dict[str, str], *, fields: tuple[str, ...] = ("Name", "ARN")) -> None:
        self._post("rewrite", mapping=mapping, fields=list(fields))

    def count(self, operation: str = "GetSecretValue", secret_id: str | None = None) -> int:
        return int(self._post("count", operation=operation, secret_id=secret_id)["count"])


def serve() -> None:
    """Run moto's HTTP server (with the G1 fix) and a FaultProxy in front of it until stdin closes.

    Prints one JSON line ``{"moto": URL, "proxy": URL}``. Load tests run it in a subprocess so that moto
    and the proxy do not compete for the GIL with the process under test.
    """
    import logging
    import sys

    from moto.server import ThreadedMotoServer

    from secretcache.testing import patch_moto_staging_labels

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    patch_moto_staging_labels()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    upstream = f"http://{host}:{port}"
    with FaultProxy(upstream) as proxy:
        print(json.dumps({"moto": upstream, "proxy": proxy.url}), flush=True)
        sys.stdin.read()  # the parent closes our stdin (or dies) to stop us
    server.stop()


# -- the database side ------------------------------------------------------------------------------


def terminate_pg_backends(admin_connect: Callable[[], Any], user: str) -> int:
    """``pg_terminate_backend`` every session of ``user``; return how many were terminated.

    ``admin_connect`` returns a psycopg connection with the rights to do it (a superuser).
    """
    conn = admin_connect()
    try:
        conn.autocommit = True
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE usename = %s AND pid <> pg_backend_pid()",
            (user,),
        ).fetchall()
    finally:
        conn.close()
    return sum(1 for (ok,) in rows if ok)


def kill_mysql_connections(admin_connect: Callable[[], Any], user: str) -> int:
    """MariaDB/MySQL ``KILL`` every connection of ``user``; return how many were killed."""
    conn = admin_connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT id FROM information_schema.processlist"
                        " WHERE user = %s AND id <> CONNECTION_ID()", (user,))
            killed = 0
            for (thread_id,) in cur.fetchall():
                try:
                    cur.execute(f"KILL {int(thread_id)}")
                    killed += 1
                except Exception as e:  # it ended between the query and the KILL
                    if getattr(e, "args", (None,))[0] != 1094:  # ER_NO_SUCH_THREAD
                        raise
        return killed
    finally:
        conn.close()


class PostgresRestarter:
    """Stop and start a private PostgreSQL cluster (``secretcache.demo.localdb.start_postgres``) on its own port.

    ``stop()`` ends every connection (``-m fast``) and refuses new ones until ``start()``; the server
    comes back with the same options (read from ``postmaster.opts``), data and passwords.
    """

    def __init__(self, data_dir: str, *, as_user: str | None = "postgres") -> None:
        import os
        import shlex
        from pathlib import Path

        root = Path(data_dir)
        self.data = root / "data" if (root / "data").is_dir() else root
        self.log = self.data.parent / "server.log"
        words = shlex.split((self.data / "postmaster.opts").read_text())
        self.pg_ctl = str(Path(words[0]).parent / "pg_ctl")
        options, skip = [], False
        for word in words[1:]:  # the server's own options, without its data directory
            if skip:
                skip = False
            elif word == "-D":
                skip = True
            else:
                options.append(word)
        self.options = " ".join(shlex.quote(o) for o in options)
        self.as_user = ["runuser", "-u", as_user, "--"] if as_user and os.geteuid() == 0 else []

    def _pg_ctl(self, *args: str) -> None:
        subprocess.run([*self.as_user, self.pg_ctl, "-D", str(self.data), *args], check=True,
                       capture_output=True, timeout=60)

    def stop(self) -> None:
        self._pg_ctl("-m", "fast", "-w", "stop")

    def start(self) -> None:
        self._pg_ctl("-l", str(self.log), "-o", self.options, "-w", "start")

    def restart(self) -> None:
        self.stop()
        self.start()


if __name__ == "__main__":
    serve()
