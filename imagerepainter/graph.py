"""Moved to :mod:`imagerepainter.loop.graph`: this import path keeps working and is the same module
(``imagerepainter.graph is imagerepainter.loop.graph``, so patching either patches both)."""

import sys
from typing import TYPE_CHECKING

from .loop import graph as _moved

if TYPE_CHECKING:
    from .loop.graph import *  # noqa: F403

sys.modules[__name__] = _moved
