"""Property tests for reference parsing: ``SecretRef.parse``, ``find_references``, ``render_template``,
``is_reference`` and ``SecretCache.get``.

Promises checked: whatever the input, only :class:`InvalidReferenceError` escapes the parsers (and only
:class:`SecretCacheError` subclasses escape ``get``); error messages are bounded; and every valid
(secret id, json key, stage, version id) formatted into each reference syntax parses back to itself.
"""

from __future__ import annotations

import string
from typing import Any

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from secretcache import SecretCache
from secretcache.errors import InvalidReferenceError, SecretCacheError
from secretcache.model import SecretRef, find_references, is_reference, render_template
from secretcache.testing import InMemoryBackend
from tests.fixtures.fuzzing import counted, examples, outcome, report_fixture

_report = report_fixture("test_fuzz_references")

# -- strategies ----------------------------------------------------------------------------------

names = st.from_regex(r"[A-Za-z0-9/_+=.@\-]{1,64}", fullmatch=True)
regions = st.sampled_from(["us-east-1", "eu-west-3", "ap-southeast-2", "us-gov-west-1", "cn-north-1"])
accounts = st.from_regex(r"[0-9]{12}", fullmatch=True)
suffixes = st.from_regex(r"[A-Za-z0-9]{6}", fullmatch=True)


@st.composite
def arns(draw: st.DrawFn, *, partial: bool | None = None) -> str:
    name = draw(names)
    if partial is None:
        partial = draw(st.booleans())
    tail = name if partial else f"{name}-{draw(suffixes)}"
    return f"arn:aws:secretsmanager:{draw(regions)}:{draw(accounts)}:secret:{tail}"


secret_ids = st.one_of(names, arns())
# JSON keys in the ':'-separated syntaxes cannot hold ':' (the syntax splits on it), braces (a CFN
# reference ends at the first '}}') or control characters (a reference is one line); anything else
# goes, '#' and non-ASCII included.
field_keys = st.text(
    st.characters(blacklist_characters=":{}", blacklist_categories=("Cs", "Cc")), min_size=1, max_size=24
)
hash_keys = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=24)
stages = st.from_regex(r"[A-Za-z0-9_\-]{1,20}", fullmatch=True)
version_ids = st.from_regex(r"[A-Za-z0-9\-]{8,40}", fullmatch=True)


@st.composite
def versioning(draw: st.DrawFn) -> tuple[str | None, str | None]:
    """(stage, version id): at most one of them, as both syntaxes require."""
    which = draw(st.sampled_from(["none", "stage", "version"]))
    if which == "stage":
        return draw(stages), None
    if which == "version":
        return None, draw(version_ids)
    return None, None


