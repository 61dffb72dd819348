"""The cost ledger: what each case used, and, with prices, what it cost.

Every case records a :class:`CaseCost` (``CaseResult.cost``): its MLLM calls and tokens by
MLLM (the loop's calls and a judge metric's), the images it rendered, the seconds of its MLLM
calls and of its render steps, and the shared description it started from. Failed cases
record what they spent before failing (it was paid for); cases skipped by a circuit breaker
spent nothing and record no ledger. Stores written before the ledger existed still load
(``cost`` is ``None``) and count as unknown.

**The shared description.** The MLLM describes each reference once and every model and mode
of that reference starts from the same description (:mod:`~imagerepainter.bench.describer`).
Its usage is kept whole on each case that used it (:attr:`CaseCost.description`, with an
``id`` naming that description), and the reports split it **evenly over the cases of the
report that used it**: with 2 models and 2 modes, each case carries a quarter. So the
cases' dollars add up to the evaluation's total (each description counted once), and
:attr:`CostSection.descriptions` reports the describing separately as well.

**T2I seconds** are the wall time of the case's render steps (the loop's ``generate``
node). When cases share a device (``device_slots``, merged batches), a render step also waits
for the device and a merged batch is counted by each case in it, so per-GPU-hour dollars are
an upper bound there; with ``--max-concurrency 1`` they are the device time itself.

**Dollars** exist only with prices (:mod:`~imagerepainter.bench.prices`): a case costs its
tokens times its MLLM's prices, plus its images times the model's price per image (or its T2I
seconds times the price per GPU-hour), plus its share of the description. Without prices no
report shows a dollar figure: the dollar fields are left out of the JSON.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, model_serializer

if TYPE_CHECKING:
    from .prices import Prices
    from .records import CaseResult

__all__ = [
    "CaseCost",
    "CostGain",
    "CostRow",
    "CostSection",
    "DescriptionCost",
    "MLLMUsage",
    "case_cost",
    "case_dollars",
    "cost_section",
    "description_cost",
    "description_shares",
]


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Priced(_Record):
    """A record whose ``None`` dollar fields are left out when written: no dollar figure without prices."""

    @model_serializer(mode="wrap")
    def _without_unpriced(self, handler: Any) -> Any:
        data = handler(self)
        return {k: v for k, v in data.items() if not (v is None and "dollar" in k)}


class MLLMUsage(_Record):
    """One MLLM's calls, tokens and seconds."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    seconds: float = 0.0
    """Summed over the calls (concurrent calls overlap, so this can exceed the wall time)."""


class DescriptionCost(MLLMUsage):
    """The whole usage of the shared description a case started from (split in the reports)."""

    id: str
    """Names the description: every case that started from it carries the same id."""
    mllm: str
    """The MLLM that described (a key of the prices' ``[mllm]`` table)."""


class CaseCost(_Record):
    """What one case used (``CaseResult.cost``)."""

    mllm: dict[str, MLLMUsage] = {}
    """The case's own MLLM calls (the loop's and a judge metric's), by MLLM."""
    images: int = 0
    """Images rendered."""
    t2i_seconds: float = 0.0
    """Wall time of the case's render steps (see the module docstring)."""
    description: DescriptionCost | None = None
    """The shared description (whole); ``None`` when the case never got one."""

    @property
    def mllm_seconds(self) -> float:
        return sum(u.seconds for u in self.mllm.values())


def description_cost(description: Any, mllm: str) -> DescriptionCost:
    """The ledger entry of a :class:`~imagerepainter.results.Description` described by ``mllm``."""
    usage = dict(description.usage or {})
    identity = description.model_dump_json(include={"prompt", "understanding", "prompt_version"})
    return DescriptionCost(
        id=hashlib.sha256(f"{mllm}\n{identity}".encode()).hexdigest()[:16],
        mllm=mllm,
        calls=int(usage.get("mllm_calls", 0)),
        input_tokens=int(usage.get("input_tokens", 0)),
        output_tokens=int(usage.get("output_tokens", 0)),
        seconds=round(sum(float(c.get("seconds", 0.0)) for c in description.calls or []), 6),
    )


