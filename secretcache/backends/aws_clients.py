"""Every boto3 client secretcache builds, built in one place: one Region rule, one endpoint rule, one config.

AWS users set their Region in several ways, and different tools read different ones. boto3 reads only
its own chain (``region_name=``, ``AWS_DEFAULT_REGION``, the profile's ``region`` in ``~/.aws/config``);
Lambda, the other AWS SDKs and many container platforms set ``AWS_REGION``, which boto3 ignores. So a
client of ours takes its Region from, in order:

1. ``region_name=`` (the ``--region`` option of the command);
2. the botocore chain of the session (``AWS_DEFAULT_REGION``, the profile's ``region``);
3. ``AWS_REGION``;
4. the Region the resource names itself: a full ARN's Region, an SQS queue URL's Region.

When none is set, :class:`~secretcache.errors.RegionNotConfiguredError` names every one of them.

The endpoint is ``endpoint_url=`` when given, else botocore's own rule (``AWS_ENDPOINT_URL_<SERVICE>``,
then ``AWS_ENDPOINT_URL``, then the profile's ``endpoint_url``, then AWS's endpoint for the Region).
The configuration is a per-service default (few quick attempts; timeouts that suit the calls) with the
caller's ``botocore.config.Config`` merged over it. boto3 is imported only when a client is built.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

from ..errors import RegionNotConfiguredError

if TYPE_CHECKING:
    import boto3
    from botocore.config import Config

__all__ = [
    "aws_client", "default_config", "queue_url_region", "region_error", "region_of_arn", "resolve_region",
]

_ARN = re.compile(r"arn:[^:]+:[^:]+:([^:]*):.*")
# https://sqs.eu-west-1.amazonaws.com/123/q, https://sqs.eu-west-1.api.aws/..., the legacy
# https://eu-west-1.queue.amazonaws.com/123/q, and https://queue.amazonaws.com/123/q (us-east-1).
_SQS_HOST = re.compile(r"(?:sqs[.-]([a-z0-9-]+)|([a-z0-9-]+)\.queue|(queue))\.(?:amazonaws\.com(?:\.cn)?|api\.aws)")


def region_of_arn(reference: str) -> str | None:
    """The Region a full or partial ARN names (any service); None for a name or an ARN without one."""
    m = _ARN.fullmatch(reference)
    return m[1] or None if m else None


def queue_url_region(queue_url: str) -> str | None:
    """The Region an SQS queue URL's host names; None for a URL of a local or custom endpoint."""
    host = queue_url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0].lower()
    m = _SQS_HOST.fullmatch(host)
    if m is None:
        return None
    return m[1] or m[2] or "us-east-1"


def _session(session: boto3.session.Session | None) -> boto3.session.Session:
    if session is not None:
        return session
    import boto3

    # A private session: boto3's default session is not safe to build clients from in threads.
    return boto3.session.Session()


def resolve_region(session: boto3.session.Session | None = None, region_name: str | None = None,
                   *, resource_region: str | None = None) -> str | None:
    """The Region a client should use: ``region_name``, the botocore chain, ``AWS_REGION``, then
    ``resource_region`` (an ARN's or queue URL's own); None when none of them is set."""
    if region_name:
        return region_name
    chained = _session(session).region_name
    if chained:
        return chained
    return os.environ.get("AWS_REGION") or resource_region or None


def region_error(what: str, region_advice: str = "pass region_name=", *,
                 resource: str = "a full ARN naming its Region", secret_id: str | None = None,
                 ) -> RegionNotConfiguredError:
    """The error for "no Region anywhere", naming every place one can be set."""
    return RegionNotConfiguredError(
        f"no AWS Region configured {what}: {region_advice}, set AWS_REGION or AWS_DEFAULT_REGION, set region "
        f"in ~/.aws/config (for the profile AWS_PROFILE names), or use {resource}",
        secret_id=secret_id,
    )


def default_config(service: str) -> Config:
    """The defaults every client of ours starts from (the caller's config is merged over them)."""
    from botocore.config import Config

    from .._version import __version__

    # Few, quick attempts: the cache serves stale values and backs off on its own, so a reader should
    # not sit behind botocore's long retry ladder (10 s default timeouts, up to 20 s throttle sleeps).
    # SQS long polls last up to 20 s: its read timeout must outlast one.
    return Config(
        retries={"mode": "standard", "total_max_attempts": 3},
        connect_timeout=3,
        read_timeout=30 if service == "sqs" else 5,
        user_agent_extra=f"secretcache/{__version__}",
    )


def aws_client(
    service: str,
    *,
    session: boto3.session.Session | None = None,
    region_name: str | None = None,
    endpoint_url: str | None = None,
    config: Config | None = None,
    resource_region: str | None = None,
    what: str = "",
    region_advice: str = "pass region_name=",
) -> Any:
    """A boto3 client for ``service`` with the Region, endpoint and configuration rules above.

    ``resource_region`` is the Region the resource names itself (an ARN's, a queue URL's), the last
    fallback. Raises :class:`~secretcache.errors.RegionNotConfiguredError` (its message says ``what``
    was being done, and ``region_advice`` in the words of whoever configured the client) when no
    Region is set anywhere.
    """
    from . import _redact

    _redact.install()  # botocore logs bodies at DEBUG: filter them before this client's first call
    session = _session(session)
    region = resolve_region(session, region_name, resource_region=resource_region)
    if region is None:
        resource = "a queue URL naming its Region" if service == "sqs" else "a full ARN naming its Region"
        raise region_error(what or f"for {service}", region_advice, resource=resource)
    merged = default_config(service)
    if config is not None:
        merged = merged.merge(config)
    return session.client(service, region_name=region, endpoint_url=endpoint_url, config=merged)  # type: ignore[call-overload]
