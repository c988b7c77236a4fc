"""Many processes, one cache: N client processes reading 5 secrets through one ``serve`` for several
ttls make about 5 GetSecretValue calls per ttl (plus one per refreshNow), not N x 5."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import pytest

from devtools.faults import FaultProxy
from tests.fixtures.fix_canary import canary_value
from tests.fixtures.fix_serve import unique
from tests.fixtures.serving import ROOT, TOKEN, serve_env, serving

pytestmark = pytest.mark.integration

CLIENTS, SECRETS, TTL, DURATION = 8, 5, 1.5, 3.0

_CLIENT = """
import json, sys, time
from secretcache.backends.agent import AgentBackend
url, names, duration, refresh, token = sys.argv[1], sys.argv[2].split(","), float(sys.argv[3]), \\
    sys.argv[4] == "1", sys.argv[5]
agent = AgentBackend(url, token=token)
reads, end = 0, time.monotonic() + duration
while time.monotonic() < end:
    for name in names:
        assert agent.get_secret_value(name).secret_string
        reads += 1
    time.sleep(0.02)
if refresh:
    import urllib.request
    request = urllib.request.Request(url + "/secretsmanager/get?refreshNow=true&secretId=" + names[0],
                                     headers={"X-Aws-Parameters-Secrets-Token": token})
    assert urllib.request.urlopen(request, timeout=10).status == 200
print(json.dumps({"reads": reads}))
"""


def test_many_processes_share_one_fetch_per_secret_per_ttl(proxy: FaultProxy, admin: Any) -> None:
    names = [unique("fleet") for _ in range(SECRETS)]
    for name in names:
        admin.create_secret(Name=name, SecretString=canary_value("fleet"))
    with serving(proxy.url, "--ttl", str(TTL)) as server:
        proxy.reset_counts()
        started = time.monotonic()
        clients = [
            subprocess.Popen(  # nosec B603
                [sys.executable, "-c", _CLIENT, server.url, ",".join(names), str(DURATION),
                 "1" if i == 0 else "0", TOKEN],
                env=serve_env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
            for i in range(CLIENTS)
        ]
        outputs = [client.communicate(timeout=60) for client in clients]
        elapsed = time.monotonic() - started
        calls = sum(proxy.count("GetSecretValue", name) for name in names)
        print(f"{CLIENTS} clients, {elapsed:.1f} s: {calls} GetSecretValue calls")
    for client, (out, err) in zip(clients, outputs, strict=True):
        assert client.returncode == 0, err[-2000:]
        assert json.loads(out)["reads"] > 0
    # One fetch per secret per (jittered) ttl while reads went on, plus the one refreshNow; each
    # process alone would have fetched every secret at least once: CLIENTS x SECRETS.
    per_secret_bound = elapsed / (TTL * 0.9) + 2
    assert SECRETS <= calls <= SECRETS * per_secret_bound + 1, (calls, elapsed)
    assert calls < CLIENTS * SECRETS, calls
