"""``secretcache demo``: the showcase, and the throwaway local databases it and the integration tests use.

Not part of the library: nothing in the core imports this package; ``secretcache demo`` (``cli.py``) loads it
on demand. It needs ``pip install 'secretcache[demo]'`` (moto for the in-process Secrets Manager, the
database drivers) and, for the default run, the PostgreSQL server binaries.

- :mod:`.app`: the command (arguments, worker threads, the rotator, the exit code).
- :mod:`.support`: the demo's database, its in-process Secrets Manager, counters and display.
- :mod:`.localdb`: private PostgreSQL/MariaDB servers with real password authentication (also the
  integration tests' server fixtures, ``tests/fixtures/fix_servers.py``).

Importing this package imports nothing but itself: :func:`main` loads the application when called.
"""

from __future__ import annotations

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run ``secretcache demo`` with ``argv``; 0 when every query succeeded and every rotation completed,
    1 otherwise, 2 on bad usage."""
    from .app import main as run

    return run(argv)
