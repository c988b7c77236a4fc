"""Random passwords for rotation, with the options of Secrets Manager's ``GetRandomPassword``.

Generated locally from :mod:`secrets` (no API call, works offline and in tests). The defaults leave out the
characters that break connection strings and shell or SQL quoting (``/ @ " ' \\``) and all whitespace, as
AWS's rotation templates do; the PostgreSQL strategies also leave out ``:``.
"""

from __future__ import annotations

import os
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["DEFAULT_EXCLUDE", "PUNCTUATION", "PasswordPolicy", "generate_password"]

PUNCTUATION = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
"""The punctuation set of GetRandomPassword (ASCII punctuation)."""
DEFAULT_EXCLUDE = "/@\"'\\"
"""AWS's rotation templates' default ``EXCLUDE_CHARACTERS`` for MySQL/MariaDB (PostgreSQL adds ``:``)."""


@dataclass(frozen=True, kw_only=True)
class PasswordPolicy:
    """What :func:`generate_password` draws; the fields mirror GetRandomPassword's parameters."""

    length: int = 32
    exclude_characters: str = DEFAULT_EXCLUDE
    exclude_numbers: bool = False
    exclude_punctuation: bool = False
    exclude_uppercase: bool = False
    exclude_lowercase: bool = False
    include_space: bool = False
    require_each_included_type: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.length, bool) or not isinstance(self.length, int) or not 1 <= self.length <= 4096:
            raise ValueError("length must be an int between 1 and 4096")
        groups = self.groups()
        if not groups:
            raise ValueError("the password policy excludes every character")
        if self.require_each_included_type and len(groups) > self.length:
            raise ValueError(f"length {self.length} is too short to include each of {len(groups)} "
                             "character types")

    def groups(self) -> list[str]:
        """The non-empty character classes left after the exclusions."""
        wanted = [
            ("" if self.exclude_lowercase else string.ascii_lowercase),
            ("" if self.exclude_uppercase else string.ascii_uppercase),
            ("" if self.exclude_numbers else string.digits),
            ("" if self.exclude_punctuation else PUNCTUATION),
            (" " if self.include_space else ""),
        ]
        excluded = set(self.exclude_characters)
        left = ["".join(c for c in group if c not in excluded) for group in wanted]
        return [group for group in left if group]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, exclude_characters: str = DEFAULT_EXCLUDE,
                 ) -> PasswordPolicy:
        """Read the AWS templates' variables: ``PASSWORD_LENGTH``, ``EXCLUDE_CHARACTERS``,
        ``EXCLUDE_NUMBERS``, ``EXCLUDE_PUNCTUATION``, ``EXCLUDE_UPPERCASE``, ``EXCLUDE_LOWERCASE``,
        ``REQUIRE_EACH_INCLUDED_TYPE``."""
        env = os.environ if environ is None else environ

        def flag(name: str, default: bool) -> bool:
            raw = env.get(name)
            return default if raw is None else raw.strip().lower() in ("1", "true", "yes", "on")

        length = env.get("PASSWORD_LENGTH")
        return cls(
            length=int(length) if length else 32,
            exclude_characters=env.get("EXCLUDE_CHARACTERS", exclude_characters),
            exclude_numbers=flag("EXCLUDE_NUMBERS", False),
            exclude_punctuation=flag("EXCLUDE_PUNCTUATION", False),
            exclude_uppercase=flag("EXCLUDE_UPPERCASE", False),
            exclude_lowercase=flag("EXCLUDE_LOWERCASE", False),
            require_each_included_type=flag("REQUIRE_EACH_INCLUDED_TYPE", True),
        )

    def generate(self) -> str:
        """A new password drawn with :mod:`secrets` (a CSPRNG)."""
        groups = self.groups()
        alphabet = "".join(groups)
        chars = [secrets.choice(alphabet) for _ in range(self.length)]
        if self.require_each_included_type:
            # One character of each class at distinct random positions: uniform over the valid passwords'
            # positions, still drawn from the CSPRNG.
            positions = list(range(self.length))
            for group in groups:
                chars[positions.pop(secrets.randbelow(len(positions)))] = secrets.choice(group)
        return "".join(chars)


def generate_password(
    length: int = 32,
    *,
    exclude_characters: str = DEFAULT_EXCLUDE,
    exclude_numbers: bool = False,
    exclude_punctuation: bool = False,
    exclude_uppercase: bool = False,
    exclude_lowercase: bool = False,
    include_space: bool = False,
    require_each_included_type: bool = True,
) -> str:
    """A random password, like ``GetRandomPassword`` with the same options, generated locally."""
    return PasswordPolicy(
        length=length,
        exclude_characters=exclude_characters,
        exclude_numbers=exclude_numbers,
        exclude_punctuation=exclude_punctuation,
        exclude_uppercase=exclude_uppercase,
        exclude_lowercase=exclude_lowercase,
        include_space=include_space,
        require_each_included_type=require_each_included_type,
    ).generate()
