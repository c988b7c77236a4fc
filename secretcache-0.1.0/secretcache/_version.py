"""The package version, in a module of its own so that the backends and the CLI read it without importing
the package root (``secretcache/__init__.py`` re-exports it)."""

__version__ = "0.1.0"
