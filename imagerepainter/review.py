"""Moved to :mod:`imagerepainter.loop.review`: this import path keeps working and is the same module
(``imagerepainter.review is imagerepainter.loop.review``, so patching either patches both)."""

import sys
from typing import TYPE_CHECKING

from .loop import review as _moved

if TYPE_CHECKING:
    from .loop.review import *  # noqa: F403

sys.modules[__name__] = _moved
