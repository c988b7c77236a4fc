"""An AWS Lambda handler that gets three secrets from secretcache.

Deploy this file as the function's module (handler ``lambda_handler.handler``). Secrets it reads:

- ``prod/api-token``: the token callers must send in ``Authorization: Bearer ...``;
- ``prod/webhook``: JSON with ``signing_key``, used to sign the response body (HMAC-SHA256);
- ``prod/db``: the RDS-shaped JSON of the database the orders come from (``password`` used here).

What happens when:

- **import (the init phase, once per execution environment)**: ``@with_secrets`` fetches all three
  with one BatchGetSecretValue call;
- **each invocation**: the values come from memory (no API call) until their ttl (300 s) passes;
  then the next invocation refreshes them inline (one batch call for the three);
- **a failed fetch** (throttling, a network blip, the init-phase fetch failing) is retried on the
  next invocation: failures are never cached.

tests/decorators/test_lambda.py imports it cold against moto and invokes it, counting the API calls.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from secretcache.aws_lambda import with_secrets


def fetch_orders(customer: str, *, db_password: str) -> list[dict[str, Any]]:
    """Stand-in for a query: a real function would ``psycopg.connect(..., password=db_password)``."""
    return [{"customer": customer, "order": 1, "total": "12.50"}]


@with_secrets(
    api_token="prod/api-token",
    signing_key="prod/webhook#signing_key",
    db_password="{{resolve:secretsmanager:prod/db:SecretString:password}}",
)
def handler(event: dict[str, Any], context: Any, *, api_token: str, signing_key: str,
            db_password: str) -> dict[str, Any]:
    sent = (event.get("headers") or {}).get("authorization", "")
    if not hmac.compare_digest(sent.encode(), f"Bearer {api_token}".encode()):
        return {"statusCode": 401, "body": json.dumps({"error": "unauthorized"})}
    customer = (event.get("queryStringParameters") or {}).get("customer", "anonymous")
    body = json.dumps({"orders": fetch_orders(customer, db_password=db_password)}, sort_keys=True)
    signature = hmac.new(signing_key.encode(), body.encode(), hashlib.sha256).hexdigest()
    return {"statusCode": 200, "headers": {"X-Signature": signature}, "body": body}
