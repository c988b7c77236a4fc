"""Backends: where the cache gets values from. ``AwsBackend``, ``AgentBackend`` and ``InMemoryBackend`` (the
faithful in-process fake, also in :mod:`secretcache.testing`) load on first use."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import BATCH_LIMIT, ForcedReads, SecretsBackend

if TYPE_CHECKING:
    from .agent import AgentBackend
    from .aws import AwsBackend
    from .memory import InMemoryBackend

__all__ = ["BATCH_LIMIT", "AgentBackend", "AwsBackend", "ForcedReads", "InMemoryBackend", "SecretsBackend"]

_LAZY = {"AwsBackend": ".aws", "AgentBackend": ".agent", "InMemoryBackend": ".memory"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
