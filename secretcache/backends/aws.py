"""AwsBackend: GetSecretValue and BatchGetSecretValue over boto3, with typed errors and Region failover;
Parameter Store reads (``ssm:NAME``, parameter ARNs) through an SSM client built beside it (:mod:`._ssm`).

Size: one backend's two services share its session, configuration, Regions, fork handling and error
mapping (~490 lines); the parameter answers are parsed in :mod:`._ssm`.

boto3 is imported on the first fetch, not when the backend is built, so an ``AwsBackend`` can sit in
a module-level default cache for free. Every botocore failure becomes one of the errors of
:mod:`secretcache.errors`, chained to the original (``raise ... from e``).
"""

from __future__ import annotations

import functools
import re
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from ..errors import (
    AssumeRoleDeniedError,
    AssumeRoleError,
    AssumeRoleUnavailableError,
    RegionNotConfiguredError,
    SecretAccessDeniedError,
    SecretCacheError,
    SecretUnavailableError,
    error_for_code,
)
from ..model import SecretValue, value_from_answer
from ..parameters import REFERENCE_PATH, is_parameter
from ..parameters import region_of as parameter_region
from . import _fork, _redact, _ssm
from ._botocore_errors import COMMAND_LINE_ADVICE, LIBRARY_ADVICE, Advice, map_botocore_error, unreadable_answer
from .aws_clients import aws_client, region_error, resolve_region
from .base import BATCH_LIMIT

if TYPE_CHECKING:
    import boto3
    from botocore.config import Config
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_secretsmanager.type_defs import (
        BatchGetSecretValueRequestTypeDef,
        GetSecretValueRequestTypeDef,
    )

__all__ = ["AwsBackend"]

_T = TypeVar("_T")
_ARN_REGION = re.compile(r"(arn:[^:]+:secretsmanager:)([^:]+)(:.*)")
# IAM's own formats (the Secrets Manager Agent checks roleArn with the same expression).
_ROLE_ARN = re.compile(r"arn:[\w-]+:iam::\d{12}:role/[\w+=,.@/-]+", re.ASCII)
_SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}", re.ASCII)
_EXTERNAL_ID = re.compile(r"[\w+=,.@:/-]{2,1224}", re.ASCII)


class _RoleFailure(Exception):
    """sts:AssumeRole failed inside botocore's credential refresh (the original is the ``__cause__``).

    Raised through botocore's signing path, so ``AwsBackend`` can tell a failure to assume the role
    from one of Secrets Manager itself. Its text is the role ARN only (botocore logs it when an early,
    advisory refresh fails); never a credential.
    """


class _NoCache(dict[str, Any]):
    """The AssumeRole fetcher's cache, always empty: the refreshable credentials hold the only copy, so
    one clock (theirs) decides when AssumeRole runs again."""

    def __contains__(self, key: object) -> bool:
        return False

    def __setitem__(self, key: str, value: Any) -> None:
        pass


