"""Moved to :mod:`imagerepainter.loop.state`: this import path keeps working and is the same module
(``imagerepainter.state is imagerepainter.loop.state``, so patching either patches both)."""

import sys
from typing import TYPE_CHECKING

from .loop import state as _moved

if TYPE_CHECKING:
    from .loop.state import *  # noqa: F403

sys.modules[__name__] = _moved
