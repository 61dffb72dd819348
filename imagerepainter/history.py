"""Moved to :mod:`imagerepainter.loop.history`: this import path keeps working and is the same module
(``imagerepainter.history is imagerepainter.loop.history``, so patching either patches both)."""

import sys
from typing import TYPE_CHECKING

from .loop import history as _moved

if TYPE_CHECKING:
    from .loop.history import *  # noqa: F403

sys.modules[__name__] = _moved