def _assume_role_session(
    base: boto3.session.Session, role_arn: str, *, external_id: str | None, role_session_name: str,
    region_name: str | None, config: Config | None,
) -> boto3.session.Session:
    """A boto3 session whose every client signs with credentials from ``sts:AssumeRole`` on ``role_arn``.

    The credentials are botocore's own ``DeferredRefreshableCredentials`` over its
    ``AssumeRoleCredentialFetcher``: the first request assumes the role, every thread and every client
    of the session (one per Region) shares the result, and botocore refreshes it before it expires (an
    advisory refresh 15 minutes ahead by one thread while the others keep signing; a mandatory one
    10 minutes ahead, others waiting for it), so there is one AssumeRole per expiry period. The STS
    client is built by :func:`~secretcache.backends.aws_clients.aws_client` from ``base`` (the caller's
    credentials) with the backend's Region and config; its endpoint comes from the standard chain
    (``AWS_ENDPOINT_URL_STS``, ``AWS_ENDPOINT_URL``).
    """
    import boto3
    import botocore.session
    from botocore.credentials import (
        AssumeRoleCredentialFetcher,
        CredentialProvider,
        CredentialResolver,
        DeferredRefreshableCredentials,
    )
    from botocore.exceptions import NoCredentialsError

    region = resolve_region(base, region_name)

    def sts_client(service_name: str, **_source_credentials: Any) -> Any:
        # Built by aws_clients like every client of ours (Region, endpoint, config); it signs with the
        # base session's credentials, the same ones botocore's fetcher hands over frozen.
        return aws_client(service_name, session=base, region_name=region, config=config, what="to assume a role")

    extra = {"RoleSessionName": role_session_name}
    if external_id is not None:
        extra["ExternalId"] = external_id
    source = base.get_credentials()
    fetcher = (AssumeRoleCredentialFetcher(sts_client, source, role_arn, extra_args=extra, cache=_NoCache())
               if source is not None else None)

    def assume() -> dict[str, Any]:
        try:
            if fetcher is None:
                raise NoCredentialsError()
            return fetcher.fetch_credentials()
        except Exception as e:
            raise _RoleFailure(role_arn) from e

    credentials = DeferredRefreshableCredentials(assume, "assume-role")

    class _Provider(CredentialProvider):
        METHOD = "assume-role"

        def load(self) -> DeferredRefreshableCredentials:
            return credentials

    profile = base.profile_name if base.profile_name in base.available_profiles else None
    core = botocore.session.Session(profile=profile)
    core.register_component("credential_provider", CredentialResolver([_Provider()]))
    return boto3.session.Session(botocore_session=core, region_name=region)


def _role_error(failure: _RoleFailure, role_arn: str, secret_id: str | None, advice: Advice) -> AssumeRoleError:
    """The typed error for a failed AssumeRole: denied, transient, or (a request STS refuses) permanent."""
    cause = failure.__cause__
    what = f"reading secret {secret_id!r}" if secret_id is not None else "reading secrets"
    if isinstance(cause, SecretCacheError):  # already typed (no Region for STS): its own words
        typed, code, detail = cause, cause.code, str(cause)
    elif isinstance(cause, Exception) and type(cause).__module__.split(".")[0] in ("botocore", "boto3"):
        typed = map_botocore_error(cause, secret_id, advice)
        code = typed.code
        response = getattr(cause, "response", None)
        if isinstance(response, Mapping):  # STS answered: its own message, without our suffix
            detail = " ".join(str(response.get("Error", {}).get("Message") or "").split()) or "refused"
            detail = f"{detail} (code {code})" if code else detail
        else:  # botocore's own text: an endpoint URL, a missing credential; never a credential
            detail = " ".join(f"{type(cause).__name__}: {cause}".split())[:500]
    else:
        typed = SecretUnavailableError("unexpected", secret_id=secret_id)
        code, detail = None, type(cause).__name__ if cause is not None else "failed"
    message = f"sts:AssumeRole of role {role_arn} failed {what}: {detail}"
    if isinstance(typed, SecretAccessDeniedError):
        return AssumeRoleDeniedError(message, secret_id=secret_id, code=code)
    if isinstance(typed, SecretUnavailableError):
        return AssumeRoleUnavailableError(message, secret_id=secret_id, code=code)
    return AssumeRoleError(message, secret_id=secret_id, code=code)


def _in_region(secret_id: str, region: str) -> str:
    """The id of the replica in ``region``: an ARN gets its Region rewritten, a name is reused as is."""
    m = _ARN_REGION.fullmatch(secret_id)
    return f"{m[1]}{region}{m[3]}" if m else secret_id


def region_of(secret_id: str) -> str | None:
    """The Region a full or partial ARN names; None for a name."""
    m = _ARN_REGION.fullmatch(secret_id)
    return m[2] if m else None


