"""Fleet-wide freshness: refresh cached secrets when Secrets Manager says they changed.

:class:`EventListener` long-polls an SQS queue that an EventBridge rule feeds with Secrets Manager
events (CloudTrail ``PutSecretValue``, ``UpdateSecretVersionStage``, ``RotateSecret``,
``RotationSucceeded``, ``DeleteSecret``, ``RestoreSecret``..., and the native ``Secret Label
Updated``) and refreshes or invalidates the named secret in the caches it was given, so every process
of a fleet sees a change within seconds instead of a ttl. See docs/events.md for the rule and queue.

It never crashes its host: a transient failure is logged (message ids and error types only, never a
body), backed off with jitter, and the loop goes on until :meth:`EventListener.close`. A failure that
retrying cannot fix (no Region or credentials, the queue does not exist, access denied) is logged once
at ERROR with what to change, stops the loop, and is kept in :attr:`EventListener.failure` (and passed
to ``on_failure``), so a host such as ``secretcache serve`` can stop instead of polling in vain.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import boto3
    from botocore.config import Config

    from ._face import AnySecretCache
    from .cache import SecretCache

__all__ = ["INVALIDATING_EVENTS", "EventListener", "secret_ids_of"]

log = logging.getLogger("secretcache.events")

INVALIDATING_EVENTS = frozenset({"DeleteSecret"})
"""Events after which a secret is dropped from the caches rather than read again."""

_ID_KEYS = ("secretId", "SecretId", "arn", "aRN", "ARN", "name", "Name")


def _strings(doc: object, keys: Iterable[str]) -> list[str]:
    if not isinstance(doc, dict):
        return []
    return [v for k in keys if isinstance(v := doc.get(k), str) and v]


def secret_ids_of(event: dict[str, Any]) -> tuple[str | None, list[str]]:
    """(event name, the identifiers of the secret it names: names and ARNs) of one EventBridge event.

    CloudTrail events carry the id in ``requestParameters.secretId`` and often the ARN in
    ``responseElements.arn`` (``aRN`` in older ones); service events (``RotationSucceeded``) in
    ``additionalEventData.SecretId``; the native ``Secret Label Updated`` event in ``detail.name``;
    EventBridge adds the ARN to ``resources`` for some.
    """
    detail = event.get("detail")
    if not isinstance(detail, dict):
        return None, []
    name = detail.get("eventName")
    if not isinstance(name, str):
        name = event.get("detail-type") if isinstance(event.get("detail-type"), str) else None
    ids: list[str] = []
    for part in (detail.get("requestParameters"), detail.get("responseElements"),
                 detail.get("additionalEventData"), detail, detail.get("serviceEventDetails")):
        ids.extend(_strings(part, _ID_KEYS))
    resources = event.get("resources")
    if isinstance(resources, list):
        ids.extend(r for r in resources if isinstance(r, str) and ":secretsmanager:" in r)
    return name, list(dict.fromkeys(ids))


def _matches(identifiers: list[str], secret_id: str, value: Any) -> bool:
    from ._request import names_secret

    # The cached value knows the secret's name and ARN, whichever spelling the cache was read by.
    return any(ident == secret_id or names_secret(ident, value) for ident in identifiers)


# Failures of a receive that retrying cannot fix: the configuration must change.
_PERMANENT_CODES = frozenset({
    "AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist", "AccessDenied", "AccessDeniedException",
    "InvalidAddress", "InvalidSecurity", "InvalidClientTokenId", "UnrecognizedClientException",
    "SignatureDoesNotMatch", "KmsAccessDenied", "KMS.AccessDeniedException", "KmsDisabled", "KmsNotFound",
    "KMS.DisabledException", "KMS.NotFoundException", "InvalidParameterValue", "AuthFailure",
})
_PERMANENT_KINDS = frozenset({
    "RegionNotConfiguredError", "NoRegionError", "NoCredentialsError", "PartialCredentialsError",
    "ProfileNotFound", "UnknownCredentialError", "SSOTokenLoadError", "UnauthorizedSSOTokenError",
    "InvalidRegionError", "UnknownEndpointError", "ParamValidationError", "InvalidEndpointConfigurationError",
})


def _permanent_failure(error: BaseException) -> str | None:
    """Why ``error`` (raised polling SQS) will not go away by retrying, or None when it may.

    The text is AWS's or botocore's own message (queue URLs, codes, Region names; never a secret value).
    """
    kinds = {cls.__name__ for cls in type(error).__mro__}
    if kinds & _PERMANENT_KINDS:
        return " ".join(f"{type(error).__name__}: {error}".split())
    response = getattr(error, "response", None)
    if "ClientError" in kinds and isinstance(response, dict):
        info = response.get("Error") or {}
        code = str(info.get("Code") or "")
        if code in _PERMANENT_CODES:
            return " ".join(f"{code}: {info.get('Message') or ''}".split())
    return None


class EventListener:
    """Long-polls ``queue_url`` and applies each Secrets Manager event to ``caches``.

    ``client`` is a boto3 SQS client. By default one is built on first use by
    :func:`secretcache.backends.aws_clients.aws_client`, like every AWS client of the package, from
    ``session``, ``endpoint_url`` and ``config``, in the queue URL's own Region when its host names one
    (a queue can only be polled where it lives), else in ``region_name``, the botocore chain or
    ``AWS_REGION``. ``caches`` may be :class:`~secretcache.SecretCache` or
    :class:`~secretcache.AsyncSecretCache` objects (an async cache is refreshed through its blocking
    face, from the listener's thread). ``on_failure`` is called (from the listener's thread) with the
    error that stopped the loop, when a permanent failure does. ``start()``
    runs the loop on a daemon thread; ``close()`` stops it (within one long poll: ``wait_time``
    seconds) and is idempotent; ``with EventListener(...) as listener:`` starts and closes it.
    Handled messages are deleted; a malformed one is logged by message id and deleted. A message whose
    refresh failed for good (access denied, not found, marked for deletion, a KMS decryption refusal) is
    logged by message id, secret and error code and deleted: delivering it again would fail the same way.
    One whose refresh failed transiently (throttled, unreachable, 5xx, anything else) is left for SQS to
    deliver again after the visibility timeout (and, past the queue's ``maxReceiveCount``, to its
    dead-letter queue).
    """

    def __init__(self, queue_url: str, *, caches: Iterable[AnySecretCache], client: Any = None,
                 session: boto3.session.Session | None = None, region_name: str | None = None,
                 endpoint_url: str | None = None, config: Config | None = None,
                 wait_time: int = 20, backoff_base: float = 1.0, backoff_max: float = 60.0,
                 on_failure: Callable[[BaseException], object] | None = None) -> None:
        if not queue_url:
            raise ValueError("EventListener needs a queue URL")
        if not 0 <= wait_time <= 20:
            raise ValueError(f"wait_time must be 0..20 seconds (SQS long polling), got {wait_time!r}")
        if not 0 < backoff_base <= backoff_max:
            raise ValueError("EventListener needs 0 < backoff_base <= backoff_max")
        from .cache import SecretCache  # the blocking face of an async cache: same entries, same core

        self.queue_url = queue_url
        self.caches: list[SecretCache] = [SecretCache.blocking(c) for c in caches]
        self._session = session
        self._region_name = region_name
        self._endpoint_url = endpoint_url
        self._config = config
        self.on_failure = on_failure
        self.failure: BaseException | None = None
        """The permanent failure that stopped the loop, if one did."""
        self.wait_time = wait_time
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._client = client
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.received = 0
        self.applied = 0
        self.dropped = 0
        self.failed = 0
        self.errors = 0

    def __repr__(self) -> str:
        return f"EventListener(queue_url={self.queue_url!r}, caches={len(self.caches)})"

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> EventListener:
        with self._lock:
            if self._thread is None:
                self._stop.clear()
                self._thread = threading.Thread(target=self._loop, name="secretcache-events", daemon=True)
                self._thread.start()
        return self

    def close(self, timeout: float | None = None) -> None:
        """Stop polling; waits for the loop (at most ``timeout``, default one long poll and a bit)."""
        self._stop.set()
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.wait_time + 5.0 if timeout is None else timeout)

    def __enter__(self) -> EventListener:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def client(self) -> Any:
        if self._client is None:
            from .backends.aws_clients import aws_client, queue_url_region

            self._client = aws_client(
                "sqs", session=self._session, region_name=queue_url_region(self.queue_url) or self._region_name,
                endpoint_url=self._endpoint_url, config=self._config,
                what=f"polling the events queue {self.queue_url}", region_advice=self.region_advice)
        return self._client

    region_advice = "pass region_name="
    """How a missing Region's error tells its reader to name one (``secretcache serve`` says --region)."""

    # -- the loop ---------------------------------------------------------------------------------

    def _loop(self) -> None:
        failures = 0
        started = False
        while not self._stop.is_set():
            try:
                if not started:
                    region = getattr(getattr(self.client, "meta", None), "region_name", None)
                    log.info("events: polling %s (Region %s) for Secrets Manager events, %d cache(s)",
                             self.queue_url, region, len(self.caches))
                    started = True
                self.poll_once()
                failures = 0
            except Exception as e:  # never crash the host: log, back off, go on (or stop when hopeless)
                why = _permanent_failure(e)
                if why is not None:
                    self.errors += 1
                    self.failure = e
                    log.error("events: cannot poll %s: %s. Stopping the events listener: fix the queue URL, "
                              "Region, endpoint, credentials or permissions (sqs:ReceiveMessage, "
                              "sqs:DeleteMessage) and restart", self.queue_url, why)
                    if self.on_failure is not None:
                        try:
                            self.on_failure(e)
                        except Exception:
                            log.exception("events: the on_failure callback raised")
                    return
                failures += 1
                self.errors += 1
                delay = min(self.backoff_max, self.backoff_base * 2 ** (failures - 1))
                delay = random.uniform(self.backoff_base, max(self.backoff_base, delay))  # nosec B311
                log.warning("events: polling %s failed (%s); retrying in %.1fs", self.queue_url,
                            type(e).__name__, delay)
                self._stop.wait(delay)

    def poll_once(self) -> int:
        """One receive (long poll) and the handling of what came; returns the number of messages."""
        answer = self.client.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                             WaitTimeSeconds=self.wait_time)
        messages = answer.get("Messages") or []
        for message in messages:
            if self._stop.is_set():
                break
            self.received += 1
            if self.handle(message):
                self.client.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return len(messages)

    def handle(self, message: dict[str, Any]) -> bool:
        """Apply one SQS message; True when it should be deleted (handled, or malformed and dropped)."""
        message_id = str(message.get("MessageId", "?"))[:100]
        event = _event_of(message.get("Body"))
        if event is None:
            self.dropped += 1
            log.warning("events: dropping malformed message %s (not a Secrets Manager event)", message_id)
            return True
        name, identifiers = secret_ids_of(event)
        if not identifiers:
            self.dropped += 1
            log.warning("events: dropping message %s (%s): it names no secret", message_id, name)
            return True
        transient = permanent = False
        for cache in self.caches:
            try:
                self._apply(cache, name, identifiers)
            except Exception as e:
                self.errors += 1
                if _is_permanent(e):
                    permanent = True
                    log.warning("events: %s for secret %r (message %s) failed for good (%s): deleting the "
                                "message", name, identifiers[0][:200], message_id, _code_of(e))
                else:
                    transient = True
                    log.warning("events: %s for secret %r (message %s) failed (%s): left for redelivery",
                                name, identifiers[0][:200], message_id, _code_of(e))
        if transient:
            return False  # SQS delivers it again after the visibility timeout (then to a dead-letter queue)
        if permanent:
            self.failed += 1
            return True  # redelivery would fail the same way, an API call and a warning each time
        self.applied += 1
        log.info("events: %s for secret %r applied (message %s)", name, identifiers[0][:200], message_id)
        return True

    def _apply(self, cache: SecretCache, name: str | None, identifiers: list[str]) -> None:
        matched: dict[str, list[str | None]] = {}  # secret id as cached -> its stage-addressed reads
        for read in cache.cached():
            if _matches(identifiers, read.secret_id, read.value):
                stages = matched.setdefault(read.secret_id, [])
                if read.version_id is None:  # a version read by VersionId never changes: nothing to refresh
                    stages.append(read.version_stage)
        for secret_id, stages in matched.items():
            if name in INVALIDATING_EVENTS:
                cache.invalidate(secret_id)
                continue
            for stage in stages:
                try:
                    cache.refresh(secret_id, version_stage=stage)
                except Exception as e:
                    from .errors import SecretDeletedError, SecretNotFoundError

                    if isinstance(e, (SecretNotFoundError, SecretDeletedError)):
                        cache.invalidate(secret_id)  # gone or its stage moved away: drop, do not serve
                        break
                    raise


