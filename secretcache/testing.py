"""Test helpers for code that uses secretcache: ``InMemoryBackend``, a faithful in-process Secrets Manager
(:mod:`secretcache.backends.memory`, re-exported here), and :func:`patch_moto_staging_labels`, the one moto
gap that matters to code that rotates secrets on moto (moto is imported only when the function is called).

pytest fixtures live in :mod:`secretcache.pytest_plugin`.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from .backends.memory import CONNECTION_FAULTS, FAULT_NAMES, FAULTS, Call, InMemoryBackend

__all__ = ["CONNECTION_FAULTS", "FAULTS", "FAULT_NAMES", "Call", "InMemoryBackend", "patch_moto_staging_labels"]

_OURS: weakref.WeakSet[Callable[..., Any]] = weakref.WeakSet()
"""The replacements this module installed, so a second call sees its own patch without marking moto's
functions."""


def patch_moto_staging_labels() -> Callable[[], None]:
    """Make moto move a secret's current version with its AWSCURRENT label, as AWS does; return an undo.

    moto 5 keeps answering a plain ``GetSecretValue`` (no stage, no version) with the old version after
    ``UpdateSecretVersionStage`` moves AWSCURRENT to a new one, which is exactly what finishSecret does
    at the end of every rotation: code that rotates on moto would go on reading the old password. This
    patches moto's backend class (every ``mock_aws`` and moto server in the process) so that the version
    AWSCURRENT moves to becomes the one plain reads return. Calling it again while applied does nothing
    (and returns an undo that does nothing). moto is imported here only: ``pip install 'moto[secretsmanager]'``.
    """
    from moto.secretsmanager.models import SecretsManagerBackend

    backend: Any = SecretsManagerBackend
    original = backend.update_secret_version_stage
    if original in _OURS:
        return lambda: None

    def update_stage_and_current(self: Any, secret_id: str, version_stage: str,
                                 remove_from_version_id: str | None, move_to_version_id: str | None) -> Any:
        result = original(self, secret_id, version_stage, remove_from_version_id, move_to_version_id)
        if version_stage == "AWSCURRENT" and move_to_version_id:
            self.secrets[secret_id].set_default_version_id(move_to_version_id)  # resolves names and ARNs
        return result

    _OURS.add(update_stage_and_current)
    backend.update_secret_version_stage = update_stage_and_current

    def undo() -> None:
        backend.update_secret_version_stage = original

    return undo
