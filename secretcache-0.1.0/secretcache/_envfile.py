"""Env files (``.env``) for ``secretcache run --env-file``.

With the ``dotenv`` extra installed (``pip install 'secretcache[dotenv]'``), python-dotenv's own parser
reads the file, binding by binding, so that a line it cannot parse is an error naming the line
(``dotenv_values`` would log a warning and skip it). Without it, a small built-in parser reads the same
common syntax the same way:

- ``NAME=value`` and ``export NAME=value``; spaces around ``=`` are allowed; blank lines and lines
  starting with ``#`` are ignored;
- unquoted values end at the line end; `` # comment`` after whitespace is dropped, surrounding spaces too
  (``KEY= # note`` is empty; ``KEY=#x`` is ``#x``);
- ``'single quoted'`` values are literal (only ``\\'`` and ``\\\\`` are escapes) and may span lines;
- ``"double quoted"`` values understand ``\\\\ \\' \\" \\a \\b \\f \\n \\r \\t \\v`` and may span lines;
- a line with only ``NAME`` sets nothing (as ``load_dotenv`` does).

``${VAR}`` is never expanded (python-dotenv is asked not to either), so both parsers agree and a
reference is passed on exactly as written. Errors name the file and line, never the line's content.
"""

from __future__ import annotations

import re

__all__ = ["EnvFileError", "parse_env", "read_env_file"]


class EnvFileError(ValueError):
    """An env file could not be read or parsed. The message names the file and line only."""


_WS = r"[^\S\r\n]*"  # whitespace within a line
_ENTRY = re.compile(
    _WS + r"(?:export[^\S\r\n]+)?(?:'(?P<qkey>[^']+)'|(?P<key>[^=#\s'][^=#\s]*))" + _WS
    + r"(?:=(?P<gap>[^\S\r\n]*)(?:'(?P<single>(?:\\.|[^'\\])*)'"
    r"|\"(?P<double>(?:\\.|[^\"\\])*)\""
    r"|(?P<bare>(?!['\"])[^\r\n]*)))?",
    re.DOTALL,
)
_TAIL = re.compile(_WS + r"(?:#[^\r\n]*)?(?:\r\n|\n|\r|$)")
_SKIP = re.compile(_WS + r"(?:#[^\r\n]*)?(?:\r\n|\n|\r|$)")
_SINGLE_ESCAPES = re.compile(r"\\([\\'])")
_DOUBLE_ESCAPES = re.compile(r"\\([\\'\"abfnrtv])")
_DOUBLE_MEANING = {"\\": "\\", "'": "'", '"': '"', "a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r",
                   "t": "\t", "v": "\v"}


def parse_env(text: str, *, source: str = "<env>") -> dict[str, str]:
    """Parse env-file ``text`` with the built-in parser (see the module docstring)."""
    values: dict[str, str] = {}
    bad_line = _parse_into(values, text)
    if bad_line is not None:
        del text, values  # the file may hold secrets: a traceback's frame locals must not show them
        raise _unparsable(source, bad_line)
    return values


def _parse_into(values: dict[str, str], text: str) -> int | None:
    """Add the bindings of ``text`` to ``values``; the number of the first line that does not parse."""
    pos, end = 0, len(text)
    while pos < end:
        skipped = _SKIP.match(text, pos)
        if skipped is not None and skipped.end() > pos:
            pos = skipped.end()
            continue
        m = _ENTRY.match(text, pos)
        tail = _TAIL.match(text, m.end()) if m is not None else None
        if m is None or tail is None:
            return text.count("\n", 0, pos) + 1
        key = m["qkey"] if m["qkey"] is not None else m["key"]
        if m["single"] is not None:
            values[key] = _SINGLE_ESCAPES.sub(r"\1", m["single"])
        elif m["double"] is not None:
            values[key] = _DOUBLE_ESCAPES.sub(lambda e: _DOUBLE_MEANING[e[1]], m["double"])
        elif m["bare"] is not None:  # "KEY= # note" is empty with a comment; "KEY=#x" is the value "#x"
            bare = "" if m["gap"] and m["bare"].startswith("#") else m["bare"]
            values[key] = re.sub(r"\s+#.*", "", bare).strip()
        pos = tail.end()
    return None


def _unparsable(source: str, line: int) -> EnvFileError:
    return EnvFileError(f"{source}, line {line}: cannot parse this line (expected NAME=value)")


def _parse_with_dotenv(text: str, source: str) -> dict[str, str] | None:
    """python-dotenv's parser, or None when the extra is not installed."""
    try:
        from dotenv.parser import parse_stream
    except ImportError:
        return None
    import io

    values: dict[str, str] = {}
    bad_line: int | None = None
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            bad_line = binding.original.line
            break
        if binding.key is not None and binding.value is not None:
            values[binding.key] = binding.value
    if bad_line is not None:
        del text, values, binding  # as in parse_env: no secret in a traceback's frame locals
        raise _unparsable(source, bad_line)
    return values


def read_env_file(path: str) -> dict[str, str]:
    """The variables an env file sets, in file order (a later line wins over an earlier one)."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            text = f.read()
    except OSError as e:
        raise EnvFileError(f"cannot read env file {path!r}: {e.strerror or type(e).__name__}") from None
    except UnicodeDecodeError as e:
        raise EnvFileError(f"env file {path!r} is not UTF-8 (byte {e.start})") from None
    try:
        parsed = _parse_with_dotenv(text, path)
        return parsed if parsed is not None else parse_env(text, source=path)
    except EnvFileError:
        del text
        raise
