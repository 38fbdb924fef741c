"""`budget-watchdog report`: spend per day (our samples) and per model (provider activity);
and the terminal form of `budget-watchdog audit` (watchdog.core.audit computes it).

Pure functions from data to rows to text; the CLI feeds them the store and the provider.
The models table comes first: "which models eat the budget" is the first audit question.
"""

from __future__ import annotations

import textwrap
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Any

from watchdog.core import burn, keys
from watchdog.core.audit import AuditResult
from watchdog.core.model import BudgetPolicy, KeySample, KnownKey
from watchdog.core.words import duration, usd
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


# -- per key (budget-watchdog report --by key) ---------------------------------------------


@dataclass(frozen=True)
class KeySpend:
    """One key's spend as `report --by key` shows it."""

    name: str
    hash: str
    workspace: str | None
    spent_today: float | None
    spent_month: float | None
    spent_days: float | None  # over the report's days
    daily_limit: float | None
    monthly_limit: float | None
    provider_limit: float | None
    provider_reset: str | None
    deleted: bool = False


def by_key(
    known: Mapping[str, KnownKey],
    histories: Mapping[str, Sequence[KeySample]],
    now: datetime,
    days: int,
    budget: BudgetPolicy,
) -> list[KeySpend]:
    """Each followed key's spend today and this month (the budget's zone, as the daemon
    measures it: never below the provider's counters) and over the last `days` days,
    largest month first."""
    out = []
    names = keys.unique_names((h, k.name) for h, k in known.items() if k.deleted_at is None)
    for key_hash, key in known.items():
        samples = histories.get(key_hash, [])
        history = burn.History.from_samples(s.to_sample() for s in samples)
        metrics = burn.measure(history, now, budget.tz) if samples else None
        window = history.window(now - timedelta(days=days), now) if samples else None
        entry = budget.key_budget(key.name, key.label, key_hash)
        latest = samples[-1] if samples else None
        out.append(
            KeySpend(
                name=names.get(key_hash, key.name),
                hash=key_hash,
                workspace=key.workspace_id,
                spent_today=metrics.spent_today if metrics else None,
                spent_month=metrics.spent_month if metrics else None,
                # Never below today's (which the provider's counters bound): the window
                # holds today; our own samples alone may have missed some of it.
                spent_days=_at_least(window[0] if window else None, metrics, days),
                daily_limit=entry.daily_limit if entry else None,
                monthly_limit=entry.monthly_limit if entry else None,
                provider_limit=latest.key_limit if latest else None,
                provider_reset=latest.limit_reset if latest else None,
                deleted=key.deleted_at is not None,
            )
        )
    return sorted(out, key=lambda k: (k.deleted, -(k.spent_month or 0.0), k.name))


def _at_least(own: float | None, m: burn.Metrics | None, days: int) -> float | None:
    floors = [] if m is None else [m.spent_today]
    if m is not None and m.now - timedelta(days=days) <= m.month_start:  # and this month
        floors.append(m.spent_month)
    known = [v for v in (own, *floors) if v is not None]
    return max(known) if known else None


def render_keys(rows: Sequence[KeySpend], *, zone: str, days: int) -> str:
    """`report --by key` as a terminal table, bars as the account's."""
    if not rows:
        return (
            "No keys followed yet: per-key spend needs the daemon to run with a management "
            "key (provider.management_key_file).\n"
        )
    total = sum(k.spent_month or 0.0 for k in rows)
    width = min(40, max([len(k.name) + (10 if k.deleted else 0) for k in rows] + [3]))
    largest = max((k.spent_month or 0.0 for k in rows), default=0.0)
    lines = [
        f"Spend by key ({zone}, own samples, never below the provider's counters): "
        f"${total:,.2f} this month",
        f"  {'key':<{width}}  {'today':>18}  {'this month':>20}  {f'{days} days':>10}  "
        f"{'provider cap':>16}",
    ]
    for k in rows:
        cap = "none" if k.provider_limit is None else usd(k.provider_limit)
        if k.provider_limit is not None:
            cap += f" {k.provider_reset or 'total'}"
        name = f"{k.name} (deleted)" if k.deleted else k.name
        name = name if len(name) <= width else name[: width - 1] + "…"
        lines.append(
            f"  {name:<{width}}  {_against(k.spent_today, k.daily_limit):>18}  "
            f"{_against(k.spent_month, k.monthly_limit):>20}  {usd(k.spent_days):>10}  "
            f"{cap:>16}  {bar(k.spent_month or 0.0, largest)}".rstrip()
        )
    return "\n".join(lines) + "\n"


def keys_json(rows: Sequence[KeySpend], zone: str, days: int) -> dict[str, Any]:
    return {"timezone": zone, "days": days, "keys": [asdict(k) for k in rows]}


def _against(spent: float | None, limit: float | None) -> str:
    return usd(spent) if limit is None else f"{usd(spent)} of {usd(limit)}"


# -- the audit (budget-watchdog audit) -------------------------------------------------------


