"""Moved to :mod:`devtools.faults` (shared with bench/). Kept so test modules written before the move
still import; import from devtools in new code."""

from devtools.faults import *  # noqa: F403
from devtools.faults import __all__  # noqa: F401
