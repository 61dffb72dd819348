"""Moved to :mod:`imagerepainter.runs.folder`: this import path keeps working and is the same module
(``imagerepainter.run_folder is imagerepainter.runs.folder``, so patching either patches both)."""

import sys
from typing import TYPE_CHECKING

from .runs import folder as _moved

if TYPE_CHECKING:
    from .runs.folder import *  # noqa: F403

sys.modules[__name__] = _moved
