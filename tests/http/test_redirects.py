"""SecretAuth never sends its secret to another origin on a redirect: two real HTTP servers on 127.0.0.1
(two ports: two origins), every redirect status, every header scheme, httpx sync and async and requests.

The first server (the API) answers ``/redirect`` with the status and ``Location`` asked for and records
every request's headers; the second (somewhere else) records what it receives. The other origin must never
receive the secret, in any header; a redirect within the API's origin must still carry it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import requests

from secretcache import SecretCache
from secretcache.http import SecretAuth
from secretcache.testing import InMemoryBackend
from tests.fixtures.fix_canary import CANARY, canary_value

STATUSES = (301, 302, 303, 307, 308)


class Recorder:
    """An HTTP server on 127.0.0.1:0 recording (path, headers) of every request it gets."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, list[tuple[str, str]]]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                recorder.seen.append((self.path, list(self.headers.items())))
                parts = urlsplit(self.path)
                if parts.path == "/redirect":
                    query = parse_qs(parts.query)
                    self.send_response(int(query["status"][0]))
                    self.send_header("Location", query["to"][0])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = b"ok"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _any

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def texts(self) -> str:
        return json.dumps(self.seen)


@pytest.fixture
def api() -> Iterator[Recorder]:
    server = Recorder()
    yield server
    server.close()


@pytest.fixture
def elsewhere() -> Iterator[Recorder]:
    server = Recorder()
    yield server
    server.close()


TOKEN = canary_value("redirect-token")
PASSWORD = canary_value("redirect-password")


def scheme_cases() -> list[tuple[str, dict[str, Any], str, str]]:
    """(case id, SecretAuth kwargs, header name, the header value that carries the secret)."""
    basic = "Basic " + base64.b64encode(f"svc:{PASSWORD}".encode()).decode()
    return [
        ("bearer", {}, "Authorization", f"Bearer {TOKEN}"),
        ("basic", {"scheme": "Basic"}, "Authorization", basic),
        ("custom", {"scheme": None, "header": "X-Api-Key"}, "X-Api-Key", TOKEN),
        ("custom-scheme", {"scheme": "Token", "header": "X-Auth"}, "X-Auth", f"Token {TOKEN}"),
    ]


SCHEMES = scheme_cases()


@pytest.fixture
def cache() -> Iterator[SecretCache]:
    backend = InMemoryBackend({"api/token": TOKEN, "api/basic": json.dumps({"username": "svc", "password": PASSWORD})})
    with SecretCache(backend) as built:
        yield built


def auth_for(cache: SecretCache, kwargs: dict[str, Any]) -> SecretAuth:
    secret = "api/basic" if kwargs.get("scheme") == "Basic" else "api/token"
    return SecretAuth(secret, cache=cache, **kwargs)


def send(client: str, auth: SecretAuth, url: str, method: str = "GET") -> tuple[int, list[str]]:
    """One request following redirects; (final status, the URLs of every hop)."""
    if client == "requests":
        response = requests.request(method, url, auth=auth, timeout=10, data=b"body" if method == "POST" else None)
        return response.status_code, [r.url for r in response.history] + [response.url]
    if client == "httpx":
        with httpx.Client(auth=auth, follow_redirects=True, timeout=10) as sync_client:
            got = sync_client.request(method, url, content=b"body" if method == "POST" else None)
        return got.status_code, [str(r.url) for r in got.history] + [str(got.url)]

    async def main() -> httpx.Response:
        async with httpx.AsyncClient(auth=auth, follow_redirects=True, timeout=10) as async_client:
            return await async_client.request(method, url, content=b"body" if method == "POST" else None)

    got = asyncio.run(main())
    return got.status_code, [str(r.url) for r in got.history] + [str(got.url)]


def header_values(seen: list[tuple[str, list[tuple[str, str]]]], name: str) -> list[str]:
    return [value for _, headers in seen for key, value in headers if key.lower() == name.lower()]


CLIENTS = ("httpx", "httpx-async", "requests")


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize(("case", "kwargs", "header", "value"), SCHEMES, ids=[c[0] for c in SCHEMES])
def test_a_redirect_to_another_origin_never_carries_the_secret(
    api: Recorder, elsewhere: Recorder, cache: SecretCache, client: str, status: int,
    case: str, kwargs: dict[str, Any], header: str, value: str,
) -> None:
    target = f"{elsewhere.url}/landed"
    final, hops = send(client, auth_for(cache, kwargs), f"{api.url}/redirect?status={status}&to={target}")
    assert final == 200
    assert hops[-1] == target  # the redirect was followed
    assert header_values(api.seen, header) == [value]  # the API itself got the secret
    assert len(elsewhere.seen) == 1
    assert header_values(elsewhere.seen, header) == []
    text = elsewhere.texts()
    assert TOKEN not in text
    assert PASSWORD not in text
    assert CANARY not in text
    assert value not in text


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize(("case", "kwargs", "header", "value"), SCHEMES, ids=[c[0] for c in SCHEMES])
def test_a_redirect_within_the_origin_keeps_the_secret(
    api: Recorder, cache: SecretCache, client: str, status: int,
    case: str, kwargs: dict[str, Any], header: str, value: str,
) -> None:
    for to in ("/landed", f"{api.url}/landed"):  # relative and absolute Location
        api.seen.clear()
        final, hops = send(client, auth_for(cache, kwargs), f"{api.url}/redirect?status={status}&to={to}")
        assert final == 200
        assert hops[-1] == f"{api.url}/landed"
        assert [path for path, _ in api.seen] == [f"/redirect?status={status}&to={to}", "/landed"]
        assert header_values(api.seen, header) == [value, value]


@pytest.mark.parametrize("client", CLIENTS)
def test_a_chain_that_leaves_and_comes_back_never_shows_the_other_origin_the_secret(
    api: Recorder, elsewhere: Recorder, cache: SecretCache, client: str,
) -> None:
    back = f"{api.url}/landed"
    away = f"{elsewhere.url}/redirect?status=302&to={back}"
    final, hops = send(client, auth_for(cache, {"scheme": None, "header": "X-Api-Key"}),
                       f"{api.url}/redirect?status=307&to={away.replace('&', '%26').replace('?', '%3F')}")
    assert final == 200
    assert hops[-1] == back
    assert header_values(elsewhere.seen, "X-Api-Key") == []
    assert TOKEN not in elsewhere.texts()


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("status", [307, 308])
def test_a_post_replayed_to_another_origin_carries_its_body_not_the_secret(
    api: Recorder, elsewhere: Recorder, cache: SecretCache, client: str, status: int,
) -> None:
    target = f"{elsewhere.url}/landed"
    final, _ = send(client, auth_for(cache, {"scheme": None, "header": "X-Api-Key"}),
                    f"{api.url}/redirect?status={status}&to={target}", method="POST")
    assert final == 200
    assert header_values(elsewhere.seen, "X-Api-Key") == []
    assert TOKEN not in elsewhere.texts()


def test_a_user_trace_extension_still_runs(api: Recorder, elsewhere: Recorder, cache: SecretCache) -> None:
    events: list[str] = []
    auth = auth_for(cache, {"scheme": None, "header": "X-Api-Key"})
    with httpx.Client(auth=auth, follow_redirects=True, timeout=10) as client:
        client.get(f"{api.url}/redirect?status=302&to={elsewhere.url}/landed",
                   extensions={"trace": lambda name, info: events.append(name)})
    assert events.count("http11.send_request_headers.started") == 2
    assert header_values(elsewhere.seen, "X-Api-Key") == []