def _is_permanent(error: BaseException) -> bool:
    """Whether a refresh failure would fail the same way on redelivery (the secret or our access to it
    is gone), as opposed to a transient one (throttling, 5xx, timeouts, anything unknown)."""
    from .errors import SecretAccessDeniedError, SecretDecryptionError, SecretDeletedError, SecretNotFoundError

    return isinstance(error, (SecretAccessDeniedError, SecretNotFoundError, SecretDeletedError,
                              SecretDecryptionError))


def _code_of(error: BaseException) -> str:
    """The AWS error code of a typed error (its type name otherwise); never its text."""
    code = getattr(error, "code", None)
    return code[:100] if isinstance(code, str) and code else type(error).__name__


def _event_of(body: object) -> dict[str, Any] | None:
    """The EventBridge event in an SQS body (directly, or wrapped in an SNS notification)."""
    if not isinstance(body, str) or len(body) > 262_144:
        return None
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if isinstance(doc, dict) and doc.get("Type") == "Notification" and isinstance(doc.get("Message"), str):
        try:
            doc = json.loads(doc["Message"])
        except (ValueError, RecursionError):
            return None
    if not isinstance(doc, dict) or doc.get("source") not in ("aws.secretsmanager", None):
        return None
    if not isinstance(doc.get("detail"), dict):
        return None
    return doc
