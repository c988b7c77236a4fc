"""Moved to :mod:`devtools.moto_helpers` (shared with bench/). Kept so test modules written before the
move still import; import from devtools in new code."""

from devtools.moto_helpers import *  # noqa: F403
from devtools.moto_helpers import __all__, reset_moto_server  # noqa: F401
