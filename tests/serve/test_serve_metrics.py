"""``secretcache serve --metrics``: GET /metrics in the Prometheus text format, parsed with prometheus_client's
own parser; in process (the API), then end to end, scraped while serve is under load."""

from __future__ import annotations

import http.client
import itertools
import json
import threading
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from secretcache import CacheConfig, SecretCache
from secretcache.serve._metrics import MeteredAgentApi, route_of
from secretcache.testing import InMemoryBackend
from tests.fixtures.fakes import run_threads
from tests.fixtures.fix_canary import CANARY, canary_value
from tests.fixtures.fix_serve import unique
from tests.fixtures.serving import TOKEN, serving

H = "X-Aws-Parameters-Secrets-Token"
ID_MARK = "idmark-5b2d"  # in secret ids and paths: may be logged (ids are), never in /metrics


def headers(**given: str) -> Any:
    lowered = {k.lower().replace("_", "-"): v for k, v in given.items()}
    return lowered.get


def samples(text: str) -> dict[str, list[Any]]:
    """Every sample of the exposition, by metric family name, through prometheus_client's own parser."""
    found: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(text):
        found.setdefault(family.name, []).extend(family.samples)
        found.setdefault("#types", []).append((family.name, family.type))
    return found


def sample(parsed: dict[str, list[Any]], family: str, name: str, **labels: str) -> float:
    total = 0.0
    for s in parsed.get(family, []):
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
            total += s.value
    return total


def test_metrics_need_no_token_and_count_requests_by_route_and_status() -> None:
    secret_id = f"app/{ID_MARK}/key"
    value = canary_value("metrics")
    backend = InMemoryBackend({secret_id: value})
    with SecretCache(backend, config=CacheConfig(ttl=300)) as cache:
        api = MeteredAgentApi(cache, token="t0k")
        token = headers(X_Aws_Parameters_Secrets_Token="t0k")
        assert api.handle("GET", f"/secretsmanager/get?secretId={secret_id}", token).status == 200  # miss
        assert api.handle("GET", f"/v1/{secret_id}", token).status == 200  # hit
        assert api.handle("GET", "/v1/absent", token).status == 400
        assert api.handle("GET", "/v1/x", headers()).status == 403
        assert api.handle("GET", f"/nowhere/{ID_MARK}", token).status == 404
        assert api.handle("GET", "/ping", headers()).status == 200
        assert api.handle("GET", "/metrics", headers(X_Forwarded_For="1.2.3.4")).status == 400
        assert api.handle("POST", "/metrics", headers()).status == 405
        response = api.handle("GET", "/metrics", headers())  # no token needed, like /ping
        assert response is not None
        assert response.status == 200
        assert response.content_type.startswith("text/plain")
        text = response.body.decode()
        assert CANARY not in text  # not the value
        assert ID_MARK not in text  # nor the id, nor what a client typed in a path
        parsed = samples(text)
        count = "secretcache_serve_requests"
        assert sample(parsed, count, f"{count}_total", route="/secretsmanager/get", status_code="200") == 1
        assert sample(parsed, count, f"{count}_total", route="/v1/{secretId}", status_code="200") == 1
        assert sample(parsed, count, f"{count}_total", route="/v1/{secretId}", status_code="400") == 1
        assert sample(parsed, count, f"{count}_total", route="/v1/{secretId}", status_code="403") == 1
        assert sample(parsed, count, f"{count}_total", route="other", status_code="404") == 1
        assert sample(parsed, count, f"{count}_total", route="/ping", status_code="200") == 1
        assert sample(parsed, count, f"{count}_total", route="/metrics", status_code="405") == 1
        assert ("secretcache_serve_request_duration_seconds", "histogram") in parsed["#types"]
        latency = "secretcache_serve_request_duration_seconds"
        assert sample(parsed, latency, f"{latency}_count") == 8
        assert sample(parsed, latency, f"{latency}_bucket", route="/v1/{secretId}", le="+Inf") == 3
        stats = cache.stats
        assert sample(parsed, "secretcache_requests", "secretcache_requests_total", result="hit") == stats.hits == 1
        assert sample(parsed, "secretcache_requests", "secretcache_requests_total", result="miss") == stats.misses
        assert sample(parsed, "secretcache_entries", "secretcache_entries") == 1
        calls = "secretcache_backend_calls"
        assert sample(parsed, calls, f"{calls}_total", operation="GetSecretValue", outcome="ok") == 1
        assert sample(parsed, calls, f"{calls}_total", operation="GetSecretValue", outcome="not_found") == 1
        assert ("secretcache_backend_duration_seconds", "histogram") in parsed["#types"]
        assert "process_cpu_seconds" in parsed or "python_gc_objects_collected" in parsed


