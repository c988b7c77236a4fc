"""secretcache.redis over a mounted secret file: after the ACL password changes and the file is swapped, a new
connection's refused AUTH re-reads the file (a forced read) and logs in; the cache's ttl outlives the test."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
import redis

from devtools.atomic_writer import AtomicWriter
from devtools.canary import canary_value
from secretcache import SecretCache
from secretcache.backends import FileBackend
from secretcache.config import CacheConfig
from secretcache.credentials import auth_stats
from secretcache.redis import client

pytestmark = pytest.mark.integration





def test_a_new_connection_after_the_swap_logs_in_with_the_new_password(
    redis_admin: redis.Redis, tmp_path: Path
) -> None:
    username = f"sc-test-{secrets.token_hex(4)}"
    kwargs = redis_admin.connection_pool.connection_kwargs
    writer = AtomicWriter(tmp_path)

    def mount(password: str) -> None:
        writer.write({f"redis_{username}": json.dumps({"username": username, "password": password,
                                                       "host": kwargs["host"], "port": kwargs["port"]})})

    first = canary_value("redis")
    redis_admin.execute_command("ACL", "SETUSER", username, "on", "resetpass", f">{first}", "~*", "+@all")
    mount(first)
    cache = SecretCache(FileBackend(tmp_path, check_interval=3600), config=CacheConfig(ttl=3600))
    app = client(f"redis/{username}", cache=cache)
    try:
        assert app.ping()
        for _ in range(3):
            password = canary_value("redis")
            redis_admin.execute_command("ACL", "SETUSER", username, "resetpass", f">{password}")  # the old one dies
            mount(password)  # the CSI driver's swap
            app.connection_pool.disconnect()  # the next command needs a new connection, so a new AUTH
            assert app.set("k", "v")
            assert app.ping()
        stats = auth_stats(f"redis/{username}", cache=cache)
        assert stats.auth_failures == 3  # each new AUTH with the dead password was refused once...
        assert stats.refreshes == 3  # ...and re-read the file, whatever the backend's check_interval
        assert stats.gave_up == 0
    finally:
        app.close()
        cache.close()
        redis_admin.execute_command("ACL", "DELUSER", username)
