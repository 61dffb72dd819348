"""Moved to :mod:`imagerepainter.runs.record`: this import path keeps working and is the same module
(``imagerepainter.run_record is imagerepainter.runs.record``, so patching either patches both)."""

import sys
from typing import TYPE_CHECKING

from .runs import record as _moved

if TYPE_CHECKING:
    from .runs.record import *  # noqa: F403

sys.modules[__name__] = _moved
