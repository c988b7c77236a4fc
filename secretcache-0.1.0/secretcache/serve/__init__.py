"""``secretcache serve``: one cache per host, speaking the AWS Secrets Manager Agent's HTTP API.

Every process on a host reads through one :class:`~secretcache.SecretCache` (one GetSecretValue per
secret per host per ttl instead of per process). Anything written for the Agent works against it: our
``AgentBackend``, curl, other languages' Agent clients, the Lambda extension's request shape.
See docs/serve.md. Imported only by the ``serve`` command: ``import secretcache`` never loads it.
"""

from __future__ import annotations

from ._app import AgentApi, Response, error_status, read_token, render
from ._main import add_parser, run

__all__ = ["AgentApi", "Response", "add_parser", "error_status", "read_token", "render", "run"]