def case_cost(
    run: Any, *, mllm: str, description: DescriptionCost | None = None, judged: Sequence[Mapping[str, Any]] = ()
) -> CaseCost:
    """The ledger of a case from its run (a result or a failed run's partial result; ``None``: nothing ran).

    ``judged`` are the details of the metrics that call the MLLM (the judge's ratings, the element
    check's ``calls``): calls of this case too.
    """
    usage = dict(getattr(run, "usage", None) or {})
    calls = getattr(run, "calls", None) or []
    timings = getattr(run, "timings", None) or {}
    own = MLLMUsage(
        calls=int(usage.get("mllm_calls", 0)) + sum(_metric_calls(d) for d in judged),
        input_tokens=int(usage.get("input_tokens", 0)) + sum(int(d["input_tokens"]) for d in judged),
        output_tokens=int(usage.get("output_tokens", 0)) + sum(int(d["output_tokens"]) for d in judged),
        seconds=round(sum(float(c.get("seconds", 0.0)) for c in calls), 6),
    )
    return CaseCost(
        mllm={mllm: own} if own.calls or own.input_tokens or own.output_tokens else {},
        images=int(usage.get("images", 0)),
        t2i_seconds=round(float(timings.get("generate", 0.0)), 6),
        description=description,
    )


def description_shares(cases: Iterable[CaseResult]) -> Counter[str]:
    """How many of ``cases`` started from each description: the divisor of its even split."""
    return Counter(c.cost.description.id for c in cases if c.cost is not None and c.cost.description is not None)


def mllm_dollars(prices: Prices, usage: Mapping[str, MLLMUsage]) -> float:
    """The price of the tokens of ``usage`` (by MLLM)."""
    return sum(
        prices.mllm_dollars(name, input_tokens=u.input_tokens, output_tokens=u.output_tokens)
        for name, u in usage.items()
    )


def case_dollars(case: CaseResult, prices: Prices, shares: Mapping[str, int]) -> tuple[float, float]:
    """The case's own dollars (tokens and images) and its share of its description's, with ``shares``
    from :func:`description_shares` over the cases being reported."""
    cost = case.cost
    if cost is None:
        return 0.0, 0.0
    own = mllm_dollars(prices, cost.mllm) + prices.t2i_dollars(case.model, images=cost.images, seconds=cost.t2i_seconds)
    desc = cost.description
    if desc is None:
        return own, 0.0
    whole = mllm_dollars(prices, {desc.mllm: desc})
    return own, whole / max(1, shares.get(desc.id, 1))


# ----------------------------------------------------------------------------- the leaderboard's section


class CostRow(_Priced):
    """What one model in one mode used, per reference (per case: one reference each), the case's
    share of its description included (calls, tokens, seconds and dollars alike)."""

    model: str
    mode: str
    cases: int
    """Cases with a ledger (finished or failed: both were paid for)."""
    mllm_calls: float
    input_tokens: float
    output_tokens: float
    images: float
    mllm_seconds: float
    t2i_seconds: float
    seconds: float
    """Wall time of the case (the description's time not included: it ran before, once for all)."""
    dollars: float | None = None
    """Per reference, the description's share included; only with prices."""
    description_dollars: float | None = None
    """The part of :attr:`dollars` that is the description's share."""
    total_dollars: float | None = None
    """Every case of the row together."""


class CostGain(_Priced):
    """What ``repaint`` bought over ``single`` for one model: the gain per extra dollar and minute."""

    model: str
    gain: float | None
    """The leaderboard's gain (mean of repaint minus single on the primary metric, all references)."""
    extra_minutes: float
    """Mean minutes per reference of repaint minus single."""
    gain_per_minute: float | None
    extra_dollars: float | None = None
    gain_per_dollar: float | None = None


class CostSection(_Priced):
    """The leaderboard's cost section (``Leaderboard.costs``)."""

    priced: bool
    currency: str | None = None
    rows: list[CostRow]
    gains: list[CostGain]
    descriptions: MLLMUsage
    """Every description the reported cases used, each counted once."""
    description_count: int
    description_dollars: float | None = None
    total_dollars: float | None = None
    """Every case's dollars together: the cases' own and every description once."""
    unknown: int = 0
    """Finished or failed cases without a ledger (recorded before it existed): not counted."""
    budget_note: str | None = None
    """Set when ``budget`` stopped the evaluation before every case ran: how much it spent and how to go on."""


def _row(model: str, mode: str, cases: list[CaseResult], prices: Prices | None, shares: Counter[str]) -> CostRow:
    n = len(cases)
    costs = [c.cost for c in cases if c.cost is not None]

    def mean(values: Iterable[float]) -> float:
        return sum(values) / n

    def used(field: str) -> float:
        own = mean(getattr(u, field) for c in costs for u in c.mllm.values())
        return own + mean(getattr(c.description, field) / shares[c.description.id] for c in costs if c.description)

    fields: dict[str, Any] = {
        "model": model,
        "mode": mode,
        "cases": n,
        "mllm_calls": used("calls"),
        "input_tokens": used("input_tokens"),
        "output_tokens": used("output_tokens"),
        "images": mean(c.images for c in costs),
        "mllm_seconds": used("seconds"),
        "t2i_seconds": mean(c.t2i_seconds for c in costs),
        "seconds": mean(c.seconds for c in cases),
    }
    if prices is not None:
        split = [case_dollars(c, prices, shares) for c in cases]
        total = sum(own + share for own, share in split)
        fields |= {"dollars": total / n, "description_dollars": mean(s for _, s in split), "total_dollars": total}
    return CostRow(**fields)


