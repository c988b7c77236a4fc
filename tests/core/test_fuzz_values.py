"""Property tests for ``SecretValue``: construction, ``json()`` and ``field()``.

Promises checked: construction accepts exactly one str-or-bytes value up to 65,536 bytes and raises
only :class:`SecretFormatError` otherwise; ``json()`` / ``field()`` raise only :class:`SecretFormatError`
whatever the text (invalid JSON, a non-object, absurd nesting, huge numbers); ``field()`` agrees with
``json.loads``; a caller mutating what ``json()`` returned never changes the next result; and neither
``repr`` nor ``str`` nor any error message carries the value.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from secretcache.errors import SecretFormatError
from secretcache.model import MAX_SECRET_BYTES, SecretValue
from tests.fixtures.fix_canary import CANARY
from tests.fixtures.fuzzing import counted, examples, outcome, report_fixture

_report = report_fixture("test_fuzz_values")

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=20,
)
json_objects = st.dictionaries(st.text(max_size=12), json_values, max_size=8)

# Texts that stress the parser: valid JSON of any shape, near-JSON, and pathological shapes.
deep_nesting = st.integers(1, 4000).map(lambda n: '{"k": ' + "[" * n + "]" * n + "}")
deep_open = st.integers(1, 60000).map(lambda n: "[" * n)
long_numbers = st.integers(1, 20000).map(lambda n: '{"n": ' + "7" * n + "}")
texts = st.one_of(
    st.text(max_size=200),
    json_values.map(json.dumps),
    json_objects.map(json.dumps),
    json_objects.map(lambda o: json.dumps(o)[:-1]),  # truncated
    deep_nesting,
    deep_open,
    long_numbers,
    st.sampled_from(['{"a": NaN}', '{"a": -Infinity}', '{"a": 1, "a": 2}', '{"\\ud800": "x"}', "\ufeff{}"]),
)


def _value(text: str) -> SecretValue | None:
    try:
        return SecretValue("app/fuzz", secret_string=text)
    except SecretFormatError:
        return None  # over the size limit


# -- construction ---------------------------------------------------------------------------------


@examples(600)
@given(
    st.one_of(st.none(), st.text(max_size=50), st.binary(max_size=50), st.integers(),
              st.lists(st.integers())),
    st.one_of(st.none(), st.binary(max_size=50), st.text(max_size=50), st.integers(), st.builds(bytearray)),
)
@counted
def test_construction_accepts_exactly_one_value_and_raises_only_secret_format_error(
    string_value: Any, binary_value: Any
) -> None:
    value, error = outcome(
        lambda: SecretValue("app/fuzz", secret_string=string_value, secret_binary=binary_value),
        SecretFormatError)
    if error is not None:
        assert error.secret_id == "app/fuzz"
        return
    assert value is not None
    assert isinstance(string_value, str) != isinstance(binary_value, (bytes, bytearray, memoryview))
    assert (value.secret_string is None) != (value.secret_binary is None)
    if value.secret_binary is not None:
        assert type(value.secret_binary) is bytes
        assert value.secret_binary == bytes(binary_value)


@examples(100)
@given(st.integers(MAX_SECRET_BYTES - 3, MAX_SECRET_BYTES + 3), st.sampled_from(["a", "é", "€", "𝄞"]))
@counted
def test_the_size_limit_is_65536_encoded_bytes(length: int, char: str) -> None:
    text = (char * length)[: max(0, length // len(char.encode()))]
    size = len(text.encode())
    if size <= MAX_SECRET_BYTES:
        assert SecretValue("app/fuzz", secret_string=text).secret_string == text
    else:
        with pytest.raises(SecretFormatError, match="limit"):
            SecretValue("app/fuzz", secret_string=text)


@examples(300)
@given(st.text(min_size=1, max_size=100), st.sampled_from(["string", "binary"]))
@counted
def test_repr_and_str_never_show_the_value(tail: str, kind: str) -> None:
    secret = f"{CANARY}{tail}"
    value = (SecretValue("app/fuzz", secret_string=secret) if kind == "string"
             else SecretValue("app/fuzz", secret_binary=secret.encode()))
    for shown in (repr(value), str(value), f"{value}", f"{value!r}"):
        assert CANARY not in shown
        assert "<redacted>" in shown


# -- JSON ------------------------------------------------------------------------------------------


@examples(700)
@given(texts)
@example("[" * 60000)  # regression: json.loads raised RecursionError
@example('{"k": ' + "[" * 600 + "]" * 600 + "}")  # regression: copy.deepcopy raised RecursionError
@example('{"n": ' + "7" * 5000 + "}")  # regression: int() over 4300 digits raised ValueError
@counted
def test_json_and_field_raise_only_secret_format_error(text: str) -> None:
    value = _value(text)
    if value is None:
        return
    parsed, error = outcome(value.json, SecretFormatError)
    if error is not None:
        assert text not in str(error) or len(text) < 4
        return
    assert isinstance(parsed, dict)
    for key in list(parsed)[:4]:
        try:
            assert isinstance(value.field(key), str)
        except SecretFormatError:
            pytest.fail("field() of a key json() returned must not fail")
    with pytest.raises(SecretFormatError):
        value.field("\x00not-a-key\x00")


@examples(500)
@given(json_objects)
@counted
def test_field_renders_like_json_and_json_round_trips(obj: dict[str, Any]) -> None:
    value = SecretValue("app/fuzz", secret_string=json.dumps(obj))
    assert value.json() == obj
    for key, raw in obj.items():
        expected = raw if isinstance(raw, str) else json.dumps(raw, separators=(",", ":"))
        assert value.field(key) == expected
        assert value.field(key) == expected  # served from the per-version memo the second time


@examples(300)
@given(json_objects.filter(bool), st.data())
@counted
def test_mutating_a_json_result_never_changes_the_next_one(obj: dict[str, Any], data: st.DataObject) -> None:
    value = SecretValue("app/fuzz", secret_string=json.dumps(obj))
    first = value.json()
    key = data.draw(st.sampled_from(sorted(first)))
    nested = first[key]
    if isinstance(nested, list):
        nested.append("mutated")
    elif isinstance(nested, dict):
        nested["mutated"] = True
    first[key] = "mutated"
    first["added"] = 1
    assert value.json() == obj


@examples(200)
@given(json_objects, st.text(min_size=1, max_size=30))
@counted
def test_json_errors_name_the_key_never_the_value(obj: dict[str, Any], tail: str) -> None:
    secret = f"{CANARY}{tail}"
    doc = dict(obj, password=secret)
    value = SecretValue("app/fuzz", secret_string=json.dumps(doc))
    missing = "no-such-key" if "no-such-key" not in doc else "no-such-key-2"
    with pytest.raises(SecretFormatError) as info:
        value.field(missing)
    assert CANARY not in str(info.value)
    assert CANARY not in repr(info.value)
    broken = SecretValue("app/fuzz", secret_string=json.dumps(doc)[:-1])
    with pytest.raises(SecretFormatError) as info:
        broken.json()
    assert CANARY not in str(info.value)
    assert info.value.__cause__ is None
    assert info.value.__context__ is None
