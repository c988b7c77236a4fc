"""The Django side of tests/django: run in a subprocess inside examples/django_app (Django's settings are
process-global), with the example's settings read from the environment the test sets.

``python drill.py probe``: one connect (``ensure_connection``); prints one JSON line: ok, the error's type,
its cause's type and notes, the rotation policy's counters, the cache's backend calls.

``python drill.py load``: eight worker threads each run "requests" in a loop (``close_old_connections()``,
an ORM insert and count, ``close_old_connections()``, as Django's request signals do). Commands on stdin,
one answer line each on stdout:

- ``wait N``: answer ``ok`` once N more connections were opened (Django's ``connection_created``);
- ``pause`` / ``resume N``: park every worker between requests (so the test can kill sessions with none
  in flight); let them go on and answer once N connections were opened since;
- ``stats``: answer one JSON line of counters and the first errors;
- ``stop``: stop the workers; answer one JSON line of counters and the first errors.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
django.setup()

from django.db import close_old_connections, connection, connections  # noqa: E402
from django.db.backends.signals import connection_created  # noqa: E402
from inventory.models import Item  # noqa: E402
from shop.caching import secrets  # noqa: E402

from secretcache.db import auth_stats  # noqa: E402

WORKERS = 8
# A hung run ends with an answer the test fails on (never a timing assertion).
WAIT_LIMIT = float(os.environ.get("DRILL_WAIT_LIMIT", "120"))
SECRET_ID = os.environ["APP_DB_SECRET_ID"]


def counters() -> dict[str, Any]:
    return {"auth": auth_stats(SECRET_ID, cache=secrets)._asdict(), "backend_calls": secrets.stats.backend_calls}


def probe() -> dict[str, Any]:
    try:
        connection.ensure_connection()
        Item.objects.count()
    except Exception as e:
        cause = e.__cause__
        return {"ok": False, "error": f"{type(e).__module__}.{type(e).__qualname__}", "message": str(e),
                "cause": None if cause is None else f"{type(cause).__module__}.{type(cause).__qualname__}",
                "notes": list(getattr(cause, "__notes__", []) or getattr(e, "__notes__", [])), **counters()}
    return {"ok": True, **counters()}


class Load:
    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.ops = self.failures = self.opened = self.parked = 0
        self.errors: list[str] = []
        self.paused = self.stopping = False
        connection_created.connect(self._opened, weak=False)

    def _opened(self, **_: Any) -> None:
        with self.lock:
            self.opened += 1
            self.lock.notify_all()

    def _gate(self) -> bool:
        """Between requests: wait while paused; False when stopping."""
        with self.lock:
            if self.paused:
                self.parked += 1
                self.lock.notify_all()
                while self.paused and not self.stopping:
                    self.lock.wait()
                self.parked -= 1
            return not self.stopping

    def worker(self, n: int) -> None:
        i = 0
        while self._gate():
            i += 1
            try:
                close_old_connections()
                Item.objects.create(name=f"w{n}", quantity=i)
                Item.objects.filter(name=f"w{n}").count()
                ok = True
            except Exception as e:
                ok = False
                with self.lock:
                    if len(self.errors) < 5:
                        self.errors.append(f"{type(e).__name__}: {e}")
            finally:
                close_old_connections()
            with self.lock:
                self.ops += 1
                self.failures += not ok
        connections.close_all()

    def wait_opened(self, target: int) -> str:
        """``ok`` once ``target`` connections were opened in all."""
        with self.lock:
            return "ok" if self.lock.wait_for(lambda: self.opened >= target, timeout=WAIT_LIMIT) else "timeout"

    def run(self) -> dict[str, Any]:
        threads = [threading.Thread(target=self.worker, args=(n,), daemon=True) for n in range(WORKERS)]
        for t in threads:
            t.start()
        print("ready", flush=True)
        for line in sys.stdin:
            command, _, arg = line.strip().partition(" ")
            if command == "wait":
                answer = self.wait_opened(self.opened + int(arg))
            elif command == "pause":
                with self.lock:
                    self.paused = True
                with self.lock:
                    parked = self.lock.wait_for(lambda: self.parked == WORKERS, timeout=WAIT_LIMIT)
                answer = "ok" if parked else "timeout"
            elif command == "resume":  # "resume N": and answer once N connections were opened since
                with self.lock:
                    target = self.opened + int(arg or 0)
                    self.paused = False
                    self.lock.notify_all()
                answer = self.wait_opened(target)
            elif command == "stats":
                with self.lock:
                    answer = json.dumps(self.snapshot())
            elif command == "stop":
                break
            else:
                answer = f"unknown command {command!r}"
            print(answer, flush=True)
        with self.lock:
            self.stopping = True
            self.lock.notify_all()
        for t in threads:
            t.join(WAIT_LIMIT)
        return self.snapshot()

    def snapshot(self) -> dict[str, Any]:
        return {"ops": self.ops, "failures": self.failures, "opened": self.opened, "parked": self.parked,
                "errors": self.errors, **counters()}


if __name__ == "__main__":
    result = probe() if sys.argv[1] == "probe" else Load().run()
    print(json.dumps(result), flush=True)
