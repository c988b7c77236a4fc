"""An HTTP API on 127.0.0.1 that accepts exactly one token at a time, rotated as single-user rotation does.

Secrets Manager is an InMemoryBackend: ``begin_rotation`` puts the new token as AWSPENDING (createSecret)
and the API switches to it at once (setSecret: the old token is refused from then on); ``finish_rotation``
moves AWSCURRENT to it later (finishSecret). ``/status/<code>`` always answers that code.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from secretcache.testing import InMemoryBackend
from tests.fixtures.fix_canary import canary_value

SECRET = "api/token"


class TokenAPI(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, backend: InMemoryBackend, token: str, *, scheme: str = "Bearer",
                 header: str = "Authorization") -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.backend = backend
        self.accepted = token
        self.scheme = scheme
        self.header = header
        self.lock = threading.Lock()
        self.sends: Counter[str] = Counter()  # by path
        self.ok = 0
        self.refused = 0
        self.bodies: list[bytes] = []

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def expected(self) -> str:
        return self.accepted if self.scheme == "" else f"{self.scheme} {self.accepted}"

    def begin_rotation(self) -> tuple[str, str]:
        """createSecret + setSecret: the new token is AWSPENDING and the only one the API accepts."""
        token = canary_value("token")
        version = self.backend.put_secret(SECRET, token, stages=("AWSPENDING",))
        with self.lock:
            self.accepted = token
        return token, version

    def finish_rotation(self, version: str) -> None:
        """finishSecret: AWSCURRENT moves to the new version."""
        current = next(v for v, stages in self.backend.version_stages(SECRET).items() if "AWSCURRENT" in stages)
        self.backend.update_version_stage(SECRET, "AWSCURRENT", move_to_version_id=version,
                                          remove_from_version_id=current)

    def wait_ok(self, more: int, timeout: float = 20.0) -> None:
        """Wait (bounded) until ``more`` requests more have been accepted."""
        target = self.ok + more
        deadline = time.monotonic() + timeout
        while self.ok < target:
            assert time.monotonic() < deadline, f"only {self.ok} of {target} requests accepted in time"
            time.sleep(0.002)


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""


class _Handler(BaseHTTPRequestHandler):
    server: TokenAPI
    protocol_version = "HTTP/1.1"

    def _handle(self) -> None:
        body = _read_body(self)
        api = self.server
        path = self.path
        with api.lock:
            api.sends[path] += 1
            if body:
                api.bodies.append(body)
            if path.startswith("/status/"):
                status = int(path.rsplit("/", 1)[1])
            elif self.headers.get(api.header) == api.expected():
                status = 200
                api.ok += 1
            else:
                status = 401
                api.refused += 1
        data = json.dumps({"status": status}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = _handle

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def token_api(**kwargs: Any) -> Iterator[TokenAPI]:
    backend = InMemoryBackend()
    token = canary_value("token")
    backend.put_secret(SECRET, token)
    api = TokenAPI(backend, token, **kwargs)
    thread = threading.Thread(target=api.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        api.shutdown()
        api.server_close()
        thread.join(5)


def basic(username: str, password: str) -> str:
    return base64.b64encode(f"{username}:{password}".encode()).decode()


def run_rotations(api: TokenAPI, rotations: int, per_phase: int,
                  wait_ok: Callable[[int], None] | None = None) -> None:
    wait = wait_ok or api.wait_ok
    wait(per_phase)
    for _ in range(rotations):
        _, version = api.begin_rotation()
        wait(per_phase)
        api.finish_rotation(version)
        wait(per_phase)
