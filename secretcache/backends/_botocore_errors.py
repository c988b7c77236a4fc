"""botocore failures as the typed errors of :mod:`secretcache.errors`, for :class:`~.aws.AwsBackend`.

A service answer (``ClientError``) maps by its AWS error code; botocore's own exceptions map by kind:
missing credentials or Region and invalid requests are permanent (the configuration must change), and
their message ends with advice in the words of whoever configured the backend (the library's keywords,
or the ``secretcache`` command's options); everything else (connections, timeouts, credential endpoints
timing out, unparsable answers) is transient. botocore is imported only when a failure is mapped.
"""

from __future__ import annotations

from typing import NamedTuple

from ..errors import SecretAccessDeniedError, SecretCacheError, SecretUnavailableError, error_for_code

__all__ = ["COMMAND_LINE_ADVICE", "LIBRARY_ADVICE", "Advice", "map_botocore_error", "unreadable_answer"]

# botocore errors that retrying later cannot fix: the configuration must change. Everything else that
# botocore raises (connections, timeouts, credential endpoints timing out, unparsable answers) is transient.
_CREDENTIAL_ERRORS = (
    "NoCredentialsError", "PartialCredentialsError", "ProfileNotFound", "UnknownCredentialError",
    "SSOError", "SSOTokenLoadError", "UnauthorizedSSOTokenError", "NoAuthTokenError",
)
_CONFIG_ERRORS = (
    "NoRegionError", "UnknownEndpointError", "InvalidRegionError", "ParamValidationError", "ValidationError",
    "ConfigParseError", "DataNotFoundError", "InvalidConfigError", "UnsupportedSignatureVersionError",
)


class Advice(NamedTuple):
    """How the reader of a configuration error can fix it: the library's keywords, or the CLI's options."""

    region: str  # how to name the Region
    credentials: str  # what else can carry credentials, besides the standard chain ("" when nothing)


LIBRARY_ADVICE = Advice(region="pass region_name=", credentials=", or pass session= / client=")
COMMAND_LINE_ADVICE = Advice(region="pass --region", credentials="")


def map_botocore_error(
    error: Exception, secret_id: str | None, advice: Advice = LIBRARY_ADVICE
) -> SecretCacheError:
    """The typed error for a botocore / boto3 failure. Messages carry AWS's text and ids, never a value;
    a configuration error ends with ``advice``, in the words of whoever configured the backend."""
    from botocore.exceptions import ClientError

    if isinstance(error, ClientError):
        info = error.response.get("Error", {})
        code = info.get("Code") or None
        message = " ".join(str(info.get("Message") or "").split()) or "Secrets Manager refused the request"
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return error_for_code(code, message, secret_id=secret_id, http_status=status)
    kinds = {cls.__name__ for cls in type(error).__mro__}
    name = type(error).__name__
    if kinds.intersection(_CREDENTIAL_ERRORS):
        return SecretAccessDeniedError(
            f"no usable AWS credentials ({name}: {error}) reading secret {secret_id!r}: configure them with "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ~/.aws/credentials or an instance/task "
            f"role{advice.credentials}",
            secret_id=secret_id,
        )
    if "NoRegionError" in kinds:
        from .aws_clients import region_error

        return region_error(f"reading secret {secret_id!r}", advice.region, secret_id=secret_id)
    if kinds.intersection(_CONFIG_ERRORS):
        detail = " ".join(str(error).split())  # ParamValidationError reports span lines
        return SecretCacheError(f"invalid request for secret {secret_id!r}: {detail}", secret_id=secret_id)
    # Connection refused/closed, timeouts, proxies, TLS, credential endpoints, unparsable responses.
    return SecretUnavailableError(f"Secrets Manager unreachable reading secret {secret_id!r} ({name})",
                                  secret_id=secret_id)


def unreadable_answer(error: BaseException) -> str | None:
    """The error's type name when it is botocore failing to read an answer (a garbled body), else None.

    botocore raises whatever its parser hits on a body of the wrong shape (``AttributeError``,
    ``binascii.Error``, ``ValueError`` from a timestamp, its own ``ResponseParserError``), so this looks
    at where the error came from: botocore's response parser, or botocore's own code (an error raised
    by the caller's code, e.g. a stand-in client, passes through untyped as before).
    """
    if type(error).__name__ == "ResponseParserError":
        return "ResponseParserError"
    if type(error).__module__.split(".")[0] in ("botocore", "boto3"):
        return None  # botocore's typed errors are mapped by map_botocore_error
    modules: list[str] = []
    tb = error.__traceback__
    while tb is not None:
        modules.append(str(tb.tb_frame.f_globals.get("__name__", "")))
        tb = tb.tb_next
    if "botocore.parsers" in modules or (modules and modules[-1].split(".")[0] == "botocore"):
        return type(error).__name__
    return None