def _custom_endpoint(client: Any) -> str | None:
    """A given client's endpoint when it is not AWS's own (a local server, a VPC endpoint), else None."""
    url = getattr(getattr(client, "meta", None), "endpoint_url", None)
    return _custom_url(url) if isinstance(url, str) else None


def _custom_url(url: str) -> str | None:
    """``url`` when it is not AWS's own endpoint (a local emulator, a proxy), else None."""
    host = url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
    return None if host.endswith((".amazonaws.com", ".amazonaws.com.cn", ".api.aws")) else url


def _to_value(response: Any, secret_id: str) -> SecretValue:
    """A SecretValue from a GetSecretValue answer (or one BatchGetSecretValue entry).

    A malformed answer (no value, a value of the wrong type or over the size limit, unusable metadata)
    is the service's or a proxy's fault, not the secret's: it raises the transient
    SecretUnavailableError naming the secret id, like every other garbled answer. The answer is
    dropped before raising, so no frame of the traceback holds it.
    """
    outcome = _answer(response, secret_id)
    del response
    if isinstance(outcome, SecretValue):
        return outcome
    raise SecretUnavailableError(f"Secrets Manager sent a malformed answer for secret {secret_id!r}: {outcome}",
                                 secret_id=secret_id)


def _answer(response: Any, secret_id: str) -> SecretValue | str:
    """The value of an answer, or why it is malformed. Returns rather than raises (see _to_value)."""
    if not isinstance(response, Mapping):
        return f"expected an object, got {type(response).__name__}"
    string, binary = response.get("SecretString"), response.get("SecretBinary")
    if string is None and binary is None:
        # botocore turns a non-JSON 200 body into {"message": ...}: a broken answer, not a valueless secret.
        return "no SecretString or SecretBinary"
    name = response.get("Name") or secret_id
    stages = response.get("VersionStages") or ()
    if isinstance(stages, list) and all(isinstance(s, str) for s in stages):
        # Thousands of cached versions share a handful of labels: keep one copy of each.
        stages = tuple(sys.intern(s) for s in stages)
    return value_from_answer(
        # Reuse the caller's id string when it is the name: it is already held as the cache key.
        secret_id if name == secret_id else name,
        response.get("ARN"),
        response.get("VersionId"),
        stages,
        string,
        binary,
        response.get("CreatedDate"),
    )


