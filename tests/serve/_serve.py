"""``secretcache serve`` in a subprocess, for the tests: start it, talk to it, stop it, read its log."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.canary import CANARY

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "serve-test-token"  # a test token  # nosec B105
READY = "secretcache serve: listening on "
_SCRUB = ("AWS_TOKEN", "AWS_SESSION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_ENDPOINT_URL",
          "AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_PROFILE")


def serve_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUB}
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1",
               AWS_EC2_METADATA_DISABLED="true", PYTHONPATH=str(ROOT))
    env.update(extra or {})
    return env


class Serve:
    """A running ``secretcache serve``; ``stderr`` is everything it logged so far."""

    def __init__(self, args: list[str], env: Mapping[str, str], *, ready_timeout: float = 20.0,
                 must_start: bool = True) -> None:
        self.proc = subprocess.Popen(  # nosec B603
            [sys.executable, "-m", "secretcache", "serve", *args], env=dict(env), cwd=ROOT,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self._lines: list[str] = []
        self._ready = threading.Event()
        self.where = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._ready.wait(ready_timeout):
            self.kill()
            raise AssertionError(f"serve did not start: {self.stderr}")
        if not self.where and must_start:
            raise AssertionError(f"serve exited at start ({self.proc.wait(5)}): {self.stderr}")

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._lines.append(line)
            if line.startswith(READY):
                self.where = line[len(READY):].strip()
                self._ready.set()
        self._ready.set()

    @property
    def stderr(self) -> str:
        return "".join(self._lines)

    @property
    def port(self) -> int:
        return int(self.where.rpartition(":")[2])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def connection(self, timeout: float = 15.0) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, path: str, *, token: str | None = TOKEN, method: str = "GET",
                headers: Mapping[str, str] | None = None) -> tuple[int, bytes]:
        all_headers = dict(headers or {})
        if token is not None:
            all_headers.setdefault("X-Aws-Parameters-Secrets-Token", token)
        conn = self.connection()
        try:
            conn.request(method, path, headers=all_headers)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM; the exit code. Fails when the log holds a canary value."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("serve did not exit after SIGTERM") from None
        self._reader.join(5)
        assert CANARY not in self.stderr, "a secret value reached serve's log"
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@contextmanager
def serving(upstream: str, *args: str, env: Mapping[str, str] | None = None, token: str | None = TOKEN,
            **kwargs: Any) -> Iterator[Serve]:
    extra = {"AWS_TOKEN": token} if token is not None else {}
    extra.update(env or {})
    server = Serve(["--port", "0", "--endpoint-url", upstream, "--log-level", "DEBUG", *args],
                   serve_env(extra), **kwargs)
    try:
        yield server
    finally:
        code = server.stop()
        assert code == 0, server.stderr


def idle_socket(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)
