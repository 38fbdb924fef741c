"""Provider-side caps: what daily limit each key should carry, and each workspace's monthly
budget, and whether the watchdog may set it. Pure: activity rows, the key listing and the
cap audit in, a `Survey` of proposals and refusals out, with its JSON and text forms
(`watchdog.caps` gathers the inputs, applies and records).

The expected daily spend of a key is the 95th percentile (nearest rank) of its spend per
UTC day over the last 30 completed days, counted from its first day of activity: with
fewer than 20 such days that is the busiest one, with 20 to 30 the second busiest. So a
job that runs weekly (or twice a month) sets the cap on its own days, and one odd day (a
runaway, a backfill) does not set it for a month; a mean would cap a weekly batch below
its batch day, a plain maximum would let last week's runaway set this month's cap.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any, Literal, Protocol

from watchdog.core.model import BudgetPolicy, CapChange, CapsPolicy, KeyUsage
from watchdog.core.words import money, usd

WINDOW_DAYS = 30  # the provider keeps 30 completed UTC days of activity
PERCENTILE = 95
ESTIMATOR = "p95"
ESTIMATOR_TEXT = (
    f"the {PERCENTILE}th percentile of the key's spend per UTC day over the last "
    f"{WINDOW_DAYS} completed days, from its first day of activity (the busiest day with "
    "fewer than 20 days, else the second busiest: a job that runs weekly keeps its day, one "
    "odd day does not set the cap)"
)
KEY_RESET = "daily"
WORKSPACE_INTERVAL = "monthly"
WORKSPACE_PREFIX = "workspace:"  # cap audit rows of a workspace budget: "workspace:<id>"
# Budgets at the provider must shrink as the interval narrows: lifetime > monthly > weekly
# > daily (the PUT is refused otherwise).
BUDGET_ORDER = ("lifetime", "monthly", "weekly", "daily")
ALREADY = "already set"
# Two limits are the same when they round to the same cent.
_CENT = 0.005

Change = Literal["set", "raise", "lower", "none", "refused", "error"]
APPLIES: tuple[Change, ...] = ("set", "raise", "lower")


class DayRow(Protocol):
    """One row of a key's activity (`watchdog.providers.base.ActivityRow` is one): the UTC
    day, what the provider billed from its credits (`usage`) and with BYOK (`spend`)."""

    @property
    def date(self) -> date: ...

    @property
    def usage(self) -> float: ...

    @property
    def spend(self) -> float: ...


# -- the estimator -------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    """A key's expected daily spend (`expected`, the p95 day) over `days` days counted,
    with the busiest day and the mean for context; `active_days` had any spend."""

    expected: float
    days: int
    peak: float
    mean: float
    active_days: int


def window(today: date, days: int = WINDOW_DAYS) -> tuple[date, date]:
    """The completed UTC days before `today`: (first, last)."""
    return today - timedelta(days=days), today - timedelta(days=1)


def daily_spend(
    rows: Iterable[DayRow], today: date, *, with_byok: bool = False, days: int = WINDOW_DAYS
) -> list[float]:
    """Given a key's activity rows and today's UTC date, return its spend per day over the
    completed days of the window, oldest first, from its first day with a row (a key that
    did not exist yet spent nothing, and is not judged on those days); days without rows
    are $0. No row in the window: every day of it, all $0. `with_byok`: count BYOK spend
    too (when the provider counts it against the key's limit)."""
    first, last = window(today, days)
    totals: dict[date, float] = {}
    for row in rows:
        if first <= row.date <= last:
            amount = row.spend if with_byok else row.usage
            totals[row.date] = totals.get(row.date, 0.0) + amount
    start = min(totals, default=first)
    count = (last - start).days + 1
    return [totals.get(start + timedelta(days=n), 0.0) for n in range(count)]


def estimate(daily: Sequence[float]) -> Estimate:
    """Given spend per day, return the estimate: the nearest-rank p95 day (0 for no days)."""
    if not daily:
        return Estimate(0.0, 0, 0.0, 0.0, 0)
    ordered = sorted(max(0.0, d) for d in daily)
    rank = -(-PERCENTILE * len(ordered) // 100)  # ceil, in integers: no float fuzz
    return Estimate(
        expected=ordered[rank - 1],
        days=len(ordered),
        peak=ordered[-1],
        mean=sum(ordered) / len(ordered),
        active_days=sum(1 for d in ordered if d > 0),
    )


def ceil_cent(amount: float) -> float:
    """`amount` rounded up to the cent ($5.331 → $5.34; $5.33 stays, float noise aside)."""
    return math.ceil(round(amount * 100, 6)) / 100


def proposed_limit(expected: float, caps: CapsPolicy) -> tuple[float, str]:
    """factor × expected, rounded up to the cent, at least min_daily; with its basis."""
    scaled = ceil_cent(caps.factor * expected)
    if scaled < caps.min_daily:
        return caps.min_daily, "min_daily"
    return scaled, f"p95 × {caps.factor:g}"


# -- whose limit is it ---------------------------------------------------------------------


def latest_changes(log: Iterable[CapChange]) -> dict[str, CapChange]:
    """The latest cap audit row per hash, from the log newest first (`Store.cap_log`)."""
    latest: dict[str, CapChange] = {}
    for change in log:
        latest.setdefault(change.hash, change)
    return latest


def same(a: float | None, b: float | None) -> bool:
    """Two limits are the same: both absent, or equal to the cent."""
    if a is None or b is None:
        return a is b
    return abs(a - b) < _CENT


def is_ours(last: CapChange | None, limit: float | None, reset: str | None) -> bool:
    """A limit is ours when the latest audit row for its hash set exactly this limit and
    reset; anything else (no row, or changed since) was set by hand."""
    return last is not None and same(last.new_limit, limit) and last.new_reset == reset


# -- proposals -----------------------------------------------------------------------------


class _Change:
    """What a key's and a workspace's plan share: the change and its reason."""

    change: Change
    reason: str

    @property
    def applies(self) -> bool:
        return self.change in APPLIES

    @property
    def shown_change(self) -> str:
        """The change as shown: set, raise, lower, none, refused: <reason>, error: <reason>."""
        if self.change in ("refused", "error"):
            return f"{self.change}: {self.reason}"
        return self.change


@dataclass(frozen=True)
class KeyPlan(_Change):
    """One key: its expected daily spend, the proposed daily limit and why (`basis`), its
    current limit, today's spend, and the `change` with its `reason` (a refusal's cause).
    After an apply, `applied` or the `error` that stopped it."""

    hash: str
    name: str
    label: str | None
    workspace_id: str | None
    disabled: bool
    estimate: Estimate | None
    proposed: float | None
    basis: str
    current_limit: float | None
    current_reset: str | None
    spent_today: float | None
    change: Change
    reason: str = ""
    hand_set: bool = False
    applied: bool = False
    error: str | None = None


@dataclass(frozen=True)
class WorkspacePlan(_Change):
    """One workspace's monthly budget: what its keys spent this month, the proposal
    ([budget] monthly_limit, None when unset), its budgets at the provider by interval, and
    the change as for a key."""

    id: str
    slug: str
    name: str
    spent_month: float | None
    proposed: float | None
    budgets: Mapping[str, float]
    change: Change
    reason: str = ""
    hand_set: bool = False
    applied: bool = False
    error: str | None = None

    @property
    def current_limit(self) -> float | None:
        return self.budgets.get(WORKSPACE_INTERVAL)

    @property
    def current_reset(self) -> str | None:
        return WORKSPACE_INTERVAL if WORKSPACE_INTERVAL in self.budgets else None

    @property
    def audit_hash(self) -> str:
        return f"{WORKSPACE_PREFIX}{self.id}"


@dataclass(frozen=True)
class Survey:
    """Everything `caps` found at `at`: a plan per key and per workspace, the settings it
    was judged by, whether it was applied, and provider errors not tied to one row."""

    at: datetime
    caps: CapsPolicy
    monthly_limit: float | None
    allow_raise: bool
    keys: tuple[KeyPlan, ...] = ()
    workspaces: tuple[WorkspacePlan, ...] = ()
    errors: tuple[str, ...] = ()
    dry_run: bool = True

    @property
    def rows(self) -> tuple[KeyPlan | WorkspacePlan, ...]:
        """Every key's plan, then every workspace's."""
        return (*self.keys, *self.workspaces)

    @property
    def failed(self) -> bool:
        """A provider (or the audit) failed somewhere: the command exits 1."""
        return bool(self.errors) or any(p.change == "error" or p.error for p in self.rows)


def _decide(
    proposed: float,
    current: float | None,
    current_reset: str | None,
    reset: str,
    spent: float | None,
    spent_what: str,
    ours: bool,
    allow_raise: bool,
) -> tuple[Change, str, bool]:
    """The change from `current` (over `current_reset`) to `proposed` (over `reset`), or
    the refusal: never at or below what was already spent in the period (the key or
    workspace would stop at once), never raising a hand-set lower limit or replacing a
    hand-set limit of another period unless `allow_raise`. Returns (change, reason,
    hand_set)."""
    has_limit = current is not None
    hand_set = has_limit and not ours
    if has_limit and current_reset == reset and same(current, proposed):
        return "none", ALREADY, hand_set
    if spent is None:
        return "refused", f"{spent_what} is not reported", hand_set
    if proposed <= spent + _CENT:
        return "refused", f"{usd(proposed)} is not above {spent_what} {usd(spent)}", hand_set
    if current is None:
        return "set", "", False
    if hand_set and not allow_raise:
        if current_reset != reset:
            period = current_reset or "lifetime"
            return (
                "refused",
                f"hand-set {period} limit {usd(current)}; --raise replaces it with a {reset} one",
                True,
            )
        if proposed > current:
            return "refused", f"hand-set limit {usd(current)} is lower; --raise raises it", True
    if current_reset != reset:
        return "set", "", hand_set
    return ("raise" if proposed > current else "lower"), "", hand_set


def plan_key(
    key: KeyUsage,
    found: Estimate | None,
    caps: CapsPolicy,
    budget: BudgetPolicy,
    last: CapChange | None,
    *,
    allow_raise: bool = False,
    problem: str | None = None,
) -> KeyPlan:
    """Given a listed key, its estimate (None when its activity could not be read:
    `problem` says why), the policy and the key's latest cap audit row, return its plan.
    A disabled key is left alone. The first [[budget.keys]] entry matching it with a
    `daily_limit` sets its limit exactly; otherwise factor × expected, rounded up to the
    cent, at least min_daily."""
    plan = KeyPlan(
        hash=key.hash or "",
        name=key.display_name,
        label=key.label,
        workspace_id=key.workspace_id,
        disabled=key.disabled,
        estimate=found,
        proposed=None,
        basis="",
        current_limit=key.limit,
        current_reset=key.limit_reset if key.limit is not None else None,
        spent_today=key.counted_window("usage_daily"),
        change="none",
    )
    if key.disabled:
        return replace(plan, reason="disabled: left alone")
    if not key.hash:
        return replace(plan, reason="the provider gives no hash: it cannot be capped")
    pinned = budget.key_budget(key.name, key.label, key.hash)
    if pinned is not None and pinned.daily_limit is not None:
        proposed, basis = pinned.daily_limit, f"[[budget.keys]] {pinned.match}"
    elif found is None:
        return replace(plan, change="error", reason=problem or "no estimate")
    else:
        proposed, basis = proposed_limit(found.expected, caps)
    change, reason, hand_set = _decide(
        proposed,
        key.limit,
        plan.current_reset,
        KEY_RESET,
        plan.spent_today,
        "today's spend",
        is_ours(last, key.limit, plan.current_reset),
        allow_raise,
    )
    return replace(
        plan, proposed=proposed, basis=basis, change=change, reason=reason, hand_set=hand_set
    )


def plan_workspace(
    workspace_id: str,
    slug: str,
    name: str,
    monthly_limit: float | None,
    budgets: Mapping[str, float],
    spent_month: float | None,
    last: CapChange | None,
    *,
    allow_raise: bool = False,
) -> WorkspacePlan:
    """Given a workspace, [budget] monthly_limit (None: report only), its budgets at the
    provider by interval, what its keys spent this month and its latest cap audit row
    (hash "workspace:<id>"), return its plan: monthly budget = monthly_limit, refused at or
    below this month's spend, above a hand-set lower budget without `allow_raise`, or out
    of the provider's order (lifetime > monthly > weekly > daily)."""
    plan = WorkspacePlan(
        workspace_id, slug, name, spent_month, monthly_limit, dict(budgets), "none"
    )
    if monthly_limit is None:
        return replace(plan, reason="no [budget] monthly_limit: reported, not changed")
    current = budgets.get(WORKSPACE_INTERVAL)
    reset = WORKSPACE_INTERVAL if current is not None else None
    change, reason, hand_set = _decide(
        monthly_limit,
        current,
        reset,
        WORKSPACE_INTERVAL,
        spent_month,
        "this month's spend",
        is_ours(last, current, reset),
        allow_raise,
    )
    if change in APPLIES:
        clash = _order_problem(monthly_limit, budgets)
        if clash:
            change, reason = "refused", clash
    return replace(plan, change=change, reason=reason, hand_set=hand_set)


def _order_problem(monthly: float, budgets: Mapping[str, float]) -> str | None:
    rank = BUDGET_ORDER.index(WORKSPACE_INTERVAL)
    for interval, limit in budgets.items():
        if interval == WORKSPACE_INTERVAL or interval not in BUDGET_ORDER:
            continue
        if BUDGET_ORDER.index(interval) < rank and limit <= monthly:
            return f"the {interval} budget {usd(limit)} must stay above the monthly one"
        if BUDGET_ORDER.index(interval) > rank and limit >= monthly:
            return f"the {interval} budget {usd(limit)} must stay below the monthly one"
    return None


def change_record(
    plan: KeyPlan | WorkspacePlan, at: datetime, actor: str, survey: Survey
) -> CapChange:
    """The cap audit row of a plan that applies. Raise ValueError for one that does not."""
    if not plan.applies or plan.proposed is None:
        raise ValueError(f"{plan.name}: {plan.shown_change} is not a change to record")
    if isinstance(plan, KeyPlan):
        why, found = plan.basis, plan.estimate
        if found is not None and plan.basis.startswith(ESTIMATOR):
            why = f"{ESTIMATOR} of {found.days} days {usd(found.expected)} × {survey.caps.factor:g}"
        audit_hash, new_reset = plan.hash, KEY_RESET
    else:
        why, audit_hash, new_reset = "[budget] monthly_limit", plan.audit_hash, WORKSPACE_INTERVAL
    return CapChange(
        at=at,
        hash=audit_hash,
        name=plan.name,
        old_limit=plan.current_limit,
        old_reset=plan.current_reset,
        new_limit=plan.proposed,
        new_reset=new_reset,
        actor=actor,
        reason=f"caps: {why}",
    )


def describe(plan: KeyPlan | WorkspacePlan) -> str:
    """One line for a log or a summary: "batch: $10.00 daily → $5.34 daily (lower)"."""
    if isinstance(plan, KeyPlan):
        label, reset = plan.name, KEY_RESET
        current = _limit(plan.current_limit, plan.current_reset)
    else:
        label, reset = f"workspace {plan.slug or plan.id}", WORKSPACE_INTERVAL
        current = _limit(plan.current_limit, plan.current_reset)
    if plan.applies:
        return f"{label}: {current} → {_limit(plan.proposed, reset)} ({plan.change})"
    return f"{label}: {plan.shown_change}"


# -- output --------------------------------------------------------------------------------


def as_json(survey: Survey) -> dict[str, Any]:
    """The survey for `caps --json`: {"keys": [...], "workspaces": [...], ...}, amounts in
    USD (4 decimals), each key's and workspace's `change` as the table shows it."""
    keys = []
    for k in survey.keys:
        e = k.estimate
        keys.append(
            {
                "name": k.name,
                "hash": k.hash,
                "label": k.label,
                "workspace": k.workspace_id,
                "disabled": k.disabled,
                "expected_daily": money(e.expected) if e else None,
                "estimator": ESTIMATOR if e else None,
                "days": e.days if e else None,
                "peak_daily": money(e.peak) if e else None,
                "mean_daily": money(e.mean) if e else None,
                "proposed_limit": money(k.proposed),
                "basis": k.basis or None,
                "current_limit": money(k.current_limit),
                "current_reset": k.current_reset,
                "spent_today": money(k.spent_today),
                "hand_set": k.hand_set,
                "change": k.shown_change,
                "reason": k.reason or None,
                "applied": k.applied,
                "error": k.error,
            }
        )
    workspaces = [
        {
            "id": w.id,
            "slug": w.slug,
            "name": w.name,
            "spent_month": money(w.spent_month),
            "proposed_limit": money(w.proposed),
            "current_limit": money(w.current_limit),
            "current_reset": w.current_reset,
            "budgets": {i: money(v) for i, v in w.budgets.items()},
            "hand_set": w.hand_set,
            "change": w.shown_change,
            "reason": w.reason or None,
            "applied": w.applied,
            "error": w.error,
        }
        for w in survey.workspaces
    ]
    return {
        "at": survey.at.isoformat(),
        "dry_run": survey.dry_run,
        "estimator": {"name": ESTIMATOR, "window_days": WINDOW_DAYS, "description": ESTIMATOR_TEXT},
        "factor": survey.caps.factor,
        "min_daily": money(survey.caps.min_daily),
        "monthly_limit": money(survey.monthly_limit),
        "raise": survey.allow_raise,
        "keys": keys,
        "workspaces": workspaces,
        "errors": list(survey.errors),
    }


@dataclass
class _Table:
    header: tuple[str, ...]
    rows: list[tuple[str, ...]] = field(default_factory=list)

    def lines(self) -> list[str]:
        widths = [
            max(len(r[i]) for r in (self.header, *self.rows)) for i in range(len(self.header))
        ]
        return [
            "  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in (self.header, *self.rows)
        ]


def _limit(amount: float | None, reset: str | None) -> str:
    if amount is None:
        return "none"
    return f"{usd(amount)} {reset or 'lifetime'}"


def _outcome(plan: KeyPlan | WorkspacePlan, dry_run: bool) -> str:
    if plan.change == "none" and plan.reason and plan.reason != ALREADY:
        return f"none ({plan.reason})"
    if plan.error:
        return f"{plan.shown_change}: FAILED: {plan.error}"
    if plan.applied:
        return f"{plan.shown_change} (applied)"
    if not dry_run and plan.applies:
        return f"{plan.shown_change} (not applied)"
    return plan.shown_change


def render(survey: Survey) -> str:
    """The survey as terminal tables: one row per key (expected daily spend, proposed
    daily limit and its basis, current limit and reset, today's spend, the change), then
    the workspaces' monthly budgets, then what was done (or that it was a dry run)."""
    c = survey.caps
    head = "Provider-side daily caps"
    out = [
        f"{head} — dry run: nothing changed" if survey.dry_run else f"{head} — applied",
        *textwrap.wrap(f"Expected daily spend: {ESTIMATOR_TEXT}.", 92),
        *textwrap.wrap(
            f"Proposed limit: {c.factor:g} × expected, rounded up to the cent, at least "
            f"{usd(c.min_daily)} (a [[budget.keys]] daily_limit wins).",
            92,
        ),
        "",
    ]
    table = _Table(("key", "expected/day", "proposed", "basis", "current", "today", "change"))
    for k in survey.keys:
        e = k.estimate
        table.rows.append(
            (
                k.name,
                usd(e.expected) if e else "-",
                usd(k.proposed) if k.proposed is not None else "-",
                k.basis or "-",
                _limit(k.current_limit, k.current_reset),
                usd(k.spent_today),
                _outcome(k, survey.dry_run),
            )
        )
    out += table.lines() if survey.keys else ["  no keys listed"]
    out.append("")
    if survey.monthly_limit is None:
        out.append("Workspace budgets (no [budget] monthly_limit: reported, not changed)")
    else:
        out.append(
            f"Workspace monthly budgets ([budget] monthly_limit {usd(survey.monthly_limit)})"
        )
    wtable = _Table(("workspace", "spent this month", "proposed", "budgets", "change"))
    for w in survey.workspaces:
        budgets = ", ".join(f"{i} {usd(w.budgets[i])}" for i in BUDGET_ORDER if i in w.budgets)
        wtable.rows.append(
            (
                w.slug or w.id,
                usd(w.spent_month),
                usd(w.proposed) if w.proposed is not None else "-",
                budgets or "none",
                _outcome(w, survey.dry_run),
            )
        )
    out += wtable.lines() if survey.workspaces else ["  no workspace listed"]
    out.append("")
    for error in survey.errors:
        out.append(f"error: {error}")
    planned = [p for p in survey.rows if p.applies]
    if survey.dry_run:
        if planned:
            out.append(
                f"Dry run: nothing was changed; --apply makes the {len(planned)} "
                f"change{'s' if len(planned) != 1 else ''} marked set, raise or lower."
            )
        else:
            out.append("Dry run: nothing was changed, and nothing would be.")
    else:
        done = sum(1 for p in planned if p.applied)
        out.append(
            f"Applied {done} of {len(planned)} change{'s' if len(planned) != 1 else ''} "
            "(each recorded in the cap audit)."
            if planned
            else "Nothing to change."
        )
    return "\n".join(out) + "\n"
