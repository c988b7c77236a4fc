"""AsyncSecretCache: the same cache for asyncio code, never blocking the event loop.

It runs the same policy object as :class:`~secretcache.SecretCache` (freshness, backoff,
single-flight); only the waiting differs: a fetch runs in a worker thread and callers await it.
Hits are served inline, without leaving the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping
from time import monotonic
from types import TracebackType
from typing import Any

from ._core import Flight, Request
from ._face import _Face, binary_of, id_list, is_template, string_of
from .errors import InvalidReferenceError, SecretCacheError
from .model import SecretRef, SecretValue, find_references

__all__ = ["AsyncSecretCache"]


async def _wait(future: Flight) -> SecretValue | SecretCacheError:
    """Await a shared fetch without letting this caller's cancellation cancel it for the others."""
    if future.done():
        return future.result()
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[SecretValue | SecretCacheError] = loop.create_future()

    def deliver(done: Flight) -> None:
        def settle() -> None:
            if not waiter.done():
                waiter.set_result(done.result())

        # RuntimeError: this waiter's event loop has closed, nobody is left to wake there. Raising
        # would stop the flight from waking the waiters registered after this one (on other loops).
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle)

    future.add_done_callback(deliver)
    return await waiter


class AsyncSecretCache(_Face):
    """The asyncio twin of :class:`~secretcache.SecretCache`: same arguments, methods as coroutines."""

    _repr_name = "AsyncSecretCache"

    async def _get(self, request: Request, *, force: bool = False) -> SecretValue:
        core = self._core
        started = core.begin(request, force=force, may_block=False)  # never blocks: at most a dict write under a lock
        if isinstance(started, SecretValue):
            return started
        flight, leader = started
        core.note_miss(request)
        if leader:
            asyncio.get_running_loop().run_in_executor(None, core.run, request, flight)
        return core.settle(request, await _wait(flight), allow_stale=not force)

    async def get_secret_value(
        self, secret_id: str, *, version_id: str | None = None, version_stage: str | None = None
    ) -> SecretValue:
        """The cached :class:`SecretValue` for ``secret_id`` at a stage (default AWSCURRENT) or VersionId."""
        if version_id is None and version_stage is None:
            try:
                entry = self._fast.get(secret_id)
            except TypeError:
                entry = None
            if entry is not None and (now := monotonic()) < entry.fresh_until:
                entry.last_read = now
                self._hits += 1
                return entry.value  # type: ignore[no-any-return]
        return await self._get(self._core.request(secret_id, version_id, version_stage))

    async def get_secret_string(
        self, secret_id: str, *, version_id: str | None = None, version_stage: str | None = None
    ) -> str:
        """The SecretString; :class:`SecretFormatError` for a binary secret."""
        return string_of(await self.get_secret_value(secret_id, version_id=version_id, version_stage=version_stage))

    async def get_secret_binary(
        self, secret_id: str, *, version_id: str | None = None, version_stage: str | None = None
    ) -> bytes:
        """The SecretBinary; :class:`SecretFormatError` for a string secret."""
        return binary_of(await self.get_secret_value(secret_id, version_id=version_id, version_stage=version_stage))

    async def get_secret_json(
        self, secret_id: str, *, version_id: str | None = None, version_stage: str | None = None
    ) -> Mapping[str, Any]:
        """The value parsed as a JSON object: your own copy, parsed once per version."""
        value = await self.get_secret_value(secret_id, version_id=version_id, version_stage=version_stage)
        return value.json()

    async def get(self, reference: str) -> str:
        """Resolve any reference form, as :meth:`SecretCache.get`."""
        try:
            ref = SecretRef.parse(reference)
        except InvalidReferenceError:
            if isinstance(reference, str) and is_template(reference):
                from .model import render_template

                resolved = {str(r): await self.resolve(r) for r in find_references(reference)}
                return render_template(reference, lambda r: resolved[str(r)])
            raise
        return await self.resolve(ref)

    async def resolve(self, ref: SecretRef) -> str:
        """The string a parsed reference points at."""
        value = await self.get_secret_value(ref.secret_id, version_id=ref.version_id, version_stage=ref.version_stage)
        return string_of(value) if ref.json_key is None else value.field(ref.json_key)

    async def prefetch(self, secret_ids: Iterable[str]) -> dict[str, SecretCacheError]:
        """Warm the cache with BatchGetSecretValue (in a worker thread); return the failures by id."""
        return await asyncio.to_thread(self._core.prefetch, id_list(secret_ids))

    async def refresh(self, secret_id: str, *, version_stage: str | None = None) -> SecretValue:
        """Fetch now, ignoring ttl and backoff; never sleeps. Concurrent calls share one fetch."""
        return await self._get(self._core.request(secret_id, None, version_stage), force=True)

    async def close(self) -> None:
        """Stop background refresh work."""
        self._core.close()

    async def __aenter__(self) -> AsyncSecretCache:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