def test_hits_answered_by_peek_count_as_hits() -> None:
    """uvicorn's event loop answers hits with ``peek`` (which counts nothing): serve counts them."""
    backend = InMemoryBackend({"a": canary_value("a")})
    with SecretCache(backend) as cache:
        api = MeteredAgentApi(cache, token=None)
        token = headers(X_Vault_Token="any")
        assert api.handle("GET", "/v1/a", token, fresh_only=True) is None  # not cached: asked again
        assert api.handle("GET", "/v1/a", token).status == 200  # the miss
        for _ in range(5):
            assert api.handle("GET", "/v1/a", token, fresh_only=True).status == 200
        assert api.handle("GET", "/ping", token, fresh_only=True).status == 200  # not a read
        parsed = samples(api.handle("GET", "/metrics", headers()).body.decode())
        assert sample(parsed, "secretcache_requests", "secretcache_requests_total", result="hit") == 5
        assert sample(parsed, "secretcache_requests", "secretcache_requests_total", result="miss") == 1
        count = "secretcache_serve_requests"
        assert sample(parsed, count, f"{count}_total", route="/v1/{secretId}") == 6  # counted once each


def test_requests_counted_on_many_threads_without_a_lock_are_all_counted_and_scrapes_never_go_back() -> None:
    """Each thread counts into its own table: nothing is lost to a race, and a scrape racing the
    counting sees every counter only grow."""
    threads, each = 8, 400
    backend = InMemoryBackend({"a": canary_value("a")})
    with SecretCache(backend) as cache:
        api = MeteredAgentApi(cache, token=None)
        token = headers(X_Vault_Token="any")
        assert api.handle("GET", "/v1/a", token).status == 200  # the miss: cached from here on
        scrapes: list[tuple[float, float]] = []
        stop = threading.Event()

        def scrape() -> None:
            while not stop.is_set():
                parsed = samples(api.handle("GET", "/metrics", headers()).body.decode())
                scrapes.append((
                    sample(parsed, "secretcache_requests", "secretcache_requests_total", result="hit"),
                    sample(parsed, "secretcache_serve_requests", "secretcache_serve_requests_total",
                           route="/v1/{secretId}"),
                ))

        def reads(i: int) -> int:
            fresh = i % 2 == 0  # half as the event loop asks (peek), half as the thread pool does
            return sum(api.handle("GET", "/v1/a", token, fresh_only=fresh).status == 200 for _ in range(each))

        scraper = threading.Thread(target=scrape, daemon=True)
        scraper.start()
        try:
            assert run_threads(threads, reads, together=True) == [each] * threads
        finally:
            stop.set()
            scraper.join(30)
        parsed = samples(api.handle("GET", "/metrics", headers()).body.decode())
        count = "secretcache_serve_requests"
        assert sample(parsed, count, f"{count}_total", route="/v1/{secretId}", status_code="200") == 1 + threads * each
        latency = "secretcache_serve_request_duration_seconds"
        assert sample(parsed, latency, f"{latency}_count", route="/v1/{secretId}") == 1 + threads * each
        assert sample(parsed, "secretcache_requests", "secretcache_requests_total", result="hit") == threads * each
        assert scrapes, "no scrape ran while the threads read"
        for earlier, later in itertools.pairwise(scrapes):
            assert later[0] >= earlier[0]
            assert later[1] >= earlier[1]


def test_the_counts_of_threads_that_ended_are_kept_in_one_table() -> None:
    """A thread per request (an embedder's threading server) must not grow serve's tables forever."""
    backend = InMemoryBackend({"a": canary_value("a")})
    with SecretCache(backend) as cache:
        api = MeteredAgentApi(cache, token=None)
        token = headers(X_Vault_Token="any")
        count = "secretcache_serve_requests"
        for batch in range(3):
            run_threads(10, lambda _: [api.handle("GET", "/v1/a", token) for _ in range(5)])  # threads end
            parsed = samples(api.handle("GET", "/metrics", headers()).body.decode())
            assert sample(parsed, count, f"{count}_total", route="/v1/{secretId}") == 50 * (batch + 1)
            assert len(api._requests._tables) <= 1  # only the scraping thread's own: the ended are folded


