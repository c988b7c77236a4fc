"""Property tests for env-file parsing (``secretcache._envfile``, used by ``secretcache run --env-file``).

Promises checked: whatever the text (or bytes on disk), only ``EnvFileError`` escapes, and its message
names the file and line, never a line's content; a file written in the common syntax (bare, single- and
double-quoted values, ``export``, comments, blank lines) parses back to exactly what was written; and
the built-in parser and python-dotenv's agree on such files, so installing the extra changes nothing.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from secretcache._envfile import EnvFileError, _parse_with_dotenv, parse_env, read_env_file
from tests.fixtures.fix_canary import CANARY
from tests.fixtures.fuzzing import counted, examples, outcome, report_fixture

_report = report_fixture("test_fuzz_envfile")

keys = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,15}", fullmatch=True)
# Values as people write them: printable text, quotes, '#', '=', '$', backslashes, tabs, newlines.
values = st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\x00")
                 | st.sampled_from(["\n", "\t", "\\", "'", '"', "#", "=", "$", " "]), max_size=40)


def _single(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _double(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return '"' + escaped + '"'


def _bare_ok(value: str) -> bool:
    """A value that may be written unquoted and read back unchanged."""
    # Any whitespace before '#' starts a comment (also U+00A0 and other Unicode spaces, as in python-dotenv).
    return (value == value.strip() and "\n" not in value and "\r" not in value
            and re.search(r"\s#", value) is None and not value.startswith(("'", '"', "#")))


@st.composite
def env_files(draw: st.DrawFn) -> tuple[str, dict[str, str]]:
    lines: list[str] = []
    expected: dict[str, str] = {}
    for key, value in draw(st.lists(st.tuples(keys, values), max_size=8)):
        styles = ["single", "double", "bare"] if _bare_ok(value) else ["single", "double"]
        style = draw(st.sampled_from(styles))
        written = {"single": _single, "double": _double, "bare": lambda v: v}[style](value)
        prefix = draw(st.sampled_from(["", "export ", "  "]))
        spacing = draw(st.sampled_from(["=", " = ", "= "] if style != "bare" else ["=", " ="]))
        comment = draw(st.sampled_from(["", "  # a comment"]))
        if draw(st.booleans()):
            lines.append(draw(st.sampled_from(["", "# comment", "   ", "#KEY=ignored"])))
        lines.append(f"{prefix}{key}{spacing}{written}{comment}")
        expected[key] = value
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    return newline.join(lines) + draw(st.sampled_from(["", newline])), expected


@examples(600)
@given(env_files())
@example(("A='it\\'s'\nB=\"x\\ny\"\nexport C=plain", {"A": "it's", "B": "x\ny", "C": "plain"}))
@counted
def test_common_syntax_round_trips_through_the_builtin_parser(case: tuple[str, dict[str, str]]) -> None:
    text, expected = case
    if "\r\n" in text:  # a CRLF file: multi-line quoted values keep their CR, as python-dotenv does
        expected = {k: v.replace("\n", "\r\n") if "\n" in v else v for k, v in expected.items()}
        if any("\n" in v for v in expected.values()):
            return
    assert parse_env(text) == expected


@examples(500)
@given(env_files())
@counted
def test_builtin_parser_and_python_dotenv_agree_on_common_syntax(case: tuple[str, dict[str, str]]) -> None:
    text, _ = case
    assert _parse_with_dotenv(text, "<env>") == parse_env(text)


lines = st.lists(
    st.one_of(
        st.text(max_size=40),
        st.builds(lambda k, v: f"{k}={v}", keys, st.text(max_size=20)),
        st.sampled_from(["export", "export =", "=x", "'K'=v", "K='unterminated", 'K="open', "K=\"a\\\"", "#",
                         "K=a # c", "K = 'a' b", "\ufeffK=v", "K\t=\tv", "K=${X}", "\\", "K='a'#c"]),
    ),
    max_size=6,
).map("\n".join)


@examples(1000)
@given(lines)
@counted
def test_builtin_parser_raises_only_env_file_error_naming_the_line(text: str) -> None:
    parsed, error = outcome(lambda: parse_env(text, source="app.env"), EnvFileError)
    if error is not None:
        assert str(error).startswith("app.env, line ")
        return
    assert parsed is not None
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in parsed.items())


@examples(300)
@given(lines, st.sampled_from(["K='", 'K="', "K= 'x' y", "'unterminated"]))
@counted
def test_a_line_that_cannot_be_parsed_is_named_by_number_never_quoted(text: str, broken: str) -> None:
    secret_text = f"{text}\n{broken}{CANARY}-value"
    for parser in (lambda t: parse_env(t, source="app.env"), lambda t: _parse_with_dotenv(t, "app.env")):
        _, error = outcome(lambda parse=parser: parse(secret_text), EnvFileError)  # type: ignore[misc]
        if error is not None:
            assert CANARY not in str(error)
            assert CANARY not in repr(error)
            assert error.__cause__ is None


@examples(300)
@given(st.binary(max_size=120) | lines.map(lambda t: t.encode()))
@example(b"\xff\xfeK=v")
@example("K=caf\u00e9\n".encode("latin-1"))
@counted
def test_reading_any_bytes_from_disk_raises_only_env_file_error(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "app.env"
        path.write_bytes(data)
        parsed, error = outcome(lambda: read_env_file(str(path)), EnvFileError)
        if error is not None:
            assert str(path) in str(error)
            return
    assert parsed is not None
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in parsed.items())


def test_a_missing_env_file_is_an_env_file_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.env"
    with pytest.raises(EnvFileError, match=r"nope\.env"):
        read_env_file(str(missing))
