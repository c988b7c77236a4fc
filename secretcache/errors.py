"""The exception hierarchy.

Every error carries the secret id and the AWS error code, chains the backend's exception
(``raise ... from e``) and never carries a secret value: messages are built only from ids,
references, JSON key names, codes and AWS's own (value-free) messages.
"""

from __future__ import annotations

__all__ = [
    "InvalidReferenceError",
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
}

_TRANSIENT: dict[str, type[SecretCacheError]] = {
    "ThrottlingException": SecretThrottledError,
    "Throttling": SecretThrottledError,
    "TooManyRequestsException": SecretThrottledError,
    "RequestLimitExceeded": SecretThrottledError,
    "InternalServiceError": SecretUnavailableError,
    "InternalFailure": SecretUnavailableError,
    "ServiceUnavailable": SecretUnavailableError,
}


def error_for_code(
    code: str | None, message: str, *, secret_id: str | None, http_status: int | None = None
) -> SecretCacheError:
    """Map an AWS error code (and HTTP status) to the typed error a caller sees.

    ``InvalidRequestException`` means "marked for deletion" (AWS) / "marked deleted" (moto) or a
    stage/version mismatch; both are permanent. Unknown 5xx are transient; unknown 4xx are permanent.
    """
    where = [f"secret {secret_id!r}"] if secret_id is not None else []
    if code:
        where.append(f"code {code}")
    text = f"{message} ({', '.join(where)})" if where else message
    if code in _TRANSIENT:
        return _TRANSIENT[code](text, secret_id=secret_id, code=code)
    if code in _PERMANENT:
        return _PERMANENT[code](text, secret_id=secret_id, code=code)
    if code == "InvalidRequestException":
        lowered = message.lower()
        if "deleted" in lowered or "deletion" in lowered:
            return SecretDeletedError(text, secret_id=secret_id, code=code)
        return SecretNotFoundError(text, secret_id=secret_id, code=code)
    if http_status is not None and http_status >= 500:
        return SecretUnavailableError(text, secret_id=secret_id, code=code)
    if http_status == 429:
        return SecretThrottledError(text, secret_id=secret_id, code=code)
    return SecretCacheError(text, secret_id=secret_id, code=code)
