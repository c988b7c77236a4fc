"""SecretValue and SecretRef: immutability, redaction, JSON copies, the size limit, every reference form."""

from __future__ import annotations

import json
import pickle
import sys
from datetime import datetime, timezone
from typing import Any

import pytest

from secretcache.errors import InvalidReferenceError, SecretFormatError
from secretcache.model import (
    MAX_SECRET_BYTES,
    SecretRef,
    SecretValue,
    find_references,
    is_reference,
    render_template,
    validate_secret_id,
)
from tests.fixtures.fix_canary import CANARY, canary_value

ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf"
PARTIAL = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db"


def no_package_frame_holds(error: BaseException, secret: str) -> None:
    """No local variable of a secretcache frame in the traceback shows the secret (what Sentry-style
    reporters capture), and no chained exception carries it either."""
    tb = error.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if "/secretcache/" in frame.f_code.co_filename:
            for name, local in frame.f_locals.items():
                assert secret not in repr(local), f"local {name!r} of {frame.f_code.co_name} holds the value"
        tb = tb.tb_next
    for chained in (error.__cause__, error.__context__):
        if chained is not None:
            assert secret not in repr(chained)
            assert secret not in repr(vars(chained))


# -- SecretValue ------------------------------------------------------------------------------------

def test_secret_value_holds_exactly_one_of_string_and_binary() -> None:
    assert SecretValue("a", secret_string="s").secret_binary is None
    assert SecretValue("a", secret_binary=b"b").secret_string is None
    for kwargs in ({}, {"secret_string": "s", "secret_binary": b"b"}):
        with pytest.raises(SecretFormatError, match="exactly one"):
            SecretValue("a", **kwargs)


@pytest.mark.parametrize("kwargs", [
    {"secret_string": b"bytes"}, {"secret_string": 5}, {"secret_binary": "str"},
    {"secret_binary": 5}, {"secret_binary": [1]},
])
def test_secret_value_rejects_wrong_value_types_naming_the_type(kwargs: dict[str, Any]) -> None:
    with pytest.raises(SecretFormatError) as info:
        SecretValue("app/x", **kwargs)
    assert "app/x" in str(info.value)
    assert type(next(iter(kwargs.values()))).__name__ in str(info.value)


def test_secret_binary_accepts_bytes_like_and_stores_bytes() -> None:
    for raw in (bytearray(b"ab"), memoryview(b"ab")):
        value = SecretValue("a", secret_binary=raw)
        assert type(value.secret_binary) is bytes
        assert value.secret_binary == b"ab"


