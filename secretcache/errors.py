"""The exception hierarchy.

Every error carries the secret id and the AWS error code, chains the backend's exception
(``raise ... from e``) and never carries a secret value: messages are built only from ids,
references, JSON key names, codes and AWS's own (value-free) messages.
"""

from __future__ import annotations

__all__ = [
    "AssumeRoleDeniedError",
    "AssumeRoleError",
    "AssumeRoleUnavailableError",
    "InvalidReferenceError",
    "OAuth2Error",
    "RegionNotConfiguredError",
    "SecretAccessDeniedError",
    "SecretCacheError",
    "SecretDecryptionError",
    "SecretDeletedError",
    "SecretFormatError",
    "SecretNotFoundError",
    "SecretThrottledError",
    "SecretUnavailableError",
    "error_for_code",
]


class SecretCacheError(Exception):
    """Base class: anything secretcache raises about a secret."""

    def __init__(self, message: str, *, secret_id: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.secret_id = secret_id
        self.code = code

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r}, secret_id={self.secret_id!r}, code={self.code!r})"

    def copy(self) -> SecretCacheError:
        """A fresh exception of the same type and message, for raising to one more caller.

        Re-raising one stored instance would grow its traceback on every raise (the official
        library keeps ~87 MiB after 1 s of that); a copy chained to the original does not.
        """
        return type(self)(str(self), secret_id=self.secret_id, code=self.code)


class SecretNotFoundError(SecretCacheError):
    """No such secret, or no version with the requested stage or id."""


class SecretAccessDeniedError(SecretCacheError):
    """The caller's credentials may not read the secret (or its KMS key)."""


class SecretDecryptionError(SecretCacheError):
    """KMS could not decrypt the secret."""


class SecretDeletedError(SecretCacheError):
    """The secret is scheduled for deletion."""


class SecretUnavailableError(SecretCacheError):
    """A transient failure: throttling, 5xx, timeout or connection error. Worth retrying later."""


class SecretThrottledError(SecretUnavailableError):
    """Secrets Manager throttled the request."""


class SecretFormatError(SecretCacheError):
    """The value does not have the shape asked for: binary vs string, invalid JSON, a missing key, too large."""


class AssumeRoleError(SecretCacheError):
    """``sts:AssumeRole`` failed for a backend that reads through a role (``AwsBackend(role_arn=...)``):
    the role, its trust policy or STS is at fault, not the secret. Raised as such for a configuration
    STS refuses (an invalid external id or session name); otherwise as one of its two subclasses."""


class AssumeRoleDeniedError(SecretAccessDeniedError, AssumeRoleError):
    """STS refused to let the caller assume the role (its trust policy, a wrong external id, STS
    disabled in the Region, expired source credentials). Permanent, like every denial."""


class AssumeRoleUnavailableError(SecretUnavailableError, AssumeRoleError):
    """STS throttled the AssumeRole call, failed (5xx) or could not be reached. Transient: a cached
    value is served where ``stale_if_error`` allows."""


class OAuth2Error(SecretCacheError):
    """An OAuth 2 token endpoint refused to issue a token, or answered something that is not one.

    ``code`` is the endpoint's ``error`` (``invalid_client``, ``invalid_scope``, ...) or ``http_<status>``;
    the message names the secret, the token URL and the HTTP status, never the endpoint's body."""


class RegionNotConfiguredError(SecretCacheError):
    """No AWS Region is set anywhere an AWS client looks (the message names every place). Permanent."""


class InvalidReferenceError(SecretCacheError, ValueError):
    """A secret id or reference is malformed. The message names the reference, never a value."""

    def __init__(self, message: str, *, reference: str | None = None, secret_id: str | None = None) -> None:
        super().__init__(message, secret_id=secret_id)
        self.reference = reference

    def copy(self) -> SecretCacheError:
        return InvalidReferenceError(str(self), reference=self.reference, secret_id=self.secret_id)


_PERMANENT: dict[str, type[SecretCacheError]] = {
    "ResourceNotFoundException": SecretNotFoundError,
    "AccessDeniedException": SecretAccessDeniedError,
    "AccessDenied": SecretAccessDeniedError,
    "UnrecognizedClientException": SecretAccessDeniedError,
    "InvalidSignatureException": SecretAccessDeniedError,
    "ExpiredTokenException": SecretAccessDeniedError,
    "DecryptionFailure": SecretDecryptionError,
    "KMSAccessDeniedException": SecretDecryptionError,
    # Parameter Store's codes for the same cases.
    "ParameterNotFound": SecretNotFoundError,
    "ParameterVersionNotFound": SecretNotFoundError,
    "InvalidKeyId": SecretDecryptionError,
}

# Secrets Manager's own 5xx codes: transient whatever HTTP status an intermediary (the agent) reports.
_SERVICE_TRANSIENT = ("InternalServiceError", "InternalFailure", "ServiceUnavailable", "InternalServerError")

