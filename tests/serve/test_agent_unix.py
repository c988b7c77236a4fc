"""AgentBackend over ``secretcache serve --unix-socket``: a real serve process, read through the socket
(``unix_socket=PATH`` and the ``unix:///PATH`` endpoint), forced reads included; the socket's mode."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from secretcache import SecretCache
from secretcache.backends import AgentBackend
from secretcache.errors import SecretNotFoundError, SecretUnavailableError
from tests.fixtures.fix_canary import canary_value
from tests.fixtures.fix_serve import unique
from tests.fixtures.serving import TOKEN, Serve, serve_env

pytestmark = pytest.mark.integration


def test_agent_backend_reads_through_serves_unix_socket(moto_url: str, admin: Any, tmp_path: Path) -> None:
    name, old, new = unique("unix"), canary_value("old"), canary_value("new")
    admin.create_secret(Name=name, SecretString=old)
    path = str(tmp_path / "sc.sock")
    server = Serve(["--unix-socket", path, "--unix-socket-mode", "660", "--endpoint-url", moto_url],
                   serve_env({"AWS_TOKEN": TOKEN}))
    try:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
        by_keyword = AgentBackend(unix_socket=path, token=TOKEN)
        by_url = AgentBackend(f"unix://{path}", token=TOKEN)
        assert by_url.unix_socket == path
        assert by_keyword.get_secret_value(name).secret_string == old
        with SecretCache(by_url) as cache:
            assert cache.get_secret_string(name) == old
            admin.put_secret_value(SecretId=name, SecretString=new)
            assert cache.refresh(name).secret_string == new  # refreshNow=true through the socket
        with pytest.raises(SecretNotFoundError):
            by_keyword.get_secret_value(unique("unix-missing"))
        assert repr(by_keyword) == f"AgentBackend(endpoint='unix://{path}')"
    finally:
        assert server.stop() == 0
    with pytest.raises(SecretUnavailableError, match="unreachable"):  # the socket is gone with serve
        AgentBackend(unix_socket=path, token=TOKEN).get_secret_value(name)


def test_unix_endpoint_mistakes_are_named() -> None:
    with pytest.raises(ValueError, match="not both"):
        AgentBackend("unix:///a.sock", unix_socket="/b.sock")
    with pytest.raises(ValueError, match="names no socket path"):
        AgentBackend("unix://")
    with pytest.raises(ValueError, match="unix:///PATH"):
        AgentBackend("ftp://x")
