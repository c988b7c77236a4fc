"""The base class of every auth object of :mod:`secretcache.http`: httpx's ``Auth`` and requests' ``AuthBase``
at once, over whichever of the two libraries is installed, so one object serves both clients."""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["AuthBase"]


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
    import requests.auth

    class AuthBase(httpx.Auth, requests.auth.AuthBase):
        pass

else:
    AuthBase = type("AuthBase", _bases(), {})
