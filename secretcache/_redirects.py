"""Redirects: a secret never leaves its origin (used by every auth object of :mod:`secretcache.http`).

httpx and requests copy every header of a request onto the request that follows a redirect, and strip
only ``Authorization`` when the redirect leaves the host (both keep it on an http -> https upgrade of the
same host). A custom header (``X-Api-Key``) would go wherever the server points. The origin is the
scheme, host and port (RFC 6454): any change drops our header, ``Authorization`` included.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx
    import requests

__all__ = ["guard_httpx", "origin", "strip_on_cross_origin_redirect", "url_origin"]

_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(scheme: str, host: str, port: int | None) -> tuple[str, str, int | None]:
    scheme = scheme.lower()
    return scheme, host.lower().strip("[]"), port if port is not None else _DEFAULT_PORTS.get(scheme)


def url_origin(url: str) -> tuple[str, str, int | None] | None:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        return origin(parts.scheme, parts.hostname or "", parts.port)
    except ValueError:  # a port or a host that does not parse: no origin, treated as another one
        return None


def strip_on_cross_origin_redirect(response: requests.Response, header: str) -> None:
    """requests: before requests builds the next hop from ``response.request`` (it copies that request's
    headers), remove ``header`` from it when the redirect's target is another origin."""
    if not response.is_redirect:
        return
    from urllib.parse import urljoin

    request = response.request
    target = urljoin(response.url or str(request.url), response.headers["location"])
    here = url_origin(str(request.url))
    if here is None or url_origin(target) != here:
        request.headers.pop(header, None)


def guard_httpx(request: httpx.Request, header: str, *, is_async: bool) -> None:
    """httpx: redirects are followed inside the client, below the auth flow, with the headers copied (and
    the request's extensions carried over). The ``trace`` extension is the hook httpx's transport (httpcore)
    calls with the wire request just before its headers are written: there the header is removed from a
    request bound for another origin than ``request``'s. A ``trace`` callback already set is still called.
    """
    url = request.url
    home = origin(url.scheme, url.raw_host.decode("ascii", "replace"), url.port)
    name = header.lower().encode("latin-1")
    previous = request.extensions.get("trace")

    def strip(event: str, info: dict[str, Any]) -> None:
        if not event.endswith("send_request_headers.started"):
            return
        wire = info.get("request")
        if wire is None:
            return
        target = bytes(wire.url.target)
        if target[:1] != b"/" and b"://" in target:  # absolute form, through a forwarding proxy
            there = url_origin(target.decode("ascii", "replace"))
        else:
            there = origin(wire.url.scheme.decode("ascii", "replace"), wire.url.host.decode("ascii", "replace"),
                            wire.url.port)
        if there != home:
            wire.headers[:] = [(k, v) for k, v in wire.headers if k.lower() != name]

    trace: Any
    if is_async:
        async def trace(event: str, info: dict[str, Any]) -> None:
            strip(event, info)
            if previous is not None:
                await previous(event, info)
    else:
        def trace(event: str, info: dict[str, Any]) -> None:
            strip(event, info)
            if previous is not None:
                previous(event, info)

    request.extensions = {**request.extensions, "trace": trace}
