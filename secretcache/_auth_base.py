"""The base class of every auth object of :mod:`secretcache.http`: httpx's ``Auth`` and requests' ``AuthBase``
at once, over whichever of the two libraries is installed, so one object serves both clients; and whether a
request can be sent a second time (a retry after a 401 needs its body again)."""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["AuthBase", "httpx_replayable", "requests_replayable"]


def _bases() -> tuple[type, ...]:
    bases: list[type] = []
    try:
        import httpx
    except ImportError:
        pass
    else:
        bases.append(httpx.Auth)
    try:
        import requests.auth
    except ImportError:
        pass
    else:
        bases.append(requests.auth.AuthBase)
    if not bases:
        raise ImportError(
            "secretcache.http needs httpx or requests: pip install 'secretcache[httpx]' or 'secretcache[requests]'"
        )
    return tuple(bases)


if TYPE_CHECKING:
    import httpx
    import requests
    import requests.auth

    class AuthBase(httpx.Auth, requests.auth.AuthBase):
        pass

else:
    AuthBase = type("AuthBase", _bases(), {})


def httpx_replayable(request: httpx.Request) -> bool:
    """Whether httpx can send ``request`` again: false for a streamed body, which can be sent once."""
    import httpx

    try:
        request.content  # noqa: B018  (raises for a body not read: a stream that can be sent once)
    except httpx.RequestNotRead:
        return False
    return True


def requests_replayable(r: requests.PreparedRequest) -> bool:
    """Whether requests can send ``r`` again: false for a generator or file body."""
    return r.body is None or isinstance(r.body, (bytes, str))
