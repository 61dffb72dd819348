"""Moved to :mod:`imagerepainter.loop.convergence`: this import path keeps working and is the same module
(``imagerepainter.convergence is imagerepainter.loop.convergence``, so patching either patches both)."""

import sys
from typing import TYPE_CHECKING

from .loop import convergence as _moved

if TYPE_CHECKING:
    from .loop.convergence import *  # noqa: F403

sys.modules[__name__] = _moved
