"""Human agreement: collect people's judgments on regenerations and measure how each metric agrees.

A *judgment* answers one two-alternative forced choice (2AFC): shown a reference and two
images of it, which is closer to the reference? (``"a"``, ``"b"``, or ``"tie"`` for "can't
tell"). Judgments come from the judging page (``imagerepainter judge EVAL_DIR``), from a CSV or
JSONL file made elsewhere (a crowdsourcing platform), or from a simulated rater in tests, and
all land in one place: :class:`~imagerepainter.human.judgments.JudgmentStore`, the
``judgments.sqlite`` file of an evaluation folder.

Modules:

* :mod:`~imagerepainter.human.judgments` — the :class:`Judgment` record, its store, CSV/JSONL
  import and export.
* :mod:`~imagerepainter.human.agreement` — 2AFC agreement of a metric with the raters, the
  human ceiling (inter- and intra-rater agreement, Krippendorff's alpha), bootstrap over references;
* :mod:`~imagerepainter.human.ranking` — Bradley–Terry strengths and Kendall's tau with a metric;
* :mod:`~imagerepainter.human.sources` — judgments joined with metrics (evaluation folder, triplet file);
* :mod:`~imagerepainter.human.blend` — a metric blend fitted to judgments, a ``blend:PATH`` scorer;
* :mod:`~imagerepainter.human.report` — ``agreement.json`` / ``.md`` / ``.html``
  (``imagerepainter agreement``).
"""

from __future__ import annotations

from .judgments import (
    JUDGMENTS_NAME,
    Choice,
    Judgment,
    JudgmentStore,
    export_judgments,
    read_judgments_file,
)

__all__ = [
    "JUDGMENTS_NAME",
    "Choice",
    "Judgment",
    "JudgmentStore",
    "export_judgments",
    "read_judgments_file",
]
