"""The fix for moto's G1 gap (research/test-infra.md §1.4), applied once per test session."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def apply_g1_patch() -> Callable[[], None]:
    """Make moto move its default version with AWSCURRENT; return a function that undoes it."""
    from moto.secretsmanager.models import SecretsManagerBackend

    original = SecretsManagerBackend.update_secret_version_stage
    if getattr(original, "_secretcache_g1", False):
        return lambda: None

    def update_stage_and_default(self: Any, secret_id: str, version_stage: str,
                                 remove_from_version_id: str | None, move_to_version_id: str | None) -> Any:
        result = original(self, secret_id, version_stage, remove_from_version_id, move_to_version_id)
        if version_stage == "AWSCURRENT" and move_to_version_id:
            self.secrets[secret_id].set_default_version_id(move_to_version_id)  # resolves names and ARNs
        return result

    update_stage_and_default._secretcache_g1 = True  # type: ignore[attr-defined]
    SecretsManagerBackend.update_secret_version_stage = update_stage_and_default

    def undo() -> None:
        SecretsManagerBackend.update_secret_version_stage = original

    return undo
