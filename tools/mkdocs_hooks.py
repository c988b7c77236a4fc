"""MkDocs hook: links from a docs page to a repository file outside docs/ (``../examples/serve/...``,
``../README.md``) work on GitHub as written; on the site they become links to the file on GitHub, so the
strict build checks every other link and these still lead somewhere."""

from __future__ import annotations

import posixpath
import re
from typing import Any

REPOSITORY = "https://github.com/secretcache/secretcache/blob/main/"
_OUTSIDE = re.compile(r"\]\((\.\./[^)\s#]+)(#[^)\s]*)?\)")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Rewrite ``](../path)`` (relative to the page, resolving outside docs/) to the file on GitHub."""
    page_dir = posixpath.dirname(page.file.src_uri)

    def rewrite(match: re.Match[str]) -> str:
        target = posixpath.normpath(posixpath.join("docs", page_dir, match[1]))
        if target.startswith("docs/"):
            return match[0]
        return f"]({REPOSITORY}{target}{match[2] or ''})"

    return _OUTSIDE.sub(rewrite, markdown)
