"""docs/parameters.md: its python blocks run as written (those not marked ``<!-- fragment -->``), on moto in
process holding the parameters and the secret the page names, through the default cache."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import secretcache
from secretcache import SecretCache
from secretcache.backends import AwsBackend

DOC = Path(__file__).resolve().parents[2] / "docs" / "parameters.md"
REGION = "us-east-1"


def runnable_blocks() -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    found = re.findall(r"(^<!-- fragment -->\n)?^```python\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)
    return [code for marker, code in found if not marker]


@pytest.fixture
def default_cache() -> Iterator[SecretCache]:
    import boto3
    from moto import mock_aws

    with mock_aws():
        ssm = boto3.client("ssm", region_name=REGION)
        ssm.put_parameter(Name="/app/prod/db-url", Value="postgres://db.internal/app", Type="SecureString")
        ssm.put_parameter(Name="/app/prod/api-url", Value="https://api.example", Type="String")
        ssm.put_parameter(Name="/app/prod/db", Value=json.dumps({"password": "example"}), Type="SecureString")
        ssm.put_parameter(Name="/app/prod/level/deeper", Value="x", Type="String")
        boto3.client("secretsmanager", region_name=REGION).create_secret(Name="prod/api-key", SecretString="k")
        cache = SecretCache(AwsBackend(region_name=REGION))
        previous = secretcache.set_default_cache(cache)
        try:
            yield cache
        finally:
            secretcache.set_default_cache(previous)
            cache.close()


def test_the_runnable_blocks_run(default_cache: SecretCache) -> None:
    blocks = runnable_blocks()
    assert len(blocks) == 2
    namespace: dict[str, Any] = {"__name__": "docs_parameters"}
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), namespace)
    assert namespace["db_url"] == "postgres://db.internal/app"
    assert namespace["password"] == "example"
    assert namespace["api_key"] == "k"
    assert sorted(namespace["values"]) == ["prod/api-key", "ssm:/app/prod/api-url", "ssm:/app/prod/db-url"]
    assert "ssm:/app/prod/level/deeper" in namespace["settings"]
    assert "ssm:/app/prod/level/deeper" not in namespace["level"]


def test_every_other_python_block_is_marked_a_fragment() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert text.count("```python") == len(runnable_blocks()) + text.count("<!-- fragment -->\n```python")