class AwsBackend:
    """Secrets Manager through boto3: one client per backend (and per failover Region), created lazily.

    ``client`` is used as given. Otherwise the client is built by
    :func:`secretcache.backends.aws_clients.aws_client` from ``session`` (default: a new
    ``boto3.session.Session()``, the standard credential chain): Region ``region_name``, else the
    botocore chain, else ``AWS_REGION`` (else, for an ARN, the ARN's Region); ``endpoint_url`` (else
    ``AWS_ENDPOINT_URL_SECRETS_MANAGER`` / ``AWS_ENDPOINT_URL`` as botocore reads them); ``config``
    merged over a default of 3 attempts and 3 s / 5 s connect / read timeouts.

    References by full (or partial) ARN are read in the ARN's Region: a client per Region, created on
    first use with the same session, credentials and configuration (ECS ``valueFrom`` ARNs name their
    Region, and ECS resolves them there). Names go to the primary Region.

    ``failover_regions``: when a call fails transiently (throttling, 5xx, timeout, connection), it is
    retried against the replica in the next Region in order (an ARN's Region is rewritten, a name is
    reused). Permanent errors (4xx) never fail over. Clients for other Regions use each Region's
    standard endpoint, unless the backend has a custom one (``endpoint_url=``, or a given ``client=``
    whose endpoint is not AWS's): that endpoint serves every Region (a local emulator, a proxy).

    ``role_arn``: read another account's secrets (or with a narrower role) through ``sts:AssumeRole``.
    The role is assumed with the session's credentials (``session``, else the standard chain), as
    ``role_session_name``, with ``external_id`` when the role's trust policy asks for one. Every client
    of the backend (each Region's) signs with the one set of assumed credentials, which botocore
    refreshes before they expire: one AssumeRole per expiry period, whatever the number of threads. A
    refused AssumeRole raises :class:`~secretcache.errors.AssumeRoleDeniedError` (a
    ``SecretAccessDeniedError``); throttled or unreachable STS
    :class:`~secretcache.errors.AssumeRoleUnavailableError` (transient). No credential ever reaches a
    log record, a repr or an error.

    Parameters (``ssm:NAME``, ``arn:aws:ssm:...:parameter/NAME``) are read from Parameter Store by an
    ``ssm`` client built beside the Secrets Manager one (:meth:`ssm_client_for`), or ``ssm_client=`` as
    given; its endpoint is ``ssm_endpoint_url=``, else a custom ``endpoint_url`` (an emulator serves both),
    else boto3's. Every read decrypts; parameters do not fail over (they have no replicas).
    """

    _advice: ClassVar[Advice] = LIBRARY_ADVICE  # what a configuration error tells its reader to change

    def __init__(
        self,
        client: SecretsManagerClient | None = None,
        *,
        session: boto3.session.Session | None = None,
        region_name: str | None = None,
        endpoint_url: str | None = None,
        failover_regions: Sequence[str] = (),
        config: Config | None = None,
        role_arn: str | None = None,
        external_id: str | None = None,
        role_session_name: str = "secretcache",
        ssm_client: Any = None,
        ssm_endpoint_url: str | None = None,
    ) -> None:
        if isinstance(failover_regions, str):
            raise TypeError("failover_regions must be a sequence of Region names, not a str")
        _check_role(role_arn, external_id, role_session_name, client is not None)
        self.role_arn = role_arn
        self._external_id = external_id
        self._role_session_name = role_session_name
        self._base_session = session  # the caller's: the source credentials of AssumeRole, when a role is set
        self._session = session if role_arn is None else None  # what clients are built from
        self._own_session = self._session is None  # built by us on first use: rebuilt in a forked child
        self._given_client = client
        self._region_name = region_name
        self._endpoint_url = endpoint_url
        self._config = config
        self.failover_regions: tuple[str, ...] = tuple(failover_regions)
        self._clients: dict[str | None, SecretsManagerClient] = {}
        if client is not None:
            _redact.install()  # botocore logs bodies at DEBUG: filter them before this client's first call
            self._clients[None] = client
        self._given_ssm_client = ssm_client
        self._ssm_endpoint_url = ssm_endpoint_url
        self._ssm_clients: dict[str | None, Any] = {}
        if ssm_client is not None:
            _redact.install()
            self._ssm_clients[None] = ssm_client
        self._lock = threading.Lock()
        _fork.track(self, AwsBackend._after_fork_in_child)

    def _after_fork_in_child(self) -> None:
        """In a forked child: drop the clients (and session) this backend built, close the pooled
        connections of a client it was given, and take a fresh lock; clients are rebuilt on next use.

        The parent keeps using its clients and their keep-alive sockets; a child writing on the same
        sockets would read answers meant for the parent. Closing in the child only closes its copies
        of the descriptors (no shutdown): the parent's connections are unaffected. A boto3 session
        holds credential-refresh locks a parent thread may have held at the fork, so ours is rebuilt
        too; a session the caller passed is theirs to manage.
        """
        self._lock = threading.Lock()
        self._clients = {}
        self._ssm_clients = {}
        if self._own_session:
            self._session = None
        given = self._given_client
        if given is not None:
            # botocore keeps its urllib3 pools on client._endpoint.http_session (URLLib3Session, whose
            # close() empties its PoolManagers); getattr so that another botocore layout only skips this.
            http_session = getattr(getattr(given, "_endpoint", None), "http_session", None)
            close = getattr(http_session, "close", None)
            if callable(close):
                close()
            self._clients[None] = given
        given_ssm = self._given_ssm_client
        if given_ssm is not None:
            close = getattr(getattr(getattr(given_ssm, "_endpoint", None), "http_session", None), "close", None)
            if callable(close):
                close()
            self._ssm_clients[None] = given_ssm

    def __repr__(self) -> str:
        region = self._region_name
        if region is None and None in self._clients:
            # getattr: a stand-in client may lack .meta, and a repr that raises breaks tracebacks with locals.
            region = getattr(getattr(self._clients[None], "meta", None), "region_name", None)
        role = f", role_arn={self.role_arn!r}" if self.role_arn is not None else ""
        return f"AwsBackend(region_name={region!r}, failover_regions={self.failover_regions!r}{role})"

    @property
    def session(self) -> boto3.session.Session:
        """The boto3 session the backend's clients come from (created on first access); with ``role_arn``,
        one whose credentials are the assumed role's, for building other clients that read as the role."""
        _redact.install()  # its clients log bodies (and sign with the credentials) at DEBUG too
        with self._lock:
            return self._client_session()

    def _client_session(self) -> boto3.session.Session:
        if self._session is None:
            import boto3  # on the first fetch only

            # A private session: boto3's default session is not safe to build clients from in threads.
            base = self._base_session if self._base_session is not None else boto3.session.Session()
            if self.role_arn is None:
                self._session = base
            else:
                self._session = _assume_role_session(
                    base, self.role_arn, external_id=self._external_id, role_session_name=self._role_session_name,
                    region_name=self._region_name, config=self._config,
                )
        return self._session

    @property
    def client(self) -> SecretsManagerClient:
        """The primary boto3 ``secretsmanager`` client (created on first access)."""
        return self.client_for(None)

    def client_for(self, region: str | None = None) -> SecretsManagerClient:
        """The client for ``region`` (``None``: the primary), created on first use, once."""
        try:
            return self._clients[region]
        except KeyError:
            pass
        with self._lock:
            if region not in self._clients:
                self._clients[region] = self._new_client(region)
            return self._clients[region]

    def _new_client(self, region: str | None) -> SecretsManagerClient:
        # Built by aws_clients, the one place every AWS client of the package comes from (Region:
        # region_name, the botocore chain, AWS_REGION; endpoint; merged config).
        session = self._client_session()
        if region is None:
            client: SecretsManagerClient = aws_client(
                "secretsmanager", session=session, region_name=self._region_name,
                endpoint_url=self._endpoint_url, config=self._config)
            return client
        config = self._config
        endpoint_url = self._endpoint_url
        if None in self._clients:  # replicas keep the primary's configuration (e.g. a user's client=)
            primary = self._clients[None].meta.config
            config = primary if config is None else config.merge(primary)
            if endpoint_url is None:
                endpoint_url = _custom_endpoint(self._clients[None])
        replica: SecretsManagerClient = aws_client(
            "secretsmanager", session=session, region_name=region, endpoint_url=endpoint_url, config=config)
        return replica

    def ssm_client_for(self, region: str | None = None) -> Any:
        """The boto3 ``ssm`` client for ``region`` (``None``: the primary Region), created on first use, once."""
        try:
            return self._ssm_clients[region]
        except KeyError:
            pass
        with self._lock:
            if region not in self._ssm_clients:
                self._ssm_clients[region] = self._new_ssm_client(region)
            return self._ssm_clients[region]

    def _new_ssm_client(self, region: str | None) -> Any:
        """The SSM client, built as the Secrets Manager one is (:func:`.aws_clients.aws_client`: the same
        session, Region rule and configuration, the primary client's merged in when one was given).

        Its endpoint is ``ssm_endpoint_url=``, else the Secrets Manager endpoint when that is not AWS's
        own (a local emulator serves both), else botocore's (which honours ``AWS_ENDPOINT_URL_SSM``).
        """
        session = self._client_session()  # the role's, with role_arn: parameters are read as the role too
        config = self._config
        primary = self._clients.get(None)
        if primary is not None:
            config = primary.meta.config if config is None else config.merge(primary.meta.config)
        endpoint_url = self._ssm_endpoint_url
        if endpoint_url is None:
            endpoint_url = _custom_url(self._endpoint_url) if self._endpoint_url is not None \
                else _custom_endpoint(primary)
        if region is None:
            region = self._region_name or getattr(getattr(primary, "meta", None), "region_name", None)
        return aws_client("ssm", session=session, region_name=region, endpoint_url=endpoint_url,
                          config=config, what="for Parameter Store", region_advice=self._advice.region)

    def _primary_region(self) -> str | None:
        if self._region_name is not None:
            return self._region_name
        try:
            client = self.client
        except RegionNotConfiguredError:
            return None  # no Region anywhere: an ARN is read in its own Region (the last fallback)
        region = getattr(getattr(client, "meta", None), "region_name", None)
        return region if isinstance(region, str) else None

    def _home(self, secret_id: str) -> str | None:
        """The Region a reference must be read in: the ARN's when it is not the primary's, else None."""
        region = region_of(secret_id)
        if region is None or region == self._primary_region():
            return None
        return region

    def _call(
        self, secret_id: str | None, ids: Sequence[str], call: Callable[[Any, list[str]], _T],
        home: str | None = None, *, ssm: bool = False,
    ) -> _T:
        """Run ``call(client, ids)`` in ``home`` (None: the primary Region), then in each failover Region on
        transient errors (Parameter Store reads, ``ssm=True``, do not fail over: parameters have no replicas).

        ``ids`` are rewritten for each failover Region; ``secret_id`` names the secret in error messages.
        """
        regions: list[str | None] = [home] if ssm else [home, *(r for r in self.failover_regions if r != home)]
        for attempt, region in enumerate(regions):
            last = attempt == len(regions) - 1
            try:
                try:
                    client = self.ssm_client_for(region) if ssm else self.client_for(region)
                except RegionNotConfiguredError:
                    what = f"reading secret {secret_id!r}" if secret_id is not None else "reading secrets"
                    raise region_error(what, self._advice.region, secret_id=secret_id) from None
                return call(client, [_in_region(i, region) if attempt and region else i for i in ids])
            except SecretCacheError as e:  # already typed (e.g. a malformed answer)
                if not isinstance(e, SecretUnavailableError) or last:
                    raise
                continue
            except _RoleFailure as e:
                # Every Region's client shares the role's credentials: another Region would fail alike.
                raise _role_error(e, self.role_arn or "?", secret_id, self._advice) from e.__cause__
            except Exception as e:
                unreadable = unreadable_answer(e)
                if unreadable is None:
                    if type(e).__module__.split(".")[0] not in ("botocore", "boto3"):
                        raise
                    typed = map_botocore_error(e, secret_id, self._advice)
                    if not isinstance(typed, SecretUnavailableError) or last:
                        raise typed from e
                    continue
            # botocore could not read the answer. Raised here, outside the except block: the parser's
            # frames hold the answer (the secret) in their locals, so its exception must be neither the
            # cause nor the context of what the caller (and an error tracker capturing locals) sees.
            if last:
                what = f"secret {secret_id!r}" if secret_id is not None else "a BatchGetSecretValue call"
                raise SecretUnavailableError(
                    f"Secrets Manager sent an answer botocore could not read for {what} ({unreadable})",
                    secret_id=secret_id,
                )
        raise AssertionError("unreachable")  # pragma: no cover

    def get_secret_value(
        self, secret_id: str, *, version_id: str | None = None, version_stage: str | None = None
    ) -> SecretValue:
        """One GetSecretValue call (failing over to replicas on transient errors); for a parameter, one
        GetParameter call (decrypted, with the version or label as SSM's selector)."""
        if is_parameter(secret_id):
            return self._call(secret_id, [secret_id],
                              lambda client, ids: _ssm.get_parameter(client, ids[0], version_id, version_stage),
                              self._parameter_home(secret_id), ssm=True)

        def call(client: SecretsManagerClient, ids: list[str]) -> SecretValue:
            request: GetSecretValueRequestTypeDef = {"SecretId": ids[0]}
            if version_id is not None:
                request["VersionId"] = version_id
            if version_stage is not None:
                request["VersionStage"] = version_stage
            return _to_value(client.get_secret_value(**request), secret_id)

        return self._call(secret_id, [secret_id], call, self._home_of(secret_id))

    def _parameter_home(self, secret_id: str) -> str | None:
        region = parameter_region(secret_id)
        if region is None or region == self._region_name:
            return None
        try:
            primary = self.ssm_client_for(None)
        except RegionNotConfiguredError:
            return region  # no Region anywhere: the ARN's own (the last fallback)
        return None if region == getattr(getattr(primary, "meta", None), "region_name", None) else region

    def get_parameters_by_path(self, path: str, *, recursive: bool = True) -> list[SecretValue]:
        """Every parameter under ``path`` (``ssm:/app/prod/``): GetParametersByPath, decrypted, all pages."""
        hierarchy = path[len("ssm:"):]
        return self._call(path, [path], lambda client, ids: _ssm.get_parameters_by_path(
            client, path, hierarchy, recursive), ssm=True)

    def _home_of(self, secret_id: str) -> str | None:
        # Only an ARN needs the primary Region looked up (which may build the primary client).
        return self._home(secret_id) if secret_id.startswith("arn:") else None

    def batch_get_secret_values(
        self, secret_ids: Sequence[str]
    ) -> tuple[list[SecretValue], dict[str, SecretCacheError]]:
        """AWSCURRENT values by BatchGetSecretValue: chunks of 20, following NextToken; failures by id.

        A failure of a whole call (AccessDeniedException when BatchGetSecretValue is not allowed,
        throttling, connection) raises; the cache then falls back to one GetSecretValue per secret.
        """
        values: list[SecretValue] = []
        errors: dict[str, SecretCacheError] = {}
        by_region: dict[str | None, list[str]] = {}
        parameters: dict[str | None, list[str]] = {}
        for secret_id in dict.fromkeys(secret_ids):  # ARNs of other Regions are asked there
            if not is_parameter(secret_id):
                by_region.setdefault(self._home_of(secret_id), []).append(secret_id)
            elif REFERENCE_PATH in secret_id or secret_id.startswith("arn:"):
                # Read alone: only a single read reports a referenced secret's version, and an ARN (maybe
                # another account's shared parameter) is not in every GetParameters implementation's reach.
                try:
                    values.append(self.get_secret_value(secret_id))
                except SecretCacheError as e:
                    errors[secret_id] = e
            else:
                parameters.setdefault(self._parameter_home(secret_id), []).append(secret_id)
        for home, names in parameters.items():
            # GetParameters, 10 names per call; a name SSM reports invalid fails alone.
            found, failed = self._call(None, names, lambda client, ids: _ssm.get_parameters(client, ids), home,
                                       ssm=True)
            values += found
            errors.update(failed)
        for home, unique in by_region.items():
            for start in range(0, len(unique), BATCH_LIMIT):
                chunk = unique[start:start + BATCH_LIMIT]
                # A whole-call failure concerns no single secret: it carries secret_id None.
                chunk_values, chunk_errors = self._call(None, chunk, functools.partial(_batch_pages, asked=chunk),
                                                        home)
                values += chunk_values
                errors.update(chunk_errors)
        return values, errors



