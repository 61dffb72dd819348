"""How many pairs and raters a human-agreement study needs: the width of the 95% interval, by simulation.

A metric that picks the truly closer image on 85% of pairs is compared with raters who err on
15% of judgments (and say "can't tell" on 5%); each reference has 4 judged pairs. For each
design (pairs, raters) the study is simulated ``--trials`` times with the report's own
statistics (:func:`imagerepainter.human.agreement.metric_agreement`, bootstrap over references)
and the median width of the interval is printed, for the agreement with each judgment and
with the raters' majority. The table in docs/human-agreement.md comes from this script:

    python benchmarks/agreement_design.py --trials 20
"""

from __future__ import annotations

import argparse
import random
import statistics

from imagerepainter.human.agreement import ScoredJudgment, metric_agreement
from imagerepainter.human.judgments import Judgment

PAIRS_PER_REFERENCE = 4


def simulate(pairs: int, raters: int, *, seed: int, metric_accuracy: float = 0.85, error: float = 0.15) -> list:
    rng = random.Random(seed)
    rows = []
    for p in range(pairs):
        right = rng.random() < metric_accuracy  # does the metric prefer the truly closer image "x"?
        values = (1.0, 0.0) if right else (0.0, 1.0)
        for r in range(raters):
            u = rng.random()
            choice = "tie" if u < 0.05 else ("a" if rng.random() >= error else "b")
            j = Judgment(
                reference_id=f"ref{p // PAIRS_PER_REFERENCE}",
                image_a=f"x{p}",
                image_b=f"y{p}",
                choice=choice,
                rater=f"r{r}",
            )
            rows.append(ScoredJudgment(j, {"m": values}, {"m": True}))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    args = parser.parse_args()
    print("| pairs | references | raters | judgments | interval width, each judgment | width, raters' majority |")
    print("|---|---|---|---|---|---|")
    for pairs in (60, 120, 240, 480):
        for raters in (1, 3, 5):
            widths, majority = [], []
            for trial in range(args.trials):
                rows = simulate(pairs, raters, seed=trial)
                est = metric_agreement(rows, "m", resamples=1000, seed=trial)
                maj = metric_agreement(rows, "m", majority=True, resamples=1000, seed=trial)
                widths.append(100 * (est.high - est.low))
                majority.append(100 * (maj.high - maj.low))
            print(
                f"| {pairs} | {pairs // PAIRS_PER_REFERENCE} | {raters} | {pairs * raters} | "
                f"±{statistics.median(widths) / 2:.1f} pts | ±{statistics.median(majority) / 2:.1f} pts |"
            )


if __name__ == "__main__":
    main()
