"""Parameter Store reads for :class:`~.aws.AwsBackend`: GetParameter, GetParameters, GetParametersByPath.

Every read decrypts (``WithDecryption=True``: a SecureString is a secret, and the reference path to
Secrets Manager requires it). A parameter becomes a :class:`SecretValue`: ``name`` the parameter's name,
``arn`` its ARN, ``version_id`` its version number as a string, ``version_stages`` the label it was read
by, ``secret_string`` its value (a StringList as SSM returns it, comma-separated). Read through
``/aws/reference/secretsmanager/ID``, ``version_id`` and ``version_stages`` are the secret's (from the
answer's ``SourceResult``), so they match what GetSecretValue returns.

Answers are dropped before anything is raised, so no frame of a traceback holds a value.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import SecretCacheError, SecretNotFoundError, SecretUnavailableError
from ..model import SecretValue, value_from_answer
from ..parameters import MAX_BATCH, REFERENCE_PATH, api_name, parameter_name, selector

__all__ = ["get_parameter", "get_parameters", "get_parameters_by_path", "to_value"]

PAGE_SIZE = 10
"""GetParametersByPath returns at most 10 parameters per page."""


def _malformed(secret_id: str, problem: str, sender: str = "Parameter Store") -> SecretUnavailableError:
    return SecretUnavailableError(f"{sender} sent a malformed answer for secret {secret_id!r}: {problem}",
                                  secret_id=secret_id)


class ParameterValue(SecretValue):
    """A parameter's :class:`SecretValue`, which also knows its ``Type`` (String, StringList, SecureString)
    and ``DataType``, so ``secretcache serve`` can answer with the extension's exact body."""

    __slots__ = ("data_type", "parameter_type")
    parameter_type: str | None
    data_type: str | None

    @classmethod
    def of(cls, value: SecretValue, parameter_type: object, data_type: object) -> ParameterValue:
        """``value`` with the parameter's types (its fields shared, not copied)."""
        made = cls.__new__(cls)
        for slot in SecretValue.__slots__:
            object.__setattr__(made, slot, getattr(value, slot))
        object.__setattr__(made, "parameter_type", parameter_type if isinstance(parameter_type, str) else None)
        object.__setattr__(made, "data_type", data_type if isinstance(data_type, str) else None)
        return made

    def __reduce__(self) -> tuple[Any, ...]:
        plain = SecretValue.__reduce__(self)
        return (_rebuild, (plain[1], self.parameter_type, self.data_type))


def _rebuild(fields: tuple[Any, ...], parameter_type: str | None, data_type: str | None) -> ParameterValue:
    return ParameterValue.of(SecretValue(*fields), parameter_type, data_type)


def _reference_version(source: object, label: str | None) -> tuple[str | None, tuple[str, ...]]:
    """The secret's VersionId and stages from a reference read's ``SourceResult`` (GetSecretValue's or
    DescribeSecret's shape). Only ids and labels are read from it; the document is dropped here."""
    try:
        doc = json.loads(source) if isinstance(source, str) else source
    except ValueError:
        return None, ()
    if not isinstance(doc, Mapping):
        return None, ()
    version, stages = doc.get("VersionId"), doc.get("VersionStages")
    if isinstance(version, str):
        return version, tuple(s for s in stages or () if isinstance(s, str))
    wanted = label or "AWSCURRENT"
    for version_id, labels in (doc.get("VersionIdsToStages") or {}).items():
        if isinstance(labels, list) and (wanted in labels or version_id == wanted):
            return str(version_id), tuple(s for s in labels if isinstance(s, str))
    return None, ()


def _answer(parameter: Any, secret_id: str, label: str | None) -> SecretValue | str:
    """A SecretValue from one ``Parameter`` of an answer, or why it is malformed (returns, never raises)."""
    if not isinstance(parameter, Mapping):
        return f"expected an object, got {type(parameter).__name__}"
    value = parameter.get("Value")
    if not isinstance(value, str):
        return "no Value"
    name = parameter.get("Name")
    version: object = parameter.get("Version")
    stages: tuple[str, ...] = (label,) if label else ()
    if isinstance(name, str) and REFERENCE_PATH in secret_id:
        # Read through the reference path: SSM (and moto) may name the secret; keep the name asked for,
        # and take the secret's own version and stages.
        name = parameter_name(secret_id)
        version, source_stages = _reference_version(parameter.get("SourceResult"), label)
        stages = source_stages or stages
    elif isinstance(version, int) and not isinstance(version, bool):
        version = str(version)
    made = value_from_answer(name, parameter.get("ARN"), version, stages, value, None,
                             parameter.get("LastModifiedDate"))
    if isinstance(made, str):
        return made
    return ParameterValue.of(made, parameter.get("Type"), parameter.get("DataType"))


