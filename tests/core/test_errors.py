"""The error hierarchy and the AWS error code mapping."""

from __future__ import annotations

import pickle

import pytest

import secretcache
from secretcache import errors
from secretcache.errors import (
    InvalidReferenceError,
    SecretAccessDeniedError,
    SecretCacheError,
    SecretDecryptionError,
    SecretDeletedError,
    SecretFormatError,
    SecretNotFoundError,
    SecretThrottledError,
    SecretUnavailableError,
    error_for_code,
)

ALL = [SecretNotFoundError, SecretAccessDeniedError, SecretDecryptionError, SecretDeletedError,
       SecretUnavailableError, SecretThrottledError, SecretFormatError, InvalidReferenceError]


def test_hierarchy() -> None:
    assert all(issubclass(cls, SecretCacheError) for cls in ALL)
    assert issubclass(SecretThrottledError, SecretUnavailableError)
    assert issubclass(InvalidReferenceError, ValueError)
    assert not issubclass(SecretFormatError, ValueError)
    assert not any(issubclass(cls, SecretUnavailableError) for cls in ALL if cls not in
                   (SecretUnavailableError, SecretThrottledError))


def test_every_error_is_exported_from_the_package() -> None:
    for cls in [SecretCacheError, *ALL]:
        assert getattr(secretcache, cls.__name__) is cls
        assert cls.__name__ in errors.__all__


@pytest.mark.parametrize("cls", [SecretCacheError, *ALL])
def test_errors_carry_secret_id_and_code_and_show_them(cls: type[SecretCacheError]) -> None:
    if cls is InvalidReferenceError:
        error: SecretCacheError = InvalidReferenceError("bad ref 'x y'", reference="x y", secret_id="x y")
    else:
        error = cls("failed (secret 'app/db')", secret_id="app/db", code="SomeCode")
        assert error.code == "SomeCode"
    assert error.secret_id in repr(error)  # type: ignore[operator]
    assert type(error).__name__ in repr(error)


@pytest.mark.parametrize("cls", [SecretCacheError, *ALL])
def test_copy_is_a_fresh_exception_of_the_same_type_and_data(cls: type[SecretCacheError]) -> None:
    if cls is InvalidReferenceError:
        original: SecretCacheError = InvalidReferenceError("bad", reference="r", secret_id="s")
    else:
        original = cls("boom", secret_id="s", code="C")
    try:
        raise original
    except SecretCacheError as e:
        caught = e
    clone = caught.copy()
    assert type(clone) is cls
    assert clone is not caught
    assert (str(clone), clone.secret_id, clone.code) == (str(caught), caught.secret_id, caught.code)
    assert clone.__traceback__ is None
    assert clone.__cause__ is None
    if isinstance(clone, InvalidReferenceError):
        assert clone.reference == "r"


@pytest.mark.parametrize("cls", [SecretCacheError, SecretThrottledError, InvalidReferenceError])
def test_errors_survive_pickling_with_their_ids(cls: type[SecretCacheError]) -> None:
    code = None if cls is InvalidReferenceError else "C"
    error = cls("boom", secret_id="s") if code is None else cls("boom", secret_id="s", code=code)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is cls
    assert str(copy) == "boom"
    assert copy.secret_id == "s"
    assert copy.code == error.code


@pytest.mark.parametrize(("code", "status", "cls"), [
    ("ResourceNotFoundException", 400, SecretNotFoundError),
    ("AccessDeniedException", 400, SecretAccessDeniedError),
    ("AccessDenied", 403, SecretAccessDeniedError),
    ("UnrecognizedClientException", 400, SecretAccessDeniedError),
    ("InvalidSignatureException", 400, SecretAccessDeniedError),
    ("ExpiredTokenException", 400, SecretAccessDeniedError),
    ("DecryptionFailure", 400, SecretDecryptionError),
    ("KMSAccessDeniedException", 400, SecretDecryptionError),
    ("ThrottlingException", 400, SecretThrottledError),
    ("Throttling", 400, SecretThrottledError),
    ("TooManyRequestsException", 429, SecretThrottledError),
    ("RequestLimitExceeded", 400, SecretThrottledError),
    ("InternalServiceError", 500, SecretUnavailableError),
    ("InternalFailure", 500, SecretUnavailableError),
    ("ServiceUnavailable", 503, SecretUnavailableError),
    ("SomethingNew", 502, SecretUnavailableError),
    (None, 504, SecretUnavailableError),
    (None, 429, SecretThrottledError),
    ("InvalidParameterException", 400, SecretCacheError),
    ("SomethingNew", 400, SecretCacheError),
    (None, None, SecretCacheError),
])
def test_error_codes_map_to_typed_errors(
    code: str | None, status: int | None, cls: type[SecretCacheError]
) -> None:
    error = error_for_code(code, "AWS says no", secret_id="app/db", http_status=status)
    assert type(error) is cls
    assert error.code == code
    assert error.secret_id == "app/db"
    assert "app/db" in str(error)
    assert "AWS says no" in str(error)
    if code:
        assert code in str(error)


