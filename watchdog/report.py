"""`budget-watchdog report`: spend per day (our samples) and per model (provider activity).

Pure functions from data to rows to text; the CLI feeds them the store and the provider.
The models table comes first: "which models eat the budget" is the first audit question.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

from watchdog.core.words import usd
from watchdog.providers.base import ActivityRow

BAR_WIDTH = 30


@dataclass(frozen=True)
class ModelSpend:
    model: str
    provider: str
    spend: float
    requests: int
    prompt_tokens: int
    completion_tokens: int


def by_model(rows: Sequence[ActivityRow], since: date) -> list[ModelSpend]:
    """Given activity rows, return spend per (model, provider) since `since`, largest first."""
    totals: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0, 0, 0])
    for row in rows:
        if row.date < since:
            continue
        acc = totals[(row.model, row.provider_name)]
        acc[0] += row.spend  # credits and BYOK alike: a BYOK-only row is not $0
        acc[1] += row.requests
        acc[2] += row.prompt_tokens
        acc[3] += row.completion_tokens
    out = [
        ModelSpend(model, provider, acc[0], int(acc[1]), int(acc[2]), int(acc[3]))
        for (model, provider), acc in totals.items()
    ]
    return sorted(out, key=lambda m: (-m.spend, m.model))


def bar(value: float, largest: float, width: int = BAR_WIDTH) -> str:
    """A horizontal bar of `value` relative to `largest`, in eighth-blocks."""
    if largest <= 0 or value <= 0:
        return ""
    eighths = round(value / largest * width * 8)
    full, rest = divmod(eighths, 8)
    return "█" * full + ("" if rest == 0 else " ▏▎▍▌▋▊▉"[rest])


def render(
    days: Sequence[tuple[date, float | None]],
    models: Sequence[ModelSpend] | None,
    *,
    zone: str,
    top: int = 15,
) -> str:
    """The report as a terminal table: models first (when known), then days."""
    lines: list[str] = []
    if models is not None:
        total = sum(m.spend for m in models)
        lines.append(f"Spend by model (provider activity, UTC days): ${total:,.2f} in all")
        if not models:
            lines.append("  no activity in this period")
        width = max([len(m.model) for m in models[:top]] + [5])
        largest = max((m.spend for m in models), default=0.0)
        lines.append(
            f"  {'model':<{width}}  {'provider':<12} {'spend':>10} {'share':>6} {'requests':>9}"
        )
        for m in models[:top]:
            share = m.spend / total if total else 0.0
            lines.append(
                f"  {m.model:<{width}}  {m.provider[:12]:<12} {usd(m.spend):>10} {share:>6.0%} "
                f"{m.requests:>9,}  {bar(m.spend, largest)}"
            )
        if len(models) > top:
            rest = sum(m.spend for m in models[top:])
            lines.append(f"  … {len(models) - top} more models: ${rest:,.2f}")
        lines.append("")
    known = [v for _, v in days if v is not None]
    lines.append(f"Spend by day ({zone}, own samples): ${sum(known):,.2f} in all")
    largest = max(known, default=0.0)
    for day, value in days:
        shown = "no data" if value is None else usd(value)
        lines.append(f"  {day:%a %Y-%m-%d} {shown:>12}  {bar(value or 0.0, largest)}".rstrip())
    return "\n".join(lines) + "\n"


def as_json(
    days: Sequence[tuple[date, float | None]], models: Sequence[ModelSpend] | None, zone: str
) -> dict[str, Any]:
    return {
        "timezone": zone,
        "days": [
            {"date": d.isoformat(), "spend": None if v is None else round(v, 6)} for d, v in days
        ],
        "models": None if models is None else [asdict(m) for m in models],
    }