def render_audit(result: AuditResult, *, now: datetime, top_lines: int = 15) -> str:
    """The spend audit as terminal tables: the top models (tier, input share, bars), spend
    per model and provider with the cheapest current provider for the same tokens, then
    the savings found, largest first, each with its basis."""
    p = result.policy
    out = [
        f"Spend audit {result.start:%Y-%m-%d} – {result.end:%Y-%m-%d} ({result.days} days, "
        f"provider activity, UTC days): {usd(result.total_spend)}"
        + (f", {usd(result.byok_spend)} of it BYOK" if result.byok_spend > 0 else ""),
        _fetched(result.prices_fetched_at, now),
        "",
    ]
    if not result.models:
        out += ["  no activity in this period", ""]
        return "\n".join(out) + "\n"
    top = result.top
    width = max([len(m.model) for m in top] + [5])
    largest = max(m.spend for m in top)
    out.append(f"Top {len(top)} models by spend")
    out.append(
        f"  {'model':<{width}}  {'tier':<8} {'$/M out':>8} {'spend':>11} {'share':>6} "
        f"{'in:out':>7} {'input':>6}"
    )
    for m in top:
        out.append(
            f"  {m.model:<{width}}  {m.tier:<8} {_price(m.output_price):>8} {usd(m.spend):>11} "
            f"{m.share:>6.0%} {_in_out(m.input_output_ratio):>7} {_share(m.input_cost_share):>6}"
            f"  {bar(m.spend, largest, 20)}".rstrip()
        )
    if len(result.models) > len(top):
        rest = sum(m.spend for m in result.models[len(top) :])
        out.append(f"  … {len(result.models) - len(top)} more models: {usd(rest)}")
    out.append("  (input: the share of the model's cost that its input tokens make up)")
    out.append("")
    lines = result.lines[:top_lines]
    width = max([len(line.model) for line in lines] + [5])
    pwidth = max([len(line.provider) + 7 * (line.priced == "gone") for line in lines] + [8])
    cwidth = max([len(line.cheapest_provider or "") for line in lines] + [8])
    out.append("By provider: what the same tokens cost at the cheapest current endpoint")
    out.append(
        f"  {'model':<{width}}  {'provider':<{pwidth}} {'spend':>11} {'requests':>9}  "
        f"{'cheapest':<{cwidth}} {'there':>11} {'saving':>10}"
    )
    largest = max(line.savings for line in lines) if lines else 0.0
    for line in lines:
        there = "" if line.cheapest_spend is None else usd(line.cheapest_spend)
        cheapest = line.cheapest_provider or "unknown"
        provider = f"{line.provider} (gone)" if line.priced == "gone" else line.provider
        out.append(
            f"  {line.model:<{width}}  {provider:<{pwidth}} {usd(line.spend):>11} "
            f"{line.requests:>9,}  {cheapest:<{cwidth}} {there:>11} {usd(line.savings):>10}"
            f"  {bar(line.savings, largest, 12)}".rstrip()
        )
    if len(result.lines) > len(lines):
        rest = sum(line.spend for line in result.lines[len(lines) :])
        out.append(f"  … {len(result.lines) - len(lines)} more: {usd(rest)}")
    out.append("")
    share = result.savings_total / result.total_spend if result.total_spend > 0 else 0.0
    out += textwrap.wrap(
        f"Savings found: {usd(result.savings_total)} of {usd(result.total_spend)} ({share:.0%}); "
        "estimates for the same tokens at today's prices, each on what the ones above left",
        98,
        subsequent_indent="  ",
    )
    if not result.findings:
        out.append("  none")
    for f in result.findings:
        where = f"{f.model} at {f.provider}" if f.provider else f.model
        out.append(f"  {usd(f.savings):>10}  {f.kind.replace('_', ' ')}: {where}")
        out += textwrap.wrap(f.message, 96, initial_indent=" " * 14, subsequent_indent=" " * 14)
    out.append("")
    for note in result.notes:
        out += textwrap.wrap(f"Note: {note}", 98, subsequent_indent="  ")
    out.append(
        f"Thresholds: frontier ≥ ${p.frontier_min:,.2f}/M output tokens, light < "
        f"${p.light_max:,.2f}/M; tier-down: frontier, ≥ {p.tier_down_min_requests:,} requests "
        f"averaging ≤ {p.tier_down_max_output:,.0f} output tokens, priced at {p.reference_mid}; "
        f"prompt waste: input ≥ {p.prompt_waste_min_share:.0%} of the cost, trimming "
        f"{p.prompt_trim:.0%}; caching: {p.cache_assumed:.0%} of the input read from cache "
        f"unless spend is under {p.cache_seen_below:.0%} of the list price."
    )
    wrapped = textwrap.wrap(out.pop(), 98, subsequent_indent="  ")
    return "\n".join(out + wrapped) + "\n"


def _fetched(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "Prices: none known (the price list could not be read): no savings estimated"
    age = max(0.0, (now - when).total_seconds())
    ago = "just now" if age < 60 else f"{duration(age)} ago"
    return f"Prices: OpenRouter's price list, fetched {when:%Y-%m-%d %H:%M} UTC ({ago})"


def _price(per_million: float | None) -> str:
    return "–" if per_million is None else f"${per_million:,.2f}"


def _share(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def _in_out(ratio: float | None) -> str:
    if ratio is None:
        return "–"
    return f"{ratio:,.0f}:1" if ratio >= 1 else f"1:{1 / ratio:,.0f}" if ratio > 0 else "0:1"
