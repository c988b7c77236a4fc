"""A real OAuth 2 token endpoint and API on 127.0.0.1, whose client secret rotates as AWS rotations do.

``POST /token`` checks the client credentials (HTTP Basic or form body) against the one secret it
accepts (``invalid_client``, 401, for any other) and issues a new token with ``expires_in``;
``GET|POST /api`` answers 200 for a token it issued and has not revoked, else 401 (``refuse_all`` makes
it refuse every token). ``/redirect?to=URL`` answers 302. Secrets Manager is an InMemoryBackend holding
``{"client_id", "client_secret"}`` under :data:`SECRET`. Everything is counted.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from secretcache.testing import InMemoryBackend
from tests.fixtures.fix_canary import canary_value

SECRET = "api/oauth-client"
CLIENT_ID = "reports-service"


def client_secret_json(client_secret: str, client_id: str = CLIENT_ID) -> str:
    return json.dumps({"client_id": client_id, "client_secret": client_secret})


class OAuthServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, backend: InMemoryBackend, client_secret: str, *, expires_in: Any = 3600) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.backend = backend
        self.accepted_secret = client_secret
        self.expires_in = expires_in
        self.lock = threading.Lock()
        self.tokens: set[str] = set()
        self.token_requests = 0
        self.token_refused = 0
        self.auth_methods: list[str] = []
        self.api_sends = 0
        self.api_ok = 0
        self.api_refused = 0
        self.refuse_all = False
        self.token_delay = 0.0  # seconds each token answer waits (makes concurrent token requests overlap)
        self.headers_seen: list[dict[str, str]] = []  # of /api and /echo requests

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def rotate(self, *, stage: str = "AWSCURRENT") -> str:
        """A new client secret: the endpoint accepts only it from now on and revokes every token.

        ``stage="AWSCURRENT"``: the rotation is over (finishSecret); ``"AWSPENDING"``: between setSecret
        and finishSecret of a single-user rotation."""
        secret = canary_value("client-secret")
        version = self.backend.put_secret(SECRET, client_secret_json(secret), stages=(stage,))
        with self.lock:
            self.accepted_secret = secret
            self.tokens.clear()
        return version

    def finish(self, version: str) -> None:
        current = next(v for v, s in self.backend.version_stages(SECRET).items() if "AWSCURRENT" in s)
        self.backend.update_version_stage(SECRET, "AWSCURRENT", move_to_version_id=version,
                                          remove_from_version_id=current)

    def revoke_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()


def _credentials(handler: BaseHTTPRequestHandler, form: dict[str, list[str]]) -> tuple[str, str, str]:
    header = handler.headers.get("Authorization", "")
    if header.startswith("Basic "):
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        return "basic", unquote(user), unquote(password)
    return "post", form.get("client_id", [""])[0], form.get("client_secret", [""])[0]


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    length = int(handler.headers.get("Content-Length") or 0)
    if length:
        return handler.rfile.read(length)
    if handler.headers.get("Transfer-Encoding", "").lower() != "chunked":
        return b""
    chunks = []
    while size := int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16):
        chunks.append(handler.rfile.read(size))
        handler.rfile.readline()
    while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
        pass
    return b"".join(chunks)


class _Handler(BaseHTTPRequestHandler):
    server: OAuthServer
    protocol_version = "HTTP/1.1"

    def _answer(self, status: int, doc: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _handle(self) -> None:
        body = _read_body(self)
        server = self.server
        path = urlsplit(self.path).path
        if path == "/token":
            self._token(parse_qs(body.decode()))
        elif path == "/redirect":
            target = parse_qs(urlsplit(self.path).query)["to"][0]
            self._answer(302, {}, {"Location": target})
        elif path in ("/api", "/echo"):
            with server.lock:
                server.headers_seen.append(dict(self.headers.items()))
                if path == "/echo":
                    status = 200
                else:
                    server.api_sends += 1
                    header = self.headers.get("Authorization", "")
                    ok = not server.refuse_all and header.startswith("Bearer ") and header[7:] in server.tokens
                    status = 200 if ok else 401
                    if ok:
                        server.api_ok += 1
                    else:
                        server.api_refused += 1
            self._answer(status, {"status": status},
                         {} if status == 200 else {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        else:
            self._answer(404, {})

    def _token(self, form: dict[str, list[str]]) -> None:
        server = self.server
        method, client_id, client_secret = _credentials(self, form)
        if server.token_delay:
            time.sleep(server.token_delay)
        with server.lock:
            server.token_requests += 1
            server.auth_methods.append(method)
            grant = form.get("grant_type", [""])[0]
            if grant != "client_credentials":
                status, doc = 400, {"error": "unsupported_grant_type"}
            elif client_id != CLIENT_ID or client_secret != server.accepted_secret:
                server.token_refused += 1
                status, doc = 401, {"error": "invalid_client", "error_description": "bad client secret"}
            else:
                token = canary_value("access-token")
                server.tokens.add(token)
                status = 200
                doc = {"access_token": token, "token_type": "Bearer"}
                if server.expires_in is not None:
                    doc["expires_in"] = server.expires_in
                if "scope" in form:
                    doc["scope"] = form["scope"][0]
        self._answer(status, doc, {"Cache-Control": "no-store"})

    do_GET = do_POST = _handle

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def oauth_server(**kwargs: Any) -> Iterator[OAuthServer]:
    backend = InMemoryBackend()
    secret = canary_value("client-secret")
    backend.put_secret(SECRET, client_secret_json(secret))
    server = OAuthServer(backend, secret, **kwargs)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