def _check_role(role_arn: str | None, external_id: str | None, session_name: str, has_client: bool) -> None:
    """Refuse a role configuration STS would refuse anyway, at construction, naming what is wrong."""
    if role_arn is None:
        if external_id is not None:
            raise ValueError("external_id= is only used with role_arn=")
        return
    if has_client:
        raise TypeError("pass client= or role_arn=, not both: a given client signs with its own credentials")
    if not isinstance(role_arn, str) or not _ROLE_ARN.fullmatch(role_arn):
        raise ValueError(f"role_arn {role_arn!r} is not an IAM role ARN (arn:<partition>:iam::<account>:role/<name>)")
    if not isinstance(session_name, str) or not _SESSION_NAME.fullmatch(session_name):
        raise ValueError(f"role_session_name {session_name!r} must be 2-64 characters of letters, digits and +=,.@_-")
    if external_id is not None and (not isinstance(external_id, str) or not _EXTERNAL_ID.fullmatch(external_id)):
        raise ValueError("external_id must be 2-1224 characters of letters, digits and +=,.@:/_-")


class CommandLineAwsBackend(AwsBackend):
    """``AwsBackend`` as the ``secretcache`` command builds it: a configuration error names the command's
    options (``--region``), not the library's keywords (``region_name=``, ``session=``)."""

    _advice = COMMAND_LINE_ADVICE


