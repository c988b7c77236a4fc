"""The rotation password generator: GetRandomPassword's options, the templates' exclusions, randomness."""

from __future__ import annotations

import string

import pytest

from secretcache.rotation import PasswordPolicy, generate_password
from secretcache.rotation.passwords import DEFAULT_EXCLUDE, PUNCTUATION


def test_default_password_is_32_chars_without_the_usual_troublemakers() -> None:
    for _ in range(200):
        password = generate_password()
        assert len(password) == 32
        assert not set(password) & set("/@\"'\\")
        assert not any(c.isspace() for c in password)


def test_default_password_includes_each_character_type() -> None:
    for _ in range(200):
        password = generate_password(8)
        assert set(password) & set(string.ascii_lowercase)
        assert set(password) & set(string.ascii_uppercase)
        assert set(password) & set(string.digits)
        assert set(password) & (set(PUNCTUATION) - set(DEFAULT_EXCLUDE))


@pytest.mark.parametrize("length", [1, 4, 17, 64, 4096])
def test_length_is_respected(length: int) -> None:
    password = generate_password(length, require_each_included_type=length >= 4)
    assert len(password) == length


def test_exclusions_are_respected() -> None:
    excluded = "abcXYZ019!%:"
    for _ in range(200):
        assert not set(generate_password(40, exclude_characters=excluded)) & set(excluded)


@pytest.mark.parametrize(
    ("option", "forbidden"),
    [
        ("exclude_numbers", string.digits),
        ("exclude_punctuation", PUNCTUATION),
        ("exclude_uppercase", string.ascii_uppercase),
        ("exclude_lowercase", string.ascii_lowercase),
    ],
)
def test_character_classes_can_be_excluded(option: str, forbidden: str) -> None:
    for _ in range(100):
        assert not set(generate_password(32, **{option: True})) & set(forbidden)


def test_space_only_when_asked() -> None:
    assert any(" " in generate_password(32, include_space=True) for _ in range(50))
    assert all(" " not in generate_password(64) for _ in range(200))


def test_passwords_never_repeat_over_many_draws() -> None:
    draws = [generate_password() for _ in range(10_000)]
    assert len(set(draws)) == len(draws)


def test_every_allowed_character_gets_used() -> None:
    allowed = set("".join(PasswordPolicy().groups()))
    seen = set("".join(generate_password() for _ in range(500)))
    assert seen == allowed


def test_impossible_policies_are_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="excludes every character"):
        PasswordPolicy(exclude_numbers=True, exclude_punctuation=True, exclude_uppercase=True,
                       exclude_lowercase=True)
    with pytest.raises(ValueError, match="too short"):
        PasswordPolicy(length=3)
    with pytest.raises(ValueError, match="length"):
        PasswordPolicy(length=0)


def test_policy_reads_the_templates_environment_variables() -> None:
    policy = PasswordPolicy.from_env({"PASSWORD_LENGTH": "20", "EXCLUDE_PUNCTUATION": "true",
                                      "EXCLUDE_CHARACTERS": "xyz", "REQUIRE_EACH_INCLUDED_TYPE": "false"})
    assert policy == PasswordPolicy(length=20, exclude_punctuation=True, exclude_characters="xyz",
                                    require_each_included_type=False)
    assert PasswordPolicy.from_env({}, exclude_characters=":/@") == PasswordPolicy(exclude_characters=":/@")