def _gains(rows: Sequence[CostRow], board_gains: Sequence[Any]) -> list[CostGain]:
    by_key = {(r.model, r.mode): r for r in rows}
    out = []
    for gain in board_gains:
        single, repaint = by_key.get((gain.model, "single")), by_key.get((gain.model, "repaint"))
        if str(gain.group) != "all" or single is None or repaint is None:
            continue
        minutes = (repaint.seconds - single.seconds) / 60
        fields: dict[str, Any] = {
            "model": gain.model,
            "gain": gain.gain,
            "extra_minutes": minutes,
            "gain_per_minute": _ratio(gain.gain, minutes),
        }
        if repaint.dollars is not None and single.dollars is not None:
            extra = repaint.dollars - single.dollars
            fields |= {"extra_dollars": extra, "gain_per_dollar": _ratio(gain.gain, extra)}
        out.append(CostGain(**fields))
    return out


def _ratio(gain: float | None, extra: float) -> float | None:
    return None if gain is None or extra <= 0 else gain / extra


def cost_section(
    cases: Iterable[CaseResult],
    *,
    gains: Sequence[Any] = (),
    prices: Prices | None = None,
    budget_stop: Mapping[str, float] | None = None,
) -> CostSection | None:
    """The cost section of ``cases`` (``None`` when none has a ledger); ``gains`` are the leaderboard's;
    ``budget_stop`` is what :func:`~imagerepainter.bench.evaluate` recorded when its budget stopped it."""
    unique = list({c.case_id: c for c in cases}.values())
    spent = [c for c in unique if c.status != "skipped"]
    ledgered = [c for c in spent if c.cost is not None]
    if not ledgered:
        return None
    if prices is not None:  # every model and MLLM of the cases priced, or a clear error before any sum
        mllms = {name for c in ledgered if c.cost for name in c.cost.mllm}
        mllms |= {c.cost.description.mllm for c in ledgered if c.cost and c.cost.description}
        prices.check_covers(mllm=sorted(mllms), models=sorted({c.model for c in ledgered}))
    shares = description_shares(ledgered)
    groups: dict[tuple[str, str], list[CaseResult]] = defaultdict(list)
    for case in ledgered:
        groups[(case.model, case.mode)].append(case)
    order = sorted(
        groups, key=lambda k: (k[0], ("single", "repaint").index(k[1]) if k[1] in ("single", "repaint") else 2)
    )
    rows = [_row(model, mode, groups[(model, mode)], prices, shares) for model, mode in order]
    descriptions = {c.cost.description.id: c.cost.description for c in ledgered if c.cost and c.cost.description}
    fields: dict[str, Any] = {
        "priced": prices is not None,
        "rows": rows,
        "gains": _gains(rows, gains),
        "descriptions": MLLMUsage(
            calls=sum(d.calls for d in descriptions.values()),
            input_tokens=sum(d.input_tokens for d in descriptions.values()),
            output_tokens=sum(d.output_tokens for d in descriptions.values()),
            seconds=sum(d.seconds for d in descriptions.values()),
        ),
        "description_count": len(descriptions),
        "unknown": len(spent) - len(ledgered),
        "budget_note": _budget_note(budget_stop, prices),
    }
    if prices is not None:
        fields |= {
            "currency": prices.currency,
            "description_dollars": sum(mllm_dollars(prices, {d.mllm: d}) for d in descriptions.values()),
            "total_dollars": sum(r.total_dollars or 0.0 for r in rows),
        }
    return CostSection(**fields)


def _budget_note(stop: Mapping[str, float] | None, prices: Prices | None) -> str | None:
    """What the reports say when a budget stopped the evaluation (dollars only with prices)."""
    if not stop:
        return None
    left = int(stop.get("not_started", 0))
    spent = f": {stop['spent']:.4g} of {stop['limit']:.4g} {prices.currency} spent" if prices is not None else ""
    return (
        f"The budget stopped the evaluation{spent}; {left} case{'s' if left != 1 else ''} did not start. "
        "Run the same eval command again to compute them."
    )


def _metric_calls(details: Mapping[str, Any]) -> int:
    """MLLM calls a metric's details record: the element check's ``calls``, or the judge's ratings."""
    return int(details["calls"]) if "calls" in details else len(details["ratings"])