def _batch_pages(
    client: SecretsManagerClient, ids: list[str], asked: list[str]
) -> tuple[list[SecretValue], dict[str, SecretCacheError]]:
    """Every page of one BatchGetSecretValue chunk (boto3 has no paginator for it); errors keyed as asked."""
    original = dict(zip(ids, asked, strict=True))  # failover rewrites ARNs: report under the caller's ids
    values: list[SecretValue] = []
    errors: dict[str, SecretCacheError] = {}
    token: str | None = None
    while True:
        request: BatchGetSecretValueRequestTypeDef = {"SecretIdList": ids}
        if token:
            request["NextToken"] = token
        # The page is read in its own frame, never held here: when the next page's call raises, this
        # frame's locals (in the traceback) must not hold the previous page's values.
        token = _read_page(client.batch_get_secret_value(**request), original, values, errors)
        if not token:
            return values, errors


def _read_page(
    page: Any, original: dict[str, str], values: list[SecretValue], errors: dict[str, SecretCacheError]
) -> str | None:
    """Add one BatchGetSecretValue page's values and failures to ``values`` / ``errors``; its NextToken.

    A malformed entry is skipped (the cache then fetches that id on its own); a malformed page raises
    SecretUnavailableError, with the page dropped first so no frame of the traceback holds it.
    """
    entries = failures = token = None
    usable = isinstance(page, Mapping)
    if usable:
        entries, failures, token = page.get("SecretValues"), page.get("Errors"), page.get("NextToken")
    del page
    usable = usable and all(isinstance(v, (list, type(None))) for v in (entries, failures)) \
        and isinstance(token, (str, type(None)))
    if not usable:
        del entries, failures
        raise SecretUnavailableError("Secrets Manager sent a malformed BatchGetSecretValue answer")
    values.extend(v for v in map(_entry, entries or ()) if isinstance(v, SecretValue))
    del entries
    for failure in failures or ():
        if not isinstance(failure, Mapping):
            continue
        sent = failure.get("SecretId")
        secret_id = original.get(sent, sent) if isinstance(sent, str) else ""
        message = " ".join(str(failure.get("Message") or "").split()) or "batch read failed"
        code = failure.get("ErrorCode")
        errors[secret_id] = error_for_code(code if isinstance(code, str) else None, message, secret_id=secret_id)
    return token


def _entry(entry: Any) -> SecretValue | str:
    """One BatchGetSecretValue entry's value, or why it is malformed (the cache then fetches it alone)."""
    name = entry.get("Name") if isinstance(entry, Mapping) else None
    return _answer(entry, name if isinstance(name, str) and name else "?")
