"""Keep secret values out of botocore's DEBUG log records.

At DEBUG, botocore logs what goes over the wire: ``botocore.endpoint`` the request parameters and body
("Making request for ... with params: {... 'body': b'{"SecretString": ...}'}": PutSecretValue carries
the new secret), ``botocore.parsers`` every response body ("Response body: b'{...SecretString...}'":
every GetSecretValue and BatchGetSecretValue answer), ``botocore.awsrequest`` a request body it rewinds
for a retry, ``botocore.handlers`` parameter values it rewrites and 200-status error bodies, and
``botocore.utils`` the container credential endpoint's answer, and ``botocore.auth`` the canonical
request it signs (with the ``x-amz-security-token`` header: the session token of temporary credentials,
an assumed role's included). One ``logging.basicConfig(level=DEBUG)`` in an application would write its
secrets and credentials to its logs.

A filter on a logger sees only the records created on that logger, not those propagated from its
children, so :data:`REDACTED_LOGGERS` names each logger that emits such records and :func:`install`
puts one shared filter on each. The filter keeps the record (DEBUG logs still show that a request or
response happened, and which) but replaces every argument of its message with a fixed marker and drops
any exception text it carries; records without arguments are constant strings from botocore's source
and pass unchanged. urllib3 logs request lines and status codes, never bodies, so it needs no filter.
"""

from __future__ import annotations

import logging
import re
import threading

__all__ = ["REDACTED", "REDACTED_LOGGERS", "install"]

REDACTED_LOGGERS = (
    "botocore.endpoint",
    "botocore.parsers",
    "botocore.awsrequest",
    "botocore.handlers",
    "botocore.utils",
    "botocore.auth",
    "boto3.resources.action",
)
"""The loggers whose records can carry a request or response body or parameters (botocore 1.3x-1.4x)."""

REDACTED = "<removed by secretcache: may hold a secret value>"

# A printf conversion in a message template (``%s``, ``%r``, ``%(name)s``, ``%-10.3f``); ``%%`` is kept.
_CONVERSION = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[hlL]?[diouxXeEfFgGcrsa]")


class _Redactor(logging.Filter):
    """Rewrites a record's arguments (and exception text) to :data:`REDACTED`; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args or not isinstance(record.msg, str):
            template = record.msg if isinstance(record.msg, str) else type(record.msg).__name__
            record.msg = _CONVERSION.sub(REDACTED, template).replace("%%", "%")
            record.args = None
        if record.exc_info or record.exc_text:
            # A traceback's text holds no locals, but an exception's message may quote a body: keep its type.
            error = record.exc_info[1] if record.exc_info else None
            kind = type(error).__name__ if error is not None else "exception"
            record.msg = f"{record.msg} [{kind}: message and traceback {REDACTED[1:-1]}]"
            record.exc_info = None
            record.exc_text = None
        return True


_REDACTOR = _Redactor()
_lock = threading.Lock()


def install() -> None:
    """Put the redacting filter on every logger of :data:`REDACTED_LOGGERS`, once each.

    Idempotent and cheap: called whenever a backend creates or is given a client, so a logger whose
    filters were reset by a logging reconfiguration gets it back with the next client.
    """
    with _lock:
        for name in REDACTED_LOGGERS:
            logger = logging.getLogger(name)
            if _REDACTOR not in logger.filters:
                logger.addFilter(_REDACTOR)