@pytest.mark.parametrize("message", [
    "You can't perform this operation on the secret because it was marked for deletion.",  # AWS
    "An error occurred (InvalidRequestException) when calling the GetSecretValue operation: You tried to "
    "perform the operation on a secret that's currently marked deleted.",  # moto
])
def test_invalid_request_marked_for_deletion_is_secret_deleted(message: str) -> None:
    error = error_for_code("InvalidRequestException", message, secret_id="app/db")
    assert type(error) is SecretDeletedError
    assert error.code == "InvalidRequestException"


def test_other_invalid_requests_mean_no_such_version() -> None:
    error = error_for_code("InvalidRequestException",
                           "You provided a VersionStage that is not associated to the "
                           "provided VersionId.", secret_id="app/db")
    assert type(error) is SecretNotFoundError


def test_transient_and_permanent_are_told_apart_by_type() -> None:
    transient = [error_for_code(c, "m", secret_id="s", http_status=s) for c, s in
                 [("ThrottlingException", 400), ("InternalServiceError", 500), (None, 503)]]
    permanent = [error_for_code(c, "m", secret_id="s", http_status=400) for c in
                 ["ResourceNotFoundException", "AccessDeniedException", "DecryptionFailure"]]
    assert all(isinstance(e, SecretUnavailableError) for e in transient)
    assert not any(isinstance(e, SecretUnavailableError) for e in permanent)


# -- throttling and transient codes come from botocore's own retry configuration --------------------


def _botocore_retry_tables() -> tuple[set[str], set[str]]:
    """Read botocore's retry configuration here, independently of errors.py: (throttling, transient)."""
    from botocore.loaders import create_loader
    from botocore.retries import standard

    throttled = set(standard.ThrottledRetryableChecker()._throttled_error_codes)
    transient = set(standard.TransientRetryableChecker()._transient_error_codes)
    config = create_loader().load_data("_retry")
    for service in ("__default__", "secretsmanager"):
        for policy in (config["retry"].get(service) or {}).get("policies", {}).values():
            definition = config["definitions"][policy["$ref"]] if "$ref" in policy else policy
            code = definition["applies_when"].get("response", {}).get("service_error_code")
            if code:
                throttled.add(code)
    return throttled, transient


@pytest.fixture(params=["with-the-copy", "botocore-only"])
def code_tables(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run a table test as it is, and with our copy of botocore's codes emptied: then every code goes
    through the lookup in botocore's own tables (what a code botocore learns after us takes)."""
    if request.param == "botocore-only":
        monkeypatch.setattr(errors, "_KNOWN_TRANSIENT", {})
        monkeypatch.setattr(errors, "_transient_table", None)


@pytest.mark.usefixtures("code_tables")
def test_every_code_botocore_retries_as_throttling_is_a_throttled_error() -> None:
    throttled, _ = _botocore_retry_tables()
    # The codes a hand-kept list used to miss, among them: proof the table is botocore's.
    assert {"RequestThrottledException", "ThrottledException", "LimitExceededException", "SlowDown",
            "PriorRequestNotComplete"} <= throttled
    for code in sorted(throttled):
        error = error_for_code(code, "slow down", secret_id="app/db", http_status=400)
        assert type(error) is SecretThrottledError, code
        assert error.code == code


@pytest.mark.usefixtures("code_tables")
def test_every_code_botocore_retries_as_transient_is_an_unavailable_error() -> None:
    _, transient = _botocore_retry_tables()
    assert {"RequestTimeout", "RequestTimeoutException"} <= transient
    for code in sorted(transient):
        error = error_for_code(code, "try again", secret_id="app/db", http_status=400)
        assert isinstance(error, SecretUnavailableError), code


def test_the_fallback_tables_cover_what_the_installed_botocore_retries() -> None:
    """The copy used only without botocore is not stale against the botocore we test with."""
    throttled, transient = _botocore_retry_tables()
    assert throttled <= set(errors._FALLBACK_THROTTLED)
    assert transient <= set(errors._FALLBACK_TRANSIENT)


def test_common_codes_need_no_botocore_and_an_unknown_one_is_looked_up_in_botocore() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import secretcache\n"
        "from secretcache.errors import error_for_code, SecretNotFoundError\n"
        "e = error_for_code('ResourceNotFoundException', 'm', secret_id='s')\n"
        "assert type(e) is SecretNotFoundError\n"
        "from secretcache.errors import SecretThrottledError, SecretUnavailableError\n"
        "assert type(error_for_code('SlowDown', 'm', secret_id='s')) is SecretThrottledError\n"
        "assert type(error_for_code('InternalServiceError', 'm', secret_id='s')) is SecretUnavailableError\n"
        "assert 'botocore' not in sys.modules, 'a common code imported botocore'\n"
        "error_for_code('SomethingNew', 'm', secret_id='s', http_status=400)\n"
        "assert 'botocore.retries.standard' in sys.modules, 'an unknown code was not looked up in botocore'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