def to_value(parameter: Any, secret_id: str, label: str | None, sender: str = "Parameter Store") -> SecretValue:
    """A SecretValue from one ``Parameter`` of an answer; a malformed one raises the transient
    SecretUnavailableError (the answer dropped first)."""
    outcome = _answer(parameter, secret_id, label)
    del parameter
    if isinstance(outcome, SecretValue):
        return outcome
    raise _malformed(secret_id, outcome, sender)


def get_parameter(client: Any, secret_id: str, version_id: str | None, version_stage: str | None) -> SecretValue:
    """One GetParameter (decrypted) with SSM's ``NAME:selector`` for a version or a label."""
    chosen = selector(secret_id, version_id, version_stage)
    name = api_name(secret_id) if chosen is None else f"{api_name(secret_id)}:{chosen}"
    response = client.get_parameter(Name=name, WithDecryption=True)
    parameter = response.get("Parameter") if isinstance(response, Mapping) else None
    del response
    try:
        return to_value(parameter, secret_id, chosen if version_id is None else None)
    finally:
        del parameter  # a malformed answer raises: this frame must not hold it in the traceback


def get_parameters(client: Any, secret_ids: Sequence[str]) -> tuple[list[SecretValue], dict[str, SecretCacheError]]:
    """The latest values of ``secret_ids`` by GetParameters, 10 names per call; a name SSM lists in
    ``InvalidParameters`` fails alone (:class:`SecretNotFoundError`). (Reference paths are not batched by
    the backend: only a single read reports the secret's version.)"""
    values: list[SecretValue] = []
    errors: dict[str, SecretCacheError] = {}
    batched = list(secret_ids)
    for start in range(0, len(batched), MAX_BATCH):
        chunk = batched[start:start + MAX_BATCH]
        asked = {api_name(i): i for i in chunk}
        _read_batch(client.get_parameters(Names=list(asked), WithDecryption=True), asked, values, errors)
    return values, errors


def _read_batch(page: Any, asked: dict[str, str], values: list[SecretValue],
                errors: dict[str, SecretCacheError]) -> None:
    """Add one GetParameters answer's values and invalid names; the answer is dropped in this frame."""
    found = invalid = None
    if isinstance(page, Mapping):
        found, invalid = page.get("Parameters"), page.get("InvalidParameters")
    del page
    if not isinstance(found, list) or not isinstance(invalid, (list, type(None))):
        del found
        raise SecretUnavailableError("Parameter Store sent a malformed GetParameters answer")
    for parameter in found:
        outcome = _answer(parameter, "", None)
        if isinstance(outcome, SecretValue):  # a malformed one is left out: the cache reads it alone
            values.append(outcome)
    del found, parameter
    for name in invalid or ():
        secret_id = asked.get(name) if isinstance(name, str) else None
        if secret_id is not None:
            errors[secret_id] = SecretNotFoundError(
                f"Parameter Store has no parameter {name!r} (secret {secret_id!r}, code ParameterNotFound)",
                secret_id=secret_id, code="ParameterNotFound")


def get_parameters_by_path(client: Any, path: str, hierarchy: str, recursive: bool) -> list[SecretValue]:
    """Every parameter under ``hierarchy`` (GetParametersByPath, decrypted, all pages)."""
    values: list[SecretValue] = []
    token: str | None = None
    while True:
        request: dict[str, Any] = {"Path": hierarchy, "Recursive": recursive, "WithDecryption": True,
                                   "MaxResults": PAGE_SIZE}
        if token:
            request["NextToken"] = token
        token = _read_path_page(client.get_parameters_by_path(**request), path, values)
        if not token:
            return values


def _read_path_page(page: Any, path: str, values: list[SecretValue]) -> str | None:
    found = token = None
    if isinstance(page, Mapping):
        found, token = page.get("Parameters"), page.get("NextToken")
    del page
    if not isinstance(found, list) or not isinstance(token, (str, type(None))):
        del found
        raise _malformed(path, "not a GetParametersByPath page")
    for parameter in found:
        outcome = _answer(parameter, "", None)
        if not isinstance(outcome, SecretValue):
            del found, parameter
            raise _malformed(path, outcome)
        values.append(outcome)
    return token