def test_route_labels_never_hold_what_a_client_typed() -> None:
    assert route_of("/v1/prod/db?versionStage=AWSPREVIOUS") == "/v1/{secretId}"
    assert route_of("/secretsmanager/get?secretId=prod/db") == "/secretsmanager/get"
    assert route_of("/systemsmanager/parameters/get?name=/app/url") == "/systemsmanager/parameters/get"
    assert route_of("/prod/db") == "other"
    assert route_of("http://evil/v1/x") == "other"
    assert route_of("/metrics?x=1") == "/metrics"


# -- end to end: a serve process on moto ------------------------------------------------------------------


def _reads(port: int, names: list[str], n: int, failures: list[str]) -> int:
    """``n`` reads over one keep-alive connection; returns how many answered 200."""
    ok = 0
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        for i in range(n):
            conn.request("GET", f"/secretsmanager/get?secretId={names[i % len(names)]}", headers={H: TOKEN})
            response = conn.getresponse()
            body = response.read()
            if response.status == 200:
                ok += 1
            else:
                failures.append(f"read {response.status} {body[:100]!r}")
    finally:
        conn.close()
    return ok


@pytest.mark.integration
def test_metrics_are_scraped_under_load_without_errors(moto_url: str, admin: Any) -> None:
    names = [unique("serve/metrics") for _ in range(4)]
    values = {name: canary_value("load") for name in names}
    for name, value in values.items():
        admin.create_secret(Name=name, SecretString=value)
    with serving(moto_url, "--metrics") as server:
        assert server.request("/metrics", token=None)[0] == 200  # no token
        failures: list[str] = []
        scrapes: list[int] = []
        done = threading.Event()

        def scrape() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            try:
                while not done.is_set() or not scrapes:
                    conn.request("GET", "/metrics")
                    response = conn.getresponse()
                    text = response.read().decode()
                    if response.status != 200:
                        failures.append(f"scrape {response.status}")
                        return
                    samples(text)  # parses, or raises into the failures below
                    if CANARY in text or any(name in text for name in names):
                        failures.append("a secret id or value in /metrics")
                    scrapes.append(1)
            except Exception as e:  # reported by the assertion below
                failures.append(f"scrape raised {type(e).__name__}: {e}")
            finally:
                conn.close()

        results: list[int] = []
        readers = [threading.Thread(target=lambda: results.append(_reads(server.port, names, 150, failures)),
                                    daemon=True) for _ in range(6)]
        scraper = threading.Thread(target=scrape, daemon=True)
        scraper.start()
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join(120)
            assert not reader.is_alive(), "a reader is stuck"
        done.set()
        scraper.join(60)
        assert not scraper.is_alive(), "the scraper is stuck"
        assert failures == []
        assert sum(results) == 6 * 150
        assert len(scrapes) >= 1
        status, body = server.request("/metrics", token=None)
        assert status == 200
        parsed = samples(body.decode())
        count = "secretcache_serve_requests"
        assert sample(parsed, count, f"{count}_total", route="/secretsmanager/get", status_code="200") == 900
        hits = sample(parsed, "secretcache_requests", "secretcache_requests_total", result="hit")
        misses = sample(parsed, "secretcache_requests", "secretcache_requests_total", result="miss")
        assert hits + misses >= 900  # every read is one or the other (a herd's waiters are all misses)
        assert hits >= 900 - 6 * len(names)  # at most one miss per secret per reader's first round
        calls = sample(parsed, "secretcache_backend_calls", "secretcache_backend_calls_total",
                       operation="GetSecretValue", outcome="ok")
        assert calls == len(names)  # one call per secret per ttl, for the whole host
        assert json.loads(server.request(f"/v1/{names[0]}")[1])["SecretString"] == values[names[0]]


@pytest.mark.integration
def test_without_the_option_there_is_no_metrics_route(moto_url: str) -> None:
    with serving(moto_url) as server:
        assert server.request("/metrics", token=None)[0] == 403  # an ordinary route: token first, then 404
        assert server.request("/metrics")[0] == 404


def test_serve_refuses_metrics_without_prometheus_client(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    import secretcache.serve._metrics as metrics

    real_import = builtins.__import__

    def no_prometheus(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "prometheus_client" or name.startswith("prometheus_client."):
            raise ImportError("No module named 'prometheus_client'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_prometheus)
    with SecretCache(InMemoryBackend()) as cache, pytest.raises(ImportError, match=r"\[metrics\] extra"):
        metrics.MeteredAgentApi(cache, token=None)
