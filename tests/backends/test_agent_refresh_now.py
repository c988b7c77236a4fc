"""Forced reads through AgentBackend send refreshNow=true, so they bypass the agent's own cache.

The fake agent (127.0.0.1) caches like the real one: it answers from its cache unless refreshNow=true.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from secretcache import SecretCache
from secretcache.backends import AgentBackend
from secretcache.credentials import auth_stats, login
from secretcache.testing import InMemoryBackend
from tests.fixtures.fix_canary import canary_value

TOKEN = "agent-token"


class CachingAgent(ThreadingHTTPServer):
    """The agent's API over an InMemoryBackend, with the agent's own (ttl-less) cache."""

    daemon_threads = True

    def __init__(self, store: InMemoryBackend) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.store = store
        self.cached: dict[tuple[str, str | None], dict[str, Any]] = {}
        self.queries: list[dict[str, str]] = []
        self.lock = threading.Lock()

    def answer(self, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.queries.append(query)
        key = (query["secretId"], query.get("versionStage"))
        if query.get("refreshNow") == "true" or key not in self.cached:
            try:
                value = self.store.get_secret_value(query["secretId"], version_stage=query.get("versionStage"))
            except Exception as e:
                return 400, {"__type": getattr(e, "code", None) or "ResourceNotFoundException", "message": "no"}
            self.cached[key] = {"Name": value.name, "ARN": value.arn, "VersionId": value.version_id,
                                "SecretString": value.secret_string, "VersionStages": list(value.version_stages)}
        return 200, self.cached[key]


class _Handler(BaseHTTPRequestHandler):
    server: CachingAgent

    def do_GET(self) -> None:
        if self.headers.get("X-Aws-Parameters-Secrets-Token") != TOKEN:
            status, body = 403, {"message": "bad token"}
        else:
            status, body = self.server.answer(dict(parse_qsl(urlsplit(self.path).query)))
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def agent() -> Iterator[CachingAgent]:
    server = CachingAgent(InMemoryBackend())
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def cache_over(agent: CachingAgent) -> SecretCache:
    host, port = agent.server_address[:2]
    return SecretCache(AgentBackend(f"http://{host}:{port}", token=TOKEN, timeout=5))


def test_refresh_through_the_agent_sends_refresh_now_and_sees_a_rotation(agent: CachingAgent) -> None:
    old, new = canary_value("old"), canary_value("new")
    agent.store.put_secret("app/key", old)
    with cache_over(agent) as cache:
        assert cache.get_secret_string("app/key") == old
        assert "refreshNow" not in agent.queries[-1]  # plain reads use the agent's cache
        agent.store.rotate("app/key", new)
        assert cache.refresh("app/key").secret_string == new
        assert agent.queries[-1]["refreshNow"] == "true"
        assert cache.get_secret_string("app/key") == new


def test_a_plain_backend_call_does_not_send_refresh_now(agent: CachingAgent) -> None:
    agent.store.put_secret("app/key", canary_value("v"))
    host, port = agent.server_address[:2]
    backend = AgentBackend(f"http://{host}:{port}", token=TOKEN)
    backend.get_secret_value("app/key", version_stage="AWSCURRENT")
    backend.refresh_secret_value("app/key", version_stage="AWSCURRENT")
    assert [q.get("refreshNow") for q in agent.queries] == [None, "true"]


class Refused(Exception):
    pass


def test_the_rotation_policys_forced_fetches_send_refresh_now(agent: CachingAgent) -> None:
    old, new = canary_value("old"), canary_value("new")
    agent.store.put_secret("app/login", old)
    accepted = {old}
    with cache_over(agent) as cache:
        def connect(secret: Any) -> str:
            if secret.secret_string not in accepted:
                raise Refused("refused")
            return "connected"

        assert login("app/login", connect, is_auth_failure=lambda e: isinstance(e, Refused), cache=cache) \
            == "connected"
        # the server's password moves and Secrets Manager follows; the agent still caches the old value
        agent.store.rotate("app/login", new)
        accepted = {new}
        assert cache.get_secret_string("app/login") == old  # the library's own cache (long ttl)
        agent.queries.clear()
        assert login("app/login", connect, is_auth_failure=lambda e: isinstance(e, Refused), cache=cache) \
            == "connected"
        forced = [q for q in agent.queries if q.get("refreshNow") == "true"]
        assert forced
        assert forced[0]["versionStage"] == "AWSCURRENT"
        # the forced AWSCURRENT fetch brought the new password (not the agent's cached old one): no AWSPENDING
        stats = auth_stats("app/login", cache=cache)
        assert (stats.auth_failures, stats.refreshes, stats.pending_fetches) == (1, 1, 0)