def test_the_size_limit_is_65536_encoded_bytes() -> None:
    SecretValue("a", secret_string="x" * MAX_SECRET_BYTES)
    SecretValue("a", secret_binary=b"x" * MAX_SECRET_BYTES)
    SecretValue("a", secret_string="é" * (MAX_SECRET_BYTES // 2))
    for kwargs in ({"secret_string": CANARY + "x" * MAX_SECRET_BYTES},
                   {"secret_binary": CANARY.encode() + b"x" * MAX_SECRET_BYTES},
                   {"secret_string": "é" * (MAX_SECRET_BYTES // 2) + "x"}):
        with pytest.raises(SecretFormatError) as info:
            SecretValue("app/big", **kwargs)
        assert "app/big" in str(info.value)
        assert "65536" in str(info.value)
        assert CANARY not in str(info.value)


def test_secret_value_is_immutable() -> None:
    value = SecretValue("a", secret_string="s")
    with pytest.raises(AttributeError):
        value.secret_string = "t"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del value.name  # type: ignore[misc]
    with pytest.raises(AttributeError):
        value.extra = 1  # type: ignore[attr-defined]
    assert not hasattr(value, "__dict__")


def test_repr_and_str_show_ids_and_never_the_value() -> None:
    secret = canary_value("repr")
    for value in (SecretValue("app/db", ARN, "v1", ("AWSCURRENT",), secret_string=secret),
                  SecretValue("app/db", ARN, "v1", ("AWSCURRENT",), secret_binary=secret.encode())):
        for text in (repr(value), str(value), f"{value}", f"{value!r}", repr([value]), repr({"v": value})):
            assert CANARY not in text
            assert "app/db" in text
            assert "redacted" in text


def test_fields_round_trip_and_pickling_keeps_them() -> None:
    created = datetime(2024, 1, 2, tzinfo=timezone.utc)
    value = SecretValue("prod/db", ARN, "v-1", ["AWSCURRENT", "AWSPENDING"], secret_string="s",
                        created_date=created)
    assert value.arn == ARN
    assert value.version_stages == ("AWSCURRENT", "AWSPENDING")
    assert value.created_date == created
    assert value.version_id == "v-1"
    copy = pickle.loads(pickle.dumps(value))
    fields = (copy.name, copy.arn, copy.version_id, copy.version_stages, copy.secret_string,
              copy.created_date)
    assert fields == ("prod/db", ARN, "v-1", ("AWSCURRENT", "AWSPENDING"), "s", created)
    other = SecretValue("x", "arn:aws:secretsmanager:us-east-1:123456789012:secret:other-name-zzzzzz",
                        secret_string="s")
    assert other.arn == "arn:aws:secretsmanager:us-east-1:123456789012:secret:other-name-zzzzzz"
    assert SecretValue("x", secret_string="s").arn is None


def test_json_returns_a_fresh_copy_every_time_flat_and_nested() -> None:
    flat = SecretValue("a", secret_string=json.dumps({"user": "u", "password": "p", "port": 1}))
    first = flat.json()
    first["password"] = "changed"
    assert flat.json() == {"user": "u", "password": "p", "port": 1}
    assert flat.json() is not flat.json()
    nested = SecretValue("b", secret_string=json.dumps({"a": {"b": [1, {"c": 2}]}}))
    got = nested.json()
    got["a"]["b"][1]["c"] = 3
    got["a"]["b"].append(4)
    assert nested.json() == {"a": {"b": [1, {"c": 2}]}}


def test_field_renders_non_strings_as_json() -> None:
    value = SecretValue("a", secret_string=json.dumps({"s": "x", "n": 5432, "f": 1.5, "t": True, "z": None,
                                                        "o": {"k": [1, 2]}, "u": "ünï"}))
    assert [value.field(k) for k in "snftzo"] == ["x", "5432", "1.5", "true", "null", '{"k":[1,2]}']
    assert value.field("u") == "ünï"
    assert value.field("n") == "5432"  # cached rendering, same answer


@pytest.mark.parametrize(("text", "why"), [
    ("not json {CANARY}", "not valid JSON"),
    ('["{CANARY}"]', "not an object"),
    ('"{CANARY}"', "not an object"),
    ("12345", "not an object"),
    ('{"password": "{CANARY}"', "not valid JSON"),
])
def test_json_errors_say_why_and_never_carry_the_value(text: str, why: str) -> None:
    secret_text = text.replace("{CANARY}", canary_value("json"))
    value = SecretValue("app/cfg", secret_string=secret_text)
    for call in (value.json, lambda: value.field("password")):
        with pytest.raises(SecretFormatError) as info:
            call()
        error = info.value
        assert why in str(error)
        assert "app/cfg" in str(error)
        assert CANARY not in str(error)
        assert CANARY not in repr(error)
        assert error.__cause__ is None
        no_package_frame_holds(error, CANARY)


def test_a_missing_json_key_names_the_key_and_no_frame_holds_the_parsed_object() -> None:
    value = SecretValue("app/db", secret_string=json.dumps({"password": canary_value("key")}))
    with pytest.raises(SecretFormatError) as info:
        value.field("passwd")
    assert "'passwd'" in str(info.value)
    assert "app/db" in str(info.value)
    no_package_frame_holds(info.value, CANARY)


def test_deeply_nested_json_is_copied_without_recursing_in_python() -> None:
    depth = 800  # copy.deepcopy would hit the recursion limit here; json.loads does not
    value = SecretValue("app/deep", secret_string='{"k": ' + "[" * depth + "]" * depth + "}")
    first = value.json()
    first["k"].append(1)
    assert len(first["k"]) == 2
    assert len(value.json()["k"]) == 1  # the cache's copy did not change
    assert value.field("k").startswith("[[")


# How deep json.loads nests depends on the Python: its C scanner recurses, and each version bounds that
# recursion differently. 3.10 and 3.11 count it against the interpreter's limit (sys.getrecursionlimit(), 1000
# by default: about 994 levels parse); 3.12 against the C recursion limit (about 1,500 levels in 3.12.1);
# 3.13 against a C limit of 10,000 (about 9,998 levels). Per version: (a depth that parses, one that does not).
# A later Python is held to the oldest behaviour we accept (800 levels parse) and to refusing a million levels.
JSON_NESTING = {
    (3, 10): (800, 1_000),
    (3, 11): (800, 1_000),
    (3, 12): (1_000, 5_000),
    (3, 13): (5_000, 20_000),
}
NESTING_PARSED, NESTING_REFUSED = JSON_NESTING.get(sys.version_info[:2], (800, 1_000_000))
# An integer past 4,300 digits: refused by int() since 3.10.7 and 3.11 (sys.set_int_max_str_digits, the
# CVE-2020-10735 fix); 3.10.0 to 3.10.6 parse it.
INT_DIGITS_LIMITED = hasattr(sys, "get_int_max_str_digits")


def nested(depth: int) -> str:
    return '{"k": ' + "[" * depth + "]" * depth + "}"


def test_json_nesting_this_python_parses_is_served_and_rendered() -> None:
    value = SecretValue("app/deep", secret_string=nested(NESTING_PARSED))
    assert value.json()["k"] == value.json()["k"]
    assert value.field("k") == "[" * NESTING_PARSED + "]" * NESTING_PARSED


def test_json_nesting_this_python_refuses_is_a_format_error_not_a_crash() -> None:
    value = SecretValue("app/odd", secret_string=nested(NESTING_REFUSED))
    for call in (value.json, lambda: value.field("k")):
        with pytest.raises(SecretFormatError, match="app/odd") as info:
            call()
        assert info.value.__cause__ is None
        assert info.value.__context__ is None


def test_a_5000_digit_integer_is_a_format_error_where_python_limits_digits_and_a_value_elsewhere() -> None:
    value = SecretValue("app/odd", secret_string='{"n": ' + "7" * 5000 + "}")
    if not INT_DIGITS_LIMITED:
        assert value.field("n") == "7" * 5000
        return
    for call in (value.json, lambda: value.field("n")):
        with pytest.raises(SecretFormatError, match="app/odd") as info:
            call()
        assert info.value.__cause__ is None
        assert info.value.__context__ is None


def test_json_of_a_binary_secret_is_a_format_error() -> None:
    with pytest.raises(SecretFormatError, match="binary"):
        SecretValue("a", secret_binary=b"{}").json()


# -- secret ids -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("secret_id", [
    "prod/db", "a", "A-Z_a-z0-9/+=.@-", "x" * 512, ARN, PARTIAL,
    "arn:aws-cn:secretsmanager:cn-north-1:123456789012:secret:n",
    "arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:n-AbCdEf",
])
def test_valid_secret_ids(secret_id: str) -> None:
    assert validate_secret_id(secret_id) == secret_id
    assert SecretRef.parse(secret_id) == SecretRef(secret_id)


@pytest.mark.parametrize("secret_id", [
    "", " ", "a b", "a\nb", "x" * 513, "é", "a:b", "arn:aws:secretsmanager:eu-west-1:1234:secret:n",
    "arn:aws:secretsmanager:eu-west-1:123456789012:parameter:n",
    "arn:aws:ssm:eu-west-1:123456789012:secret:n",
    "arn:aws:secretsmanager:eu-west-1:123456789012:secret:",
])
def test_invalid_secret_ids_raise_invalid_reference_error_naming_them(secret_id: str) -> None:
    with pytest.raises(InvalidReferenceError) as info:
        validate_secret_id(secret_id)
    assert isinstance(info.value, ValueError)
    if secret_id and len(secret_id) < 100:
        assert repr(secret_id)[1:-1] in str(info.value)


@pytest.mark.parametrize("secret_id", [None, 1, 1.0, b"x", ["x"], ("x",), {"x": 1}, object()])
def test_non_string_ids_raise_invalid_reference_error_naming_the_type(secret_id: Any) -> None:
    with pytest.raises(InvalidReferenceError, match=type(secret_id).__name__):
        validate_secret_id(secret_id)
    with pytest.raises(InvalidReferenceError):
        SecretRef.parse(secret_id)


# -- reference forms --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("reference", "expected"), [
    ("prod/db", SecretRef("prod/db")),
    ("prod/db#password", SecretRef("prod/db", "password")),
    ("prod/db#a#b", SecretRef("prod/db", "a#b")),
    (f"{ARN}#password", SecretRef(ARN, "password")),
    (f"{ARN}:password::", SecretRef(ARN, "password")),
    (f"{ARN}:::", SecretRef(ARN)),
    (f"{ARN}::AWSPREVIOUS:", SecretRef(ARN, None, "AWSPREVIOUS")),
    (f"{ARN}:password::v-123", SecretRef(ARN, "password", None, "v-123")),
    (f"{PARTIAL}:password:AWSPENDING:", SecretRef(PARTIAL, "password", "AWSPENDING")),
    (f"{ARN}:a#b::", SecretRef(ARN, "a#b")),  # an ECS JSON key may hold '#'
    (f"{ARN}#key:with:colons", SecretRef(ARN, "key:with:colons")),  # and an id#key may hold ':'
    (f"{PARTIAL}#k", SecretRef(PARTIAL, "k")),
    ("{{resolve:secretsmanager:prod/db}}", SecretRef("prod/db")),
    ("{{resolve:secretsmanager:prod/db:SecretString}}", SecretRef("prod/db")),
    ("{{resolve:secretsmanager:prod/db:SecretString:password}}", SecretRef("prod/db", "password")),
    ("{{resolve:secretsmanager:prod/db:SecretString:password:AWSPREVIOUS}}",
     SecretRef("prod/db", "password", "AWSPREVIOUS")),
    ("{{resolve:secretsmanager:prod/db:SecretString:::v-9}}", SecretRef("prod/db", None, None, "v-9")),
    (f"{{{{resolve:secretsmanager:{ARN}:SecretString:password}}}}", SecretRef(ARN, "password")),
    (f"{{{{resolve:secretsmanager:{ARN}}}}}", SecretRef(ARN)),
])
def test_every_reference_form_parses(reference: str, expected: SecretRef) -> None:
    assert SecretRef.parse(reference) == expected


@pytest.mark.parametrize("reference", [
    "", "prod/db#", "#password", f"{ARN}:password", f"{ARN}:a:b", f"{ARN}:a:b:c:d",
    f"{ARN}:password:AWSCURRENT:v-1", "{{resolve:secretsmanager:}}",
    "{{resolve:secretsmanager:prod/db:SecretBinary}}",
    "{{resolve:secretsmanager:prod/db:SecretString:k:AWSCURRENT:v-1}}",
    "{{resolve:secretsmanager:prod/db:SecretString:k:s:v:extra}}", "{{resolve:ssm:x:label}}", "{{resolve:ssm-secure:}}",
    "{{resolve:secretsmanager:a",
    "bad id#key",
])
def test_malformed_references_raise_invalid_reference_error(reference: str) -> None:
    with pytest.raises(InvalidReferenceError) as info:
        SecretRef.parse(reference)
    assert info.value.reference is None or isinstance(info.value.reference, str)


def test_a_huge_reference_is_shown_bounded_in_the_message() -> None:
    blob = "bad id " + "y" * 10_000
    with pytest.raises(InvalidReferenceError) as info:
        SecretRef.parse(blob)
    assert len(str(info.value)) < 400


def test_str_of_a_reference_names_id_key_and_version() -> None:
    assert str(SecretRef("prod/db", "password", "AWSPREVIOUS")) == "prod/db#password (stage AWSPREVIOUS)"
    assert str(SecretRef("prod/db", None, None, "v1")) == "prod/db (version v1)"


def test_is_reference_recognises_ecs_arns_and_dynamic_references_only() -> None:
    assert is_reference(f"{ARN}:password::")
    assert is_reference("{{resolve:secretsmanager:prod/db}}")
    assert is_reference("pg://u:{{resolve:secretsmanager:prod/db:SecretString:password}}@h/db")
    assert not is_reference("prod/db")
    assert not is_reference("postgres://u:p@h/db")
    assert not is_reference("arn:aws:s3:::bucket")


def test_find_and_render_embedded_references_in_order() -> None:
    text = ("pg://{{resolve:secretsmanager:prod/db:SecretString:username}}:"
            "{{resolve:secretsmanager:prod/db:SecretString:password}}@h/db")
    refs = find_references(text)
    assert refs == [SecretRef("prod/db", "username"), SecretRef("prod/db", "password")]
    rendered = render_template(text, lambda r: (r.json_key or "").upper())
    assert rendered == "pg://USERNAME:PASSWORD@h/db"
    assert render_template("plain text", lambda r: pytest.fail("no reference here")) == "plain text"
    with pytest.raises(InvalidReferenceError):
        render_template("x {{resolve:secretsmanager:prod/db", lambda r: "v")


# -- repr never raises; values stay out of frames; JSON keys are bounded in messages -----------------


def _formatted_with_locals(error: BaseException) -> str:
    import traceback

    return "".join(traceback.TracebackException(type(error), error, error.__traceback__,
                                                capture_locals=True).format())


def test_the_repr_of_a_half_built_value_never_raises_and_shows_no_value() -> None:
    bare = SecretValue.__new__(SecretValue)
    assert repr(bare).startswith("SecretValue(")
    assert str(bare) == repr(bare)


def test_a_constructor_failing_part_way_leaves_no_value_in_any_frame() -> None:
    from tests.fixtures.fix_canary_checks import leaking_locals

    with pytest.raises(AttributeError) as info:
        SecretValue("app/half", arn=12345, secret_string=canary_value("half"))  # type: ignore[arg-type]
    assert leaking_locals(info.value) == []
    text = _formatted_with_locals(info.value)  # repr of the half-built `self` must work
    assert CANARY not in text
    assert "SecretValue(name=" in text


def test_a_value_built_by_user_code_keeps_raising_format_errors_without_the_value_in_frames() -> None:
    from tests.fixtures.fix_canary_checks import leaking_locals

    too_large = lambda: canary_value("user") * 5000  # noqa: E731  (the test frame holds no canary)
    with pytest.raises(SecretFormatError) as info:
        SecretValue("app/user", secret_string=too_large())
    assert leaking_locals(info.value) == []
    assert CANARY not in _formatted_with_locals(info.value)
    with pytest.raises(SecretFormatError):
        SecretValue("app/user", secret_string=12345)  # type: ignore[arg-type]


def test_a_lone_surrogate_is_measured_not_a_crash() -> None:
    value = SecretValue("app/s", secret_string="\ud800x")
    assert value.secret_string == "\ud800x"


@pytest.mark.parametrize("fields", [
    {"secret_string": 5}, {"secret_binary": "x"}, {"version_stages": [1]}, {"arn": 5}, {"name": None},
    {"version_stages": object()}, {"secret_string": None},
])
def test_an_answer_that_cannot_be_a_value_is_described_never_raised(fields: dict[str, Any]) -> None:
    from secretcache.model import value_from_answer

    given: dict[str, Any] = {"name": "app/a", "arn": None, "version_id": None, "version_stages": (),
                             "secret_string": canary_value("answer"), "secret_binary": None,
                             "created_date": None, **fields}
    outcome = value_from_answer(**given)
    assert isinstance(outcome, str)
    assert CANARY not in outcome


LONG_KEY = "k" * 10_000


def test_a_missing_ten_thousand_character_json_key_gives_a_bounded_message() -> None:
    value = SecretValue("app/json", secret_string=json.dumps({"a": canary_value("json")}))
    with pytest.raises(SecretFormatError) as info:
        value.field(LONG_KEY)
    assert len(str(info.value)) < 300
    assert "kkkk" in str(info.value)


def test_json_keys_in_messages_are_quoted_and_bounded_like_references() -> None:
    from secretcache.refs import shown_key

    assert shown_key("password") == "'password'"
    assert len(shown_key(LONG_KEY)) < 210
    assert len(shown_key([LONG_KEY])) < 210  # not a str (a caller's mistake): its repr, bounded


def test_database_and_decorator_messages_bound_long_json_keys() -> None:
    from secretcache import inject_secret
    from secretcache.db._params import PSYCOPG, merged, secret_params

    with pytest.raises(SecretFormatError) as info:
        merged({}, {}, secret_id="app/db", names=PSYCOPG, keys={"username": LONG_KEY})
    assert len(str(info.value)) < 400
    value = SecretValue("app/db", secret_string=json.dumps({LONG_KEY: 5.5, "host": "h"}))
    with pytest.raises(SecretFormatError) as info:
        secret_params(value, secret_id="app/db", names=PSYCOPG, keys={"username": LONG_KEY})
    assert len(str(info.value)) < 400
    with pytest.raises(TypeError) as type_info:
        inject_secret("app/db", fields={"user": [LONG_KEY]})  # type: ignore[dict-item]
    assert len(str(type_info.value)) < 400


def test_the_compat_decorator_bounds_a_long_missing_key() -> None:
    from secretcache import SecretCache, compat
    from secretcache.testing import InMemoryBackend

    native = SecretCache(backend=InMemoryBackend({"app/c": json.dumps({"a": "1"})}))
    legacy = compat.SecretCache.__new__(compat.SecretCache)
    legacy.cache = native

    @compat.InjectKeywordedSecretString("app/c", legacy, user=LONG_KEY)
    def use(*, user: str) -> str:
        return user

    with pytest.raises(SecretFormatError) as info:
        use()
    assert len(str(info.value)) < 400
