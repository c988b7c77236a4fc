"""The canary marker every test and soak secret carries, so a leak check can recognise a secret value
anywhere (log records, exception messages, reprs). The suite-wide checks are tests/fixtures/fix_canary.py and
tests/fixtures/fix_canary_checks.py; bench/bench_soak.py runs the same check on its own log records."""

from __future__ import annotations

import secrets

CANARY = "sc-canary-4f1d"


def canary_value(tag: str = "") -> str:
    """A unique secret value that the leak check recognises."""
    return f"{CANARY}-{tag}-{secrets.token_hex(6)}"
