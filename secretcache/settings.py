"""SecretsSettingsSource: a pydantic-settings source that reads fields from Secrets Manager, through the cache.

Two ways to name a field's secret:

- per field: ``api_key: str = Field(json_schema_extra={"secret": "prod/api#key"})`` (any reference form:
  a secret id, ``id#json-key``, an ECS ``valueFrom`` ARN, a ``{{resolve:...}}`` reference);
- per model: ``SecretsSettingsSource(settings_cls, secret_id="prod/app")`` (or, equivalently,
  ``model_config = SettingsConfigDict(secretcache_secret_id="prod/app")``, which type checkers reject as an
  unknown key): each field takes the same-named key (or its alias) of that JSON secret, when the secret has it;
- per model, from Parameter Store: ``SecretsSettingsSource(settings_cls, parameter_path="/app/prod/")`` (or
  ``SettingsConfigDict(secretcache_parameter_path="/app/prod/")``): each field takes the parameter named by
  the path and the field's name (or alias), ``/`` nesting into sub-models (``/app/prod/db/host`` fills
  ``db.host``), from one cached GetParametersByPath walk.

Fields that an earlier (higher-priority) source already set are not fetched: with every field given by
the environment, building the settings makes no AWS call at all (pydantic-settings gives each source the
state built so far).

All the secrets a model names are fetched together (BatchGetSecretValue, 20 per call) through a
:class:`~secretcache.SecretCache` (the module-level default unless ``cache=`` is given), so building the
settings again is a cache hit and a rotation is seen within the cache's ttl. A failure raises
pydantic-settings' ``SettingsError`` naming the field and the secret, never a value.

Requires pydantic-settings >= 2 (``pip install 'secretcache[settings]'``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, cast

try:
    from pydantic_settings import PydanticBaseSettingsSource
    from pydantic_settings.exceptions import SettingsError
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ImportError("secretcache.settings needs pydantic-settings: pip install 'secretcache[settings]'") from e

from .cache import blocking_cache
from .errors import SecretCacheError
from .model import SecretRef, SecretValue

if TYPE_CHECKING:
    from pydantic.fields import FieldInfo
    from pydantic_settings import BaseSettings

    from ._face import AnySecretCache

__all__ = ["SecretsSettingsSource"]

CONFIG_KEY = "secretcache_secret_id"
"""The ``model_config`` key naming a JSON secret whose keys fill same-named fields."""

PATH_KEY = "secretcache_parameter_path"
"""The ``model_config`` key naming a Parameter Store hierarchy whose parameters fill same-named fields."""

_MISSING = object()


class _Wanted(NamedTuple):
    field: str  # the field name
    key: str  # where the value goes in this source's output: the alias if any, else the name
    ref: SecretRef | None  # a per-field reference, or None: the model's secret, key ``json_keys``
    json_keys: tuple[str, ...]  # for the model's secret: the keys to look for, in order


def _output_key(name: str, field: FieldInfo) -> str:
    alias = field.validation_alias if isinstance(field.validation_alias, str) else field.alias
    return alias or name


class SecretsSettingsSource(PydanticBaseSettingsSource):
    """Field values from Secrets Manager for a ``BaseSettings`` model.

    Use it in ``settings_customise_sources``; sources earlier in the tuple win::

        @classmethod
        def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                       file_secret_settings):
            return init_settings, env_settings, dotenv_settings, SecretsSettingsSource(settings_cls)
    """

    def __init__(
        self, settings_cls: type[BaseSettings], *, cache: AnySecretCache | None = None,
        secret_id: str | None = None, parameter_path: str | None = None,
    ) -> None:
        super().__init__(settings_cls)
        self._cache = None if cache is None else blocking_cache(cache)  # None: the default, at each read
        model_secret = secret_id if secret_id is not None else cast("Mapping[str, Any]", self.config).get(CONFIG_KEY)
        if model_secret is not None and (not isinstance(model_secret, str) or not model_secret):
            kind = type(model_secret).__name__
            what = "secret_id" if secret_id is not None else CONFIG_KEY
            raise SettingsError(f"{what} must be a secret id (a non-empty str), got {kind}")
        self._model_secret: str | None = model_secret
        self._parameter_path = _parameter_path(
            parameter_path if parameter_path is not None else cast("Mapping[str, Any]", self.config).get(PATH_KEY),
            "parameter_path" if parameter_path is not None else PATH_KEY)
        self._wanted = self._plan()
        self._values: dict[str, Any] | None = None
        self._adapters: dict[str, Any] = {}

    def __repr__(self) -> str:
        return (f"SecretsSettingsSource({self.settings_cls.__name__}, secret_id={self._model_secret!r}, "
                f"parameter_path={self._parameter_path!r})")

    def _plan(self) -> list[_Wanted]:
        wanted: list[_Wanted] = []
        for name, field in self.settings_cls.model_fields.items():
            extra = field.json_schema_extra
            reference = extra.get("secret") if isinstance(extra, dict) else None
            key = _output_key(name, field)
            if reference is not None:
                if not isinstance(reference, str):
                    raise SettingsError(f'field "{name}": json_schema_extra "secret" must be a reference string')
                try:
                    ref = SecretRef.parse(reference)
                except SecretCacheError as e:
                    raise SettingsError(f'field "{name}": {e}') from e
                wanted.append(_Wanted(name, key, ref, ()))
            elif self._model_secret is not None:
                wanted.append(_Wanted(name, key, None, tuple(dict.fromkeys((key, name)))))
        return wanted

    # -- pydantic-settings' interface ----------------------------------------------------------------------

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """The value of one field (None when this source has none), its key, and whether it is complex."""
        for wanted in self._wanted:
            if wanted.field == field_name:
                value = self._load().get(wanted.key)
                return value, wanted.key, self.field_is_complex(field)
        if self._parameter_path is not None:
            key = _output_key(field_name, field)
            return self._load().get(key), key, self.field_is_complex(field)
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._load())

    # -- the fetch -----------------------------------------------------------------------------------------

    def _load(self) -> dict[str, Any]:
        if self._values is None:
            self._values = self._fetch()
        return self._values

    def _state(self) -> Mapping[str, Any]:
        """What earlier sources set (pydantic-settings >= 2.4 passes the state built so far)."""
        try:
            return cast("Mapping[str, Any]", self.current_state)
        except AttributeError:  # an older pydantic-settings, or called outside a settings build
            return {}

    def _still_wanted(self) -> list[_Wanted]:
        """The fields no earlier source has set."""
        state = self._state()
        return [w for w in self._wanted if w.key not in state and w.field not in state]

    def _path_fields(self) -> list[tuple[str, str]]:
        """(field, output key) of the fields the parameter path may fill: not named by a secret, not set."""
        if self._parameter_path is None:
            return []
        state, named = self._state(), {w.field for w in self._wanted if w.ref is not None}
        return [(name, key) for name, field in self.settings_cls.model_fields.items()
                if name not in named and (key := _output_key(name, field)) not in state and name not in state]

    def _fetch(self) -> dict[str, Any]:
        wanted_now = self._still_wanted()
        path_fields = self._path_fields()
        if not wanted_now and not path_fields:
            return {}  # nothing left to fill: no cache, no AWS call
        cache = blocking_cache(self._cache)
        from_path = self._from_path(cache, path_fields) if path_fields else {}
        if not wanted_now:
            return from_path
        batch = [w.ref.secret_id for w in wanted_now if w.ref is not None and _current(w.ref)]
        if self._model_secret is not None and any(w.ref is None for w in wanted_now):
            batch.append(self._model_secret)
        got = cache.get_many(list(dict.fromkeys(batch)), raise_on_error=False)  # one batch for the lot
        fields = self.settings_cls.model_fields
        values: dict[str, Any] = from_path  # secrets named for a field (or the model's) win over the path
        error: SettingsError | None = None
        for wanted in wanted_now:
            secret_id = wanted.ref.secret_id if wanted.ref is not None else self._model_secret
            assert secret_id is not None
            try:
                value = got.get(secret_id) if wanted.ref is None or _current(wanted.ref) else None
                if value is None:
                    # Not fetched in the batch (a failure, or a reference to a version or a stage): read it
                    # alone; a failure is answered from the cache's backoff record without another call.
                    ref = wanted.ref
                    value = cache.get_secret_value(secret_id, version_id=ref.version_id if ref else None,
                                                   version_stage=ref.version_stage if ref else None)
                found = self._value_of(wanted, value)
            except SecretCacheError as e:
                error = SettingsError(f'field "{wanted.field}": secret {secret_id!r}: {e}')
                error.__cause__ = e
                break
            if found is _MISSING:
                continue
            if self.field_is_complex(fields[wanted.field]) and isinstance(found, str):
                found = _decode(found, wanted.field, secret_id)
            error = self._check(wanted.field, secret_id, found)
            if error is not None:
                break
            values[wanted.key] = found
        if error is not None:
            # Raised with no value left in this frame's locals (a traceback with locals shows them).
            values.clear()  # (the same dict as from_path)
            del values, got, from_path
            found = value = None
            raise error
        return values

    def _from_path(self, cache: Any, path_fields: list[tuple[str, str]]) -> dict[str, Any]:
        """The fields in ``path_fields`` from the parameters under the path: one cached GetParametersByPath
        walk (``cache.get_path``).

        A parameter's name after the path, split on ``/``, nests: ``db/host`` is ``{"db": {"host": ...}}``,
        which pydantic validates into a sub-model (or a dict field). A top-level field of a complex type
        (list, dict, a sub-model) given as one parameter holding JSON is decoded, as an environment
        variable would be. Each value is checked as the secrets' are, so no validation error shows it.
        """
        path = self._parameter_path
        assert path is not None
        try:
            listing = cache.get_path("ssm:" + path, recursive=True)
        except SecretCacheError as e:
            raise SettingsError(f"{PATH_KEY} {path!r}: {e}") from e
        tree: dict[str, Any] = {}
        for value in listing.values():
            parts = value.name[len(path):].split("/")
            node = tree
            for part in parts[:-1]:
                child = node.setdefault(part, {})
                if not isinstance(child, dict):  # both /a and /a/b exist: the deeper one cannot nest
                    break
                node = child
            else:
                node[parts[-1]] = value.secret_string
        del listing
        fields = self.settings_cls.model_fields
        values: dict[str, Any] = {}
        found: Any = None
        error: SettingsError | None = None
        try:
            for name, key in path_fields:
                found = tree.get(key, tree.get(name, _MISSING))
                if found is _MISSING:
                    continue
                parameter = "ssm:" + path + key
                if isinstance(found, str) and self.field_is_complex(fields[name]):
                    found = _decode(found, name, parameter)
                error = self._check(name, parameter, found)
                if error is not None:
                    break
                values[key] = found
        except BaseException:
            tree.clear()  # no value stays reachable from this frame's traceback
            values.clear()
            found = None
            raise
        if error is not None:
            tree.clear()
            values.clear()
            found = None
            raise error
        return values

    def _check(self, field_name: str, secret_id: str, found: Any) -> SettingsError | None:
        """A ``SettingsError`` when ``found`` does not validate as the field's type and constraints.

        pydantic's own error would carry the value (``input_value=...``) into the exception text and repr;
        this one names the field, the secret and pydantic's messages (``hide_input_in_errors``), never the
        input. Validators defined on the model itself still run in pydantic afterwards (docs/settings.md).
        """
        from pydantic import ValidationError

        adapter = self._adapter(field_name)
        if adapter is None:
            return None
        try:
            adapter.validate_python(found)
        except ValidationError as e:
            problems = "; ".join(
                (".".join(map(str, err["loc"])) + ": " if err["loc"] else "") + err["msg"]
                for err in e.errors(include_input=False, include_url=False, include_context=False)
            )
            message = f'field "{field_name}": secret {secret_id!r}: the value is not valid: {problems}'
            return SettingsError(message[:1000])
        return None

    def _adapter(self, field_name: str) -> Any:
        """A TypeAdapter of the field's annotation and constraints that hides inputs in its errors (None
        when the annotation cannot be built on its own, e.g. an unresolved forward reference)."""
        if field_name in self._adapters:
            return self._adapters[field_name]
        from typing import Annotated

        from pydantic import ConfigDict, TypeAdapter

        field = self.settings_cls.model_fields[field_name]
        config = cast("Mapping[str, Any]", self.config)
        adapter: Any = None
        try:
            annotation: Any = field.annotation
            if field.metadata:
                annotation = cast(Any, Annotated)[tuple([annotation, *field.metadata])]
            adapter = TypeAdapter(annotation, config=ConfigDict(
                hide_input_in_errors=True, strict=bool(config.get("strict", False)),
                arbitrary_types_allowed=bool(config.get("arbitrary_types_allowed", False))))
        except Exception:  # not checkable here: pydantic validates it (its config decides what it shows)
            adapter = None
        self._adapters[field_name] = adapter
        return adapter

    def _value_of(self, wanted: _Wanted, value: SecretValue) -> Any:
        """A field's value from its secret: the string (or JSON key) a reference names, or the model
        secret's key (decoded JSON, as it is: a number stays a number); ``_MISSING`` when absent."""
        if wanted.ref is not None:
            return value.text(wanted.ref.json_key)
        doc = value.json()
        for key in wanted.json_keys:
            if key in doc:
                return doc[key]
        return _MISSING


def _current(ref: SecretRef) -> bool:
    """Whether a reference reads the default stage (so the batch can fetch it)."""
    return ref.version_id is None and ref.version_stage is None


def _parameter_path(path: object, what: str) -> str | None:
    """A parameter path as ``/a/b/`` (``ssm:`` and the trailing ``/`` optional), or None."""
    if path is None:
        return None
    text = path[len("ssm:"):] if isinstance(path, str) and path.startswith("ssm:") else path
    if not isinstance(text, str) or not text.startswith("/"):
        raise SettingsError(f"{what} must be a Parameter Store path starting with / (e.g. '/app/prod/'), "
                            f"got {str(path)[:200]!r}")
    return text.rstrip("/") + "/"


def _decode(text: str, field: str, secret_id: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        pass
    # Raised outside the except block and with the text dropped: the decode error's .doc, and this
    # frame's locals in a traceback, would both hold the secret text.
    del text
    raise SettingsError(f'field "{field}": secret {secret_id!r}: the value is not valid JSON')
