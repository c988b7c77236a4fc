"""How text a caller gave (a reference, a JSON key, a setting) appears in our error messages: bounded, so
a pasted blob cannot flood a log. Values never come here: a message names what was wrong, never a value."""

from __future__ import annotations

__all__ = ["bounded"]


def bounded(text: str, limit: int = 200) -> str:
    """``text`` cut to ``limit`` characters, with "..." when it was longer."""
    return text if len(text) <= limit else text[:limit] + "..."
