"""docs/observability.md's runnable example runs as written (in a fresh interpreter) and prints what the page
says: one span under the caller's, and the metrics with 99 hits and 1 miss; every other ``python`` block on
the page is marked as a fragment."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "observability.md"
FRAGMENT = "<!-- fragment -->"


def python_blocks() -> list[tuple[bool, str]]:
    """(marked as a fragment, code) for every ```python block of the page."""
    text = PAGE.read_text(encoding="utf-8")
    found = []
    for match in re.finditer(r"^```python\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        found.append((before.strip() == FRAGMENT, match.group(1)))
    return found


def json_documents(text: str) -> list[Any]:
    """The top-level JSON documents the console exporters printed, one after the other."""
    decoder, documents, at = json.JSONDecoder(), [], 0
    while True:
        start = text.find("{", at)
        if start < 0:
            return documents
        document, at = decoder.raw_decode(text, start)
        documents.append(document)


def test_the_console_exporter_example_runs_and_prints_what_the_page_says() -> None:
    runnable = [code for fragment, code in python_blocks() if not fragment]
    assert len(runnable) == 1, "one runnable example on the page; the others are fragments"
    result = subprocess.run([sys.executable, "-c", runnable[0]], capture_output=True, text=True, timeout=120,
                            cwd=ROOT, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    documents = json_documents(result.stdout)
    spans = {d["name"]: d for d in documents if "span_id" in d.get("context", {})}
    assert set(spans) == {"Secrets Manager.GetSecretValue", "handle-request"}
    ours, parent = spans["Secrets Manager.GetSecretValue"], spans["handle-request"]
    assert ours["parent_id"] == parent["context"]["span_id"]
    assert ours["attributes"]["rpc.system"] == "aws-api"
    [metrics] = [d for d in documents if "resource_metrics" in d][-1:]
    points: dict[str, list[Any]] = {}
    for resource in metrics["resource_metrics"]:
        for scope in resource["scope_metrics"]:
            for metric in scope["metrics"]:
                points.setdefault(metric["name"], []).extend(metric["data"]["data_points"])
    requests = {p["attributes"]["result"]: p["value"] for p in points["secretcache.requests"]}
    assert requests == {"hit": 99, "miss": 1, "stale": 0, "error": 0}
    assert [p["value"] for p in points["secretcache.backend.calls"]] == [1]
    assert "example-key" not in result.stdout  # the value is nowhere in what was exported
