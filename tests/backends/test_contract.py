"""One contract, four backends: InMemoryBackend, AwsBackend on the benchmarks' boto-shaped client, AwsBackend
on moto in process, AwsBackend on moto's HTTP server (``kind``, module-scoped). The scenarios and the store
drivers live in ``tests/fixtures/contract.py``, so serve's contract test (tests/serve/test_serve_contract.py)
reuses them without importing a test module; collecting them here runs them against the four backends.
"""

from __future__ import annotations

from tests.fixtures.contract import *  # noqa: F403  (the scenarios and the kind/store fixtures, collected here)