# botocore 1.44's throttled and transient codes, for two uses: the codes every process meets are
# classified without importing botocore's retry machinery (an AgentBackend or InMemoryBackend process
# never loads botocore for a throttle), and they stand in for botocore's tables where botocore cannot
# be imported. Any other code is looked up in botocore's own tables (see _retry_codes), so an upgrade
# that teaches botocore a new throttling code teaches us too; tests/core/test_errors.py checks that this
# copy still covers what the installed botocore retries.
_FALLBACK_THROTTLED = (
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
    "TooManyRequestsException", "ProvisionedThroughputExceededException", "TransactionInProgressException",
    "RequestLimitExceeded", "BandwidthLimitExceeded", "LimitExceededException", "RequestThrottled", "SlowDown",
    "PriorRequestNotComplete", "EC2ThrottledException",
    "TooManyUpdates",  # Parameter Store's throttling of writes to one parameter (not in botocore's tables)
)
_FALLBACK_TRANSIENT = ("RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete")

_KNOWN_TRANSIENT: dict[str, type[SecretCacheError]] = {
    **dict.fromkeys(_SERVICE_TRANSIENT, SecretUnavailableError),
    **dict.fromkeys(_FALLBACK_TRANSIENT, SecretUnavailableError),
    **dict.fromkeys(_FALLBACK_THROTTLED, SecretThrottledError),  # a code in both lists is throttling
}

_transient_table: dict[str, type[SecretCacheError]] | None = None


def _retry_codes() -> tuple[frozenset[str], frozenset[str]]:
    """(throttling codes, transient codes) exactly as botocore's own retry logic classifies them.

    Read from botocore itself rather than copied, so the two cannot drift: the standard retry mode's
    throttled and transient checkers, plus every ``service_error_code`` of the legacy mode's default
    and Secrets Manager policies in ``botocore/data/_retry.json`` (all of which are throttling codes).
    Anything missing in a future botocore falls back to the copy above instead of failing.
    """
    try:
        from botocore.retries import standard
    except ImportError:
        return frozenset(_FALLBACK_THROTTLED), frozenset(_FALLBACK_TRANSIENT)
    throttled = set(getattr(standard.ThrottledRetryableChecker, "_THROTTLED_ERROR_CODES", _FALLBACK_THROTTLED))
    transient = set(getattr(standard.TransientRetryableChecker, "_TRANSIENT_ERROR_CODES", _FALLBACK_TRANSIENT))
    throttled.update(_legacy_retry_codes())
    return frozenset(throttled), frozenset(transient)


def _legacy_retry_codes() -> set[str]:
    """The error codes of botocore's legacy retry policies (``_retry.json``) that apply to Secrets Manager."""
    try:
        from botocore.loaders import create_loader

        config = create_loader().load_data("_retry")
        definitions = config.get("definitions", {})
        codes: set[str] = set()
        for service in ("__default__", "secretsmanager"):
            for policy in ((config.get("retry", {}).get(service) or {}).get("policies") or {}).values():
                if "$ref" in policy:
                    policy = definitions.get(policy["$ref"], {})
                code = policy.get("applies_when", {}).get("response", {}).get("service_error_code")
                if isinstance(code, str):
                    codes.add(code)
        return codes
    except Exception:  # an unreadable or reshaped data file: the standard mode's tables still apply
        return set()


def _transient_codes() -> dict[str, type[SecretCacheError]]:
    """The transient code table, built on first need (not at import: ``import secretcache`` stays light)."""
    global _transient_table
    table = _transient_table
    if table is None:
        throttled, transient = _retry_codes()
        table = dict.fromkeys(_SERVICE_TRANSIENT, SecretUnavailableError)
        table.update(dict.fromkeys(transient, SecretUnavailableError))
        table.update(dict.fromkeys(throttled, SecretThrottledError))  # a code in both lists is throttling
        _transient_table = table  # computing twice in a race is harmless: same result
    return table


def error_for_code(
    code: str | None, message: str, *, secret_id: str | None, http_status: int | None = None
) -> SecretCacheError:
    """Map an AWS error code (and HTTP status) to the typed error a caller sees.

    ``InvalidRequestException`` means "marked for deletion" (AWS) / "marked deleted" (moto) or a
    stage/version mismatch; both are permanent. Throttling and transient codes are the ones botocore
    itself retries as such (botocore's tables are read on the first code that is in neither our copy of
    them nor the permanent table).
    Unknown 5xx are transient; unknown 4xx are permanent.
    """
    where = [f"secret {secret_id!r}"] if secret_id is not None else []
    if code:
        where.append(f"code {code}")
    text = f"{message} ({', '.join(where)})" if where else message
    if code in _PERMANENT:
        return _PERMANENT[code](text, secret_id=secret_id, code=code)
    if code == "InvalidRequestException":
        lowered = message.lower()
        if "deleted" in lowered or "deletion" in lowered:
            return SecretDeletedError(text, secret_id=secret_id, code=code)
        return SecretNotFoundError(text, secret_id=secret_id, code=code)
    if code:
        transient = _KNOWN_TRANSIENT.get(code) or _transient_codes().get(code)
        if transient is not None:
            return transient(text, secret_id=secret_id, code=code)
    if http_status is not None and http_status >= 500:
        return SecretUnavailableError(text, secret_id=secret_id, code=code)
    if http_status == 429:
        return SecretThrottledError(text, secret_id=secret_id, code=code)
    return SecretCacheError(text, secret_id=secret_id, code=code)
