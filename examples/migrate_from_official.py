"""Migrating from ``aws_secretsmanager_caching`` in two steps.

Step 1, one changed import: existing code keeps working (same names, arguments and results).

    - from aws_secretsmanager_caching import SecretCache, SecretCacheConfig, InjectKeywordedSecretString
    + from secretcache.compat import SecretCache, SecretCacheConfig, InjectKeywordedSecretString

What you gain at once: no DescribeSecret call (one GetSecretValue per refresh, and no
``secretsmanager:DescribeSecret`` permission needed); ``refresh_secret_now`` returns at once instead of
sleeping 2.5-5 s; typed errors instead of ``None`` for a missing stage; stale-while-revalidate.

Step 2, at your pace: move call sites to the native API. ``compat_cache.cache`` is the native
``secretcache.SecretCache`` underneath, so both styles share one cache while you migrate.

Run it: ``python examples/migrate_from_official.py`` (against moto, in process: ``pip install moto``).
"""

from __future__ import annotations

import json
import os

from secretcache import inject_secret
from secretcache.compat import InjectKeywordedSecretString, InjectSecretString, SecretCache, SecretCacheConfig

# Step 1: the code as it was, with only the import changed.
cache = SecretCache(config=SecretCacheConfig(secret_refresh_interval=300))


@InjectKeywordedSecretString("prod/db", cache, db_user="username", db_password="password")
def connect(host: str, *, db_user: str, db_password: str) -> str:
    return f"connect(host={host!r}, user={db_user!r}, password=<{len(db_password)} chars>)"


@InjectSecretString("prod/api-key", cache)
def call_api(api_key: str, path: str) -> str:
    return f"GET {path} with an API key of {len(api_key)} chars"


# Step 2: the native decorator, reading through the same cache.
@inject_secret("prod/db", fields={"db_user": "username", "db_password": "password"}, cache=cache.cache)
def connect_native(host: str, *, db_user: str, db_password: str) -> str:
    return f"connect(host={host!r}, user={db_user!r}, password=<{len(db_password)} chars>)"


def main() -> None:
    import boto3
    from moto import mock_aws

    # The cache reads in the Region AWS users set (AWS_REGION is enough); here, moto's. On AWS, yours.
    os.environ.setdefault("AWS_REGION", "us-east-1")
    with mock_aws():
        client = boto3.client("secretsmanager", region_name="us-east-1")
        db = {"username": "app", "password": "s3cret-pw"}
        client.create_secret(Name="prod/db", SecretString=json.dumps(db))
        client.create_secret(Name="prod/api-key", SecretString="demo-api-key")
        print(connect("db.internal"))
        print(call_api("/v1/orders"))
        print(connect_native("db.internal"))
        db = {"username": "app2", "password": "x"}
        client.put_secret_value(SecretId="prod/db", SecretString=json.dumps(db))
        print("refreshed:", cache.refresh_secret_now("prod/db"))  # immediate: no 2.5-5 s sleep
        print(connect("db.internal"))
        try:
            cache.get_secret_string("prod/db", version_stage="AWSPENDING")
        except Exception as e:  # the official library would have returned None here
            print("no AWSPENDING version:", type(e).__name__)
        print("cache stats:", cache.cache.stats)


if __name__ == "__main__":
    main()