# Text that often *almost* parses: reference prefixes followed by arbitrary tails.
near_references = st.builds(
    lambda head, tail: head + tail,
    st.sampled_from([
        "", "arn:", "arn:aws:secretsmanager:", "arn:aws:secretsmanager:us-east-1:123456789012:secret:",
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:app/db:", "{{resolve:secretsmanager:",
        "{{resolve:secretsmanager:app/db:SecretString:", "app/db#", "{{", "{{resolve:",
    ]),
    st.text(string.printable + "äλ\u2028\x00", max_size=60),
)
any_text = st.one_of(st.text(max_size=80), near_references)


def _assert_invalid(error: InvalidReferenceError) -> None:
    assert isinstance(error, ValueError)  # documented: also a ValueError
    assert len(str(error)) < 600, "an error message must stay bounded, whatever was pasted"


# -- parsing never lets anything but InvalidReferenceError out -------------------------------------


@examples(1500)
@given(any_text)
@example("arn:aws:secretsmanager:us-east-1:123456789012:secret:a:b:c")  # 3 resource segments
@example("{{resolve:secretsmanager:a:SecretString:k:s:v:extra}}")
@example("{{resolve:secretsmanager:arn:aws:secretsmanager:r:1:secret}}")
@example("#")
@example("a" * 513)
@counted
def test_parse_raises_only_invalid_reference_error(text: str) -> None:
    ref, error = outcome(lambda: SecretRef.parse(text), InvalidReferenceError)
    if error is not None:
        _assert_invalid(error)
        assert error.reference in (text, None)
        return
    assert isinstance(ref, SecretRef)
    assert isinstance(ref.secret_id, str)
    assert ref.secret_id
    assert not (ref.version_stage and ref.version_id), "a stage and a version id were both accepted"


@examples(200)
@given(st.one_of(st.none(), st.integers(), st.floats(), st.binary(), st.lists(st.integers()),
                 st.dictionaries(st.text(), st.integers())))
@counted
def test_parse_of_a_non_string_raises_invalid_reference_error(value: Any) -> None:
    with pytest.raises(InvalidReferenceError):
        SecretRef.parse(value)


@examples(800)
@given(any_text)
@counted
def test_find_references_and_is_reference_raise_only_invalid_reference_error(text: str) -> None:
    assert isinstance(is_reference(text), bool)
    try:
        refs = find_references(text)
    except InvalidReferenceError as e:
        _assert_invalid(e)
        return
    assert all(isinstance(r, SecretRef) for r in refs)


@examples(800)
@given(any_text)
@counted
def test_render_template_raises_only_invalid_reference_error_and_leaves_plain_text_alone(text: str) -> None:
    calls: list[SecretRef] = []

    def resolve(ref: SecretRef) -> str:
        calls.append(ref)
        return "<resolved>"

    try:
        out = render_template(text, resolve)
    except InvalidReferenceError as e:
        _assert_invalid(e)
        return
    if "{{resolve:" not in text:
        assert out == text
        assert not calls
    assert len(calls) == len(find_references(text))


# -- round trips: format a valid reference in each syntax, parse it back ---------------------------


@examples(400)
@given(secret_ids)
@counted
def test_a_plain_secret_id_parses_to_itself(secret_id: str) -> None:
    assert SecretRef.parse(secret_id) == SecretRef(secret_id)
    assert not is_reference(secret_id) or secret_id.startswith("arn:")


@examples(400)
@given(secret_ids, hash_keys)
@counted
def test_id_hash_key_round_trips(secret_id: str, key: str) -> None:
    assert SecretRef.parse(f"{secret_id}#{key}") == SecretRef(secret_id, key)


@examples(600)
@given(arns(partial=None), st.one_of(st.just(""), field_keys), versioning())
@example("arn:aws:secretsmanager:us-east-1:123456789012:secret:app/db-AbCdEf", "a#b", (None, None))
@counted
def test_ecs_value_from_arn_round_trips(arn: str, key: str, version: tuple[str | None, str | None]) -> None:
    stage, version_id = version
    reference = f"{arn}:{key}:{stage or ''}:{version_id or ''}"
    assert SecretRef.parse(reference) == SecretRef(arn, key or None, stage, version_id)
    assert is_reference(reference)


@st.composite
def cfn_references(draw: st.DrawFn) -> tuple[str, SecretRef]:
    secret_id = draw(secret_ids)
    key = draw(st.one_of(st.just(""), field_keys))
    stage, version_id = draw(versioning())
    fields = ["SecretString", key, stage or "", version_id or ""]
    while fields and not fields[-1] and draw(st.booleans()):  # trailing parts are optional
        fields.pop()
    body = ":".join([secret_id, *fields])
    return "{{resolve:secretsmanager:" + body + "}}", SecretRef(secret_id, key or None, stage, version_id)


@examples(600)
@given(cfn_references())
@counted
def test_cloudformation_dynamic_reference_round_trips(case: tuple[str, SecretRef]) -> None:
    reference, expected = case
    assert SecretRef.parse(reference) == expected
    assert is_reference(reference)
    assert find_references(reference) == [expected]


@examples(500)
@given(st.text(max_size=30), st.lists(cfn_references(), min_size=1, max_size=3), st.text(max_size=30))
@counted
def test_embedded_references_are_found_in_order_and_rendered(
    prefix: str, cases: list[tuple[str, SecretRef]], suffix: str
) -> None:
    assume("{{" not in prefix + suffix and "}}" not in prefix + suffix and not suffix.startswith("}"))
    assume(not prefix.endswith("{"))
    text = prefix + "<>".join(reference for reference, _ in cases) + suffix
    assert find_references(text) == [expected for _, expected in cases]
    assert is_reference(text)
    rendered = render_template(text, lambda ref: f"[{ref.secret_id}]")
    assert rendered == prefix + "<>".join(f"[{expected.secret_id}]" for _, expected in cases) + suffix


# -- the cache's reader: only typed errors ---------------------------------------------------------


@examples(600)
@given(st.one_of(any_text, cfn_references().map(lambda c: c[0]), secret_ids,
                 st.builds(lambda i, k: f"{i}#{k}", st.sampled_from(["app/json", "app/text", "app/bin"]),
                           hash_keys)))
@example("app/json#port")
@example("{{resolve:secretsmanager:app/bin}}")
@example("x={{resolve:secretsmanager:app/json:SecretString:nested}};")
@counted
def test_cache_get_raises_only_secret_cache_errors(reference: str) -> None:
    backend = InMemoryBackend({
        "app/json": '{"user": "u", "port": 5432, "nested": {"a": [1]}}',
        "app/text": "plain text",
        "app/bin": b"\x00\x01",
    })
    cache = SecretCache(backend)
    out, error = outcome(lambda: cache.get(reference), SecretCacheError)
    if error is not None:
        assert len(str(error)) < 1000
        return
    assert isinstance(out, str)
