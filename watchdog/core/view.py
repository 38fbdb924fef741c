"""The status view: everything /status, /metrics, the page and `status` show, built once
per tick from the tick's results. Pure and typed: the HTTP layer renders a `View`'s
fields, never a dict by string keys, and never touches the store, so a request does no
database work and never waits for the tick.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from itertools import compress
from typing import Any

from watchdog import __version__
from watchdog.core import keys, preflight
from watchdog.core.burn import Metrics, Rate
from watchdog.core.model import (
    BudgetPolicy,
    Finding,
    PermitChange,
    PollHealth,
    Sample,
    Severity,
    Silence,
    TargetHealth,
)
from watchdog.core.permit import Decision
from watchdog.core.rules import severity_of
from watchdog.core.words import against, duration, iso, money, rounded, usd
from watchdog.core.words import rate as rate_text

# The state before the first successful poll since start: nothing is known.
UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class TargetView:
    """A notification target as shown: masked URL, severities, delivery health."""

    id: str
    shown: str
    severities: tuple[str, ...]
    health: TargetHealth = field(default_factory=TargetHealth)


@dataclass(frozen=True, slots=True)
class KeyRow:
    """One key of the account as /status, /metrics, the page and `report` show it."""

    name: str
    hash: str
    label: str | None
    workspace_id: str | None
    disabled: bool
    spent_today: float | None
    spent_month: float | None
    burn_rate_per_hour: float | None
    limit: float | None
    limit_remaining: float | None
    limit_reset: str | None
    daily_limit: float | None
    monthly_limit: float | None
    action: str
    armed: bool
    reason: str
    headroom: float | None
    findings: tuple[Finding, ...] = ()
    # What the row was built from: an unchanged key's row is reused at the next tick.
    source: tuple[object, object] = field(default=(None, None), compare=False, repr=False)

    def json(self, account_armed: bool, account_reason: str) -> dict[str, Any]:
        armed = self.armed and account_armed
        reason = self.reason or (
            "" if account_armed else f"the account's permit is revoked ({account_reason})"
        )
        return {
            "name": self.name,
            "hash": self.hash,
            "label": self.label,
            "workspace": self.workspace_id,
            "disabled": self.disabled,
            "spent_today": money(self.spent_today),
            "spent_month": money(self.spent_month),
            "burn_rate_per_hour": money(self.burn_rate_per_hour),
            "limit": self.limit,
            "limit_remaining": money(self.limit_remaining),
            "limit_reset": self.limit_reset,
            "daily_limit": self.daily_limit,
            "monthly_limit": self.monthly_limit,
            "action": self.action,
            "permit": "armed" if armed else "revoked",
            "permit_reason": "" if armed else reason,
            "headroom_usd": money(self.headroom),
            "findings": [finding_json(f) for f in self.findings],
        }


@dataclass(frozen=True, slots=True)
class KeyTable:
    """The keys' rows as shown (by name), with what they were built from: the judgements
    and verdicts as given (in the listing's order) and each key's place among the rows
    (by hash). The next tick's `key_rows` compares its own with these by identity, and
    builds only the rows of keys judged or given a verdict anew."""

    rows: tuple[KeyRow, ...] = ()
    judgements: Sequence[keys.KeyJudgement] = ()
    verdicts: Sequence[keys.KeyVerdict | None] = ()
    places: Mapping[str, int] = field(default_factory=dict)

    def row(self, key_hash: str) -> KeyRow | None:
        place = self.places.get(key_hash)
        return self.rows[place] if place is not None else None


def key_rows(
    judgements: Sequence[keys.KeyJudgement],
    verdicts: Sequence[keys.KeyVerdict | None],
    previous: KeyTable | None = None,
) -> KeyTable:
    """The keys as shown, by name. `verdicts[n]` is the verdict on `judgements[n]` (as
    `decide` gives them). A row of `previous` built from the same judgement and verdict
    is reused: most keys are idle, and with hundreds of them a tick must not rebuild,
    look up and sort every row. ValueError when the two sequences differ in length."""
    if len(verdicts) != len(judgements):
        raise ValueError(f"{len(judgements)} key judgements but {len(verdicts)} verdicts")
    if previous is not None and len(previous.judgements) == len(judgements):
        table = _rows_changed(judgements, verdicts, previous)
        if table is not None:
            return table
    before = {r.hash: r for r in previous.rows} if previous is not None else {}
    rows = []
    for j, v in zip(judgements, verdicts, strict=True):
        old = before.get(j.facts.hash)
        reuse = old is not None and old.source[0] is j and old.source[1] is v
        rows.append(old if reuse and old is not None else _key_row(j, v))
    rows.sort(key=_NAME)
    places = {r.hash: n for n, r in enumerate(rows)}
    return KeyTable(tuple(rows), judgements, verdicts, places)


def _rows_changed(
    judgements: Sequence[keys.KeyJudgement],
    verdicts: Sequence[keys.KeyVerdict | None],
    previous: KeyTable,
) -> KeyTable | None:
    """The table when the same keys as in `previous`, in the same order, keep their
    names (the common tick): only rows whose judgement or verdict is another object are
    built, in their places. None otherwise."""
    # In C, without visiting the judgements: which places hold other objects.
    anew = map(
        operator.or_,
        map(operator.is_not, judgements, previous.judgements),
        map(operator.is_not, verdicts, previous.verdicts),
    )
    rows: list[KeyRow] | None = None
    for n in compress(range(len(judgements)), anew):
        j = judgements[n]
        key_hash = j.facts.hash
        if key_hash != previous.judgements[n].facts.hash:
            return None  # another key in this place
        place = previous.places[key_hash]
        row = _key_row(j, verdicts[n])
        if rows is None:
            rows = list(previous.rows)
        if rows[place].name != row.name:
            return None  # renamed: the order may change
        rows[place] = row
    if rows is None:
        return replace(previous, judgements=judgements, verdicts=verdicts)
    return KeyTable(tuple(rows), judgements, verdicts, previous.places)


_NAME = operator.attrgetter("name")


def _key_row(j: keys.KeyJudgement, v: keys.KeyVerdict | None) -> KeyRow:
    f, m = j.facts, j.metrics
    rates = [r for r in (m.rate_now.per_hour, m.rate_1h.per_hour) if r is not None]
    return KeyRow(
        name=f.name,
        hash=f.hash,
        label=f.label,
        workspace_id=f.workspace_id,
        disabled=f.disabled,
        spent_today=m.spent_today,
        spent_month=m.spent_month,
        burn_rate_per_hour=max(rates) if rates else None,
        limit=f.latest.key_limit,
        limit_remaining=f.latest.key_limit_remaining,
        limit_reset=f.latest.limit_reset,
        daily_limit=f.budget.daily_limit if f.budget else None,
        monthly_limit=f.budget.monthly_limit if f.budget else None,
        action=f.action,
        armed=v.armed if v is not None else False,
        reason=v.reason if v is not None else "not judged yet",
        headroom=v.headroom if v is not None else None,
        findings=j.findings,
        source=(j, v),  # held, so identity stays meaningful (key_rows compares them)
    )


@dataclass(frozen=True, slots=True)
class InstanceView:
    """Which instance answers and what part it plays, when several share one database:
    `role` "leader" or "follower", the leader of the moment (None: unknown, the database
    is out of reach) and since when it leads; `changes`: how often this instance saw the
    leader change since it started."""

    id: str
    role: str
    leader_id: str | None
    since: datetime | None
    changes: int = 0

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "role": self.role,
            "leader_id": self.leader_id,
            "since": iso(self.since),
        }


@dataclass(frozen=True, slots=True)
class View:
    """One tick's picture. `state` is "ok", "warning", "critical", or "unknown" before the
    first successful poll since start."""

    generated_at: datetime
    state: str
    armed: bool
    permit_reason: str
    poll: PollHealth
    budget: BudgetPolicy
    metrics: Metrics | None = None
    findings: tuple[Finding, ...] = ()
    rooms: tuple[preflight.Room, ...] = ()
    headroom: float | None = None
    silences: tuple[Silence, ...] = ()
    targets: tuple[TargetView, ...] = ()
    permit_history: tuple[PermitChange, ...] = ()
    chart: tuple[tuple[datetime, float | None], ...] = ()
    key_name: str = "watched key"
    scope: str = "key"
    stale_revokes: bool = True  # killswitch.on_stale == "revoke"
    # When each finding started: ((rule, key), since) from the alert states (a tuple, so
    # the view stays hashable: the server caches per view).
    finding_since: tuple[tuple[tuple[str, str], datetime], ...] = ()
    latest: Sample | None = None  # the newest sample (BYOK spend is shown from it)
    # The account's activity, for the page: spend per UTC day (the last 30, oldest first)
    # and the models that took the most over them (model, provider, spend), largest first.
    daily: tuple[tuple[date, float], ...] = ()
    top_models: tuple[tuple[str, str, float], ...] = ()
    # Spend per local day of this month so far (ours, else the activity's for that date;
    # None where neither knows), for the cumulative chart against the monthly limit.
    month_days: tuple[tuple[date, float | None], ...] = ()
    # The savings the audit found: (message, USD saving), largest first.
    savings: tuple[tuple[str, float], ...] = ()
    # Every key of the account (management key), by name; `keys_watched` when they are.
    keys: tuple[KeyRow, ...] = ()
    keys_watched: bool = False
    # The same rows with what they were built from (the next tick's key_rows reuses
    # them; not compared).
    key_table: KeyTable | None = field(default=None, compare=False, repr=False)
    # How long this view's permit decision stands: the lease of the permit file the tick
    # wrote with it. Past it no tick has finished since (stuck, or the state out of
    # reach), and every answer is no-go, as the file has run out too.
    decided_until: datetime | None = None
    version: str = __version__

    def key(self, name: str) -> KeyRow | None:
        """A key by its name (as shown), or by its full hash."""
        return next((k for k in self.keys if name in (k.name, k.hash)), None)

    @property
    def stale_after(self) -> timedelta:
        return self.budget.stale_after

    def data_age(self, now: datetime) -> float | None:
        return self.poll.data_age(now)

    def fresh(self, now: datetime) -> bool:
        return self.poll.fresh(now, self.budget.stale_after)

    def at(self, now: datetime) -> View:
        """This view as it stands at `now`: staleness follows the clock, not the end of a
        tick. While a tick hangs (a provider that does not answer), data that has gone
        stale since the view was built makes the state at least a warning, adds the stale
        finding, and revokes the permit when `on_stale = "revoke"` — as the next tick
        would. Past `decided_until`, the permit is revoked (see `ran_out`). The view itself
        when nothing changed."""
        lapsed = self.ran_out(now) if self.armed else None
        if lapsed is not None:
            return replace(self, armed=False, permit_reason=lapsed).at(now)
        age = self.data_age(now)
        limit = self.budget.stale_after.total_seconds()
        if age is None or age <= limit or any(f.rule == "stale" for f in self.findings):
            return self
        severity: Severity = "critical" if age > 3 * limit else "warning"
        stale = Finding(
            "stale",
            severity,
            age,
            limit,
            f"No successful poll for {duration(age)} (stale after {duration(limit)}): the "
            "numbers are out of date.",
            unit="seconds",
        )
        findings = (stale, *self.findings)
        armed, reason = self.armed, self.permit_reason
        if armed and self.stale_revokes:
            armed, reason = False, f"stale {severity}: no successful poll for {duration(age)}"
        return replace(
            self,
            state=severity_of(list(findings)),
            findings=findings,
            armed=armed,
            permit_reason=reason,
        )

    def ran_out(self, now: datetime) -> str | None:
        """Why this view's decision no longer stands at `now` (None while it does)."""
        until = self.decided_until
        if until is None or now < until:
            return None
        return (
            f"no tick has finished since {self.generated_at.isoformat(timespec='seconds')}: "
            f"the last decision ran out at {until.isoformat(timespec='seconds')} (a stuck "
            "tick, or the state out of reach)"
        )

    def to_json(self, now: datetime) -> dict[str, Any]:
        """The /status body at `now` (reservations are added by the server, which holds
        them). Staleness is judged at `now` (see `at`)."""
        current = self.at(now)
        if current is not self:
            return current.to_json(now)
        m, b = self.metrics, self.budget
        age = self.data_age(now)
        body: dict[str, Any] = {
            "state": self.state,
            "permit": "armed" if self.armed else "revoked",
            "permit_reason": "" if self.armed else self.permit_reason,
            "balance": money(m.balance) if m else None,
            "spent_today": money(m.spent_today) if m else None,
            "spent_week": money(m.spent_week) if m else None,
            "spent_month": money(m.spent_month) if m else None,
            "burn_rate_per_hour": money(m.rate_1h.per_hour) if m else None,
            "runway_days": rounded(m.runway_days, 2) if m else None,
            "forecast_month": money(m.forecast_month) if m else None,
            "headroom_usd": money(self.headroom),
            "findings": [
                finding_json(f) | {"since": iso(self.started().get(f.ident))} for f in self.findings
            ],
            "last_poll_at": iso(self.poll.last_success),
            "last_error": self.poll.last_error,
            "last_error_kind": self.poll.last_error_kind,
            "last_error_at": iso(self.poll.last_error_at),
            "data_age_s": rounded(age),
            "stale": not self.fresh(now),
            "burn_rates": {name: rate_json(rate) for name, rate in self.rates()},
            "average_daily": money(m.avg_daily.per_day) if m else None,
            "average_daily_basis": m.avg_daily.basis if m else "",
            "spent_today_source": m.spent_today_source if m else "",
            "limits": {
                "daily": b.daily_limit,
                "monthly": b.monthly_limit,
                "key": m.key_limit if m else None,
                "key_remaining": money(m.key_limit_remaining) if m else None,
                "warn_ratio": b.warn_ratio,
            },
            "silences": [
                {"rule": s.rule, "until": s.until.isoformat(), "reason": s.reason}
                for s in self.silences
                if s.until > now
            ],
            "notify_targets": [target_json(t) for t in self.targets],
            "permit_history": [
                {"at": c.at.isoformat(), "state": c.state, "by": c.by, "reason": c.reason}
                for c in self.permit_history
            ],
            "byok": byok_json(self.latest),
            **(
                {"keys": [k.json(self.armed, self.permit_reason) for k in self.keys]}
                if self.keys_watched
                else {}
            ),
            "key": self.key_name,
            "scope": self.scope,
            "timezone": b.timezone,
            "version": self.version,
            "generated_at": self.generated_at.isoformat(),
        }
        return body

    def started(self) -> dict[tuple[str, str], datetime]:
        """When each finding started, by (rule, key), where known."""
        return dict(self.finding_since)

    def rates(self) -> list[tuple[str, Rate]]:
        """The burn rates by window name ("10m", "1h", "24h", "7d"); [] before any data."""
        m = self.metrics
        if m is None:
            return []
        return [("10m", m.rate_now), ("1h", m.rate_1h), ("24h", m.rate_24h), ("7d", m.avg_daily)]


def starting(now: datetime, budget: BudgetPolicy, poll: PollHealth) -> View:
    """The view before the first tick has finished: nothing known, permit not armed."""
    return View(now, UNKNOWN, False, "starting: no poll yet", poll, budget)


def build(
    *,
    now: datetime,
    budget: BudgetPolicy,
    metrics: Metrics,
    findings: Sequence[Finding],
    decision: Decision,
    poll: PollHealth,
    key_name: str,
    scope: str,
    silences: Mapping[str, Silence] | None = None,
    targets: Sequence[TargetView] = (),
    permit_history: Sequence[PermitChange] = (),
    chart: Sequence[tuple[datetime, float | None]] = (),
    stale_revokes: bool = True,
    finding_since: Mapping[tuple[str, str], datetime] | None = None,
    latest: Sample | None = None,
    activity: Sequence[tuple[date, str, str, float]] = (),
    month_days: Sequence[tuple[date, float | None]] = (),
    savings: Sequence[tuple[str, float]] = (),
    key_judgements: Sequence[keys.KeyJudgement] = (),
    key_verdicts: Sequence[keys.KeyVerdict] = (),
    keys_watched: bool = False,
    previous_keys: KeyTable | None = None,
) -> View:
    """Given one tick's results, return the View the server and CLI show. Before the first
    successful poll since start the state is "unknown", whatever the rules said."""
    rooms = preflight.rooms(metrics, budget)
    daily = daily_from(activity, now)
    known = poll.last_success is not None and poll.last_success >= poll.started_at
    state = severity_of(list(findings)) if known or findings else UNKNOWN
    table = key_rows(key_judgements, key_verdicts, previous_keys)
    return View(
        generated_at=now,
        state=state,
        armed=decision.armed,
        permit_reason=decision.reason,
        poll=poll,
        budget=budget,
        metrics=metrics,
        findings=tuple(findings),
        rooms=tuple(rooms),
        headroom=preflight.smallest(rooms),
        silences=tuple((silences or {}).values()),
        targets=tuple(targets),
        permit_history=tuple(permit_history),
        chart=tuple(chart),
        key_name=key_name,
        scope=scope,
        stale_revokes=stale_revokes,
        finding_since=tuple((finding_since or {}).items()),
        latest=latest,
        daily=daily,
        top_models=top_models_from(activity, now),
        month_days=_filled(month_days, daily),
        savings=tuple(savings),
        keys=table.rows,
        keys_watched=keys_watched,
        key_table=table,
    )


# The page's window on the account's activity (the provider keeps 30 days).
ACTIVITY_DAYS = 30


def daily_from(
    activity: Sequence[tuple[date, str, str, float]], now: datetime
) -> tuple[tuple[date, float], ...]:
    """Spend per UTC day for the last ACTIVITY_DAYS complete days before `now`'s, every day
    present (a day without rows spent nothing), oldest first; () without activity."""
    if not activity:
        return ()
    today = now.astimezone(UTC).date()
    totals: dict[date, float] = {}
    for day, _, _, spend in activity:
        totals[day] = totals.get(day, 0.0) + spend
    days = [today - timedelta(days=k) for k in range(ACTIVITY_DAYS, 0, -1)]
    return tuple((day, totals.get(day, 0.0)) for day in days)


def top_models_from(
    activity: Sequence[tuple[date, str, str, float]], now: datetime, top: int = 5
) -> tuple[tuple[str, str, float], ...]:
    """The (model, provider) pairs that took the most over the window (the same complete
    days as `daily_from`), largest first."""
    today = now.astimezone(UTC).date()
    since = today - timedelta(days=ACTIVITY_DAYS)
    totals: dict[tuple[str, str], float] = {}
    for day, model, provider, spend in activity:
        if since <= day < today:
            totals[(model, provider)] = totals.get((model, provider), 0.0) + spend
    ranked = sorted(totals.items(), key=lambda item: (-item[1], item[0]))
    return tuple((model, provider, spend) for (model, provider), spend in ranked[:top])


def _filled(
    own: Sequence[tuple[date, float | None]], activity: Sequence[tuple[date, float]]
) -> tuple[tuple[date, float | None], ...]:
    """Our own days, with the activity's figure where ours know nothing (a fresh install)."""
    known = dict(activity)
    return tuple((day, value if value is not None else known.get(day)) for day, value in own)


def byok_json(latest: Sample | None) -> dict[str, Any] | None:
    """Bring-your-own-key spend as the provider reports it, and whether the spend figures
    above already include it (they do when the key's limit counts BYOK spend)."""
    if latest is None or latest.byok_usage is None:
        return None
    return {
        "spent_total": money(latest.byok_usage),
        "spent_today": money(latest.byok_usage_daily),
        "spent_month": money(latest.byok_usage_monthly),
        "included_in_spend": latest.byok_counted,
    }


def finding_json(finding: Finding) -> dict[str, Any]:
    """A finding as the API shows it: value and threshold rounded, None when not finite."""
    data = asdict(finding)
    data["value"] = rounded(finding.value, 4)
    data["threshold"] = rounded(finding.threshold, 4)
    return data


def rate_json(rate: Rate) -> dict[str, Any]:
    return {
        "per_hour": money(rate.per_hour),
        "covered_s": round(rate.covered.total_seconds()),
        "basis": rate.basis,
    }


def target_json(target: TargetView) -> dict[str, Any]:
    h = target.health
    return {
        "target": target.shown,
        "severities": list(target.severities),
        "sent": h.sent,
        "failed": h.failed,
        "pending": h.pending,
        "last_ok": iso(h.last_ok),
        "last_error": h.last_error,
        "last_error_at": iso(h.last_error_at),
        "healthy": h.healthy,
    }


def summary_line(view: View) -> str:
    """One line for systemd's STATUS=: state, spend today, runway, permit."""
    m = view.metrics
    parts = [f"state {view.state}", f"permit {'armed' if view.armed else 'revoked'}"]
    if m is not None and m.spent_today is not None:
        parts.append(f"today {usd(m.spent_today)}")
    runway = rounded(m.runway_days) if m is not None else None
    if runway is not None:
        parts.append(f"runway {runway:.1f}d")
    return ", ".join(parts)


def render_text(status: Mapping[str, Any], *, source: str) -> str:
    """A readable summary of a /status body, for `budget-watchdog status`."""
    lines = [f"budget-watchdog {status.get('version', '')} — {source}"]
    lines.append(
        f"State: {str(status.get('state', 'unknown')).upper()}    "
        f"Permit: {str(status.get('permit', 'unknown')).upper()}"
        + (f" ({status['permit_reason']})" if status.get("permit_reason") else "")
    )
    limits = status.get("limits") or {}
    lines.append(f"Spent today:  {against(status.get('spent_today'), limits.get('daily'))}")
    lines.append(f"Spent month:  {against(status.get('spent_month'), limits.get('monthly'))}")
    if status.get("forecast_month") is not None:
        lines.append(f"Month end:    {usd(status['forecast_month'])} forecast")
    burn = status.get("burn_rate_per_hour")
    lines.append(f"Burn rate:    {'unknown' if burn is None else rate_text(burn)} (last hour)")
    balance, runway = status.get("balance"), status.get("runway_days")
    lines.append(
        f"Balance:      {usd(balance)}" + ("" if runway is None else f", runway {runway:.1f} days")
    )
    if status.get("headroom_usd") is not None:
        reserved = status.get("reserved_usd") or 0
        lines.append(
            f"Headroom:     {usd(status['headroom_usd'])}"
            + (f" ({usd(reserved)} reserved)" if reserved else "")
        )
    age = status.get("data_age_s")
    lines.append(
        f"Last poll:    {status.get('last_poll_at') or 'never'}"
        + ("" if age is None else f" ({age:.0f} s ago)")
    )
    if status.get("last_error"):
        lines.append(f"Last error:   {status['last_error']}")
    findings = status.get("findings") or []
    lines.append("")
    lines.append("Findings:" if findings else "Findings:     none")
    for f in findings:
        lines.append(f"  [{f['severity'].upper():8}] {f['rule']}: {f['message']}")
    for s in status.get("silences") or []:
        lines.append(
            f"Silenced:     {s['rule']} until {s['until']}"
            + (f" ({s['reason']})" if s.get("reason") else "")
        )
    history = status.get("permit_history") or []
    if history:
        lines.append("Permit history (newest first):")
        for h in history[:5]:
            lines.append(f"  {h['at']}  {h['state']:<13} {h['by']}: {h['reason']}")
    for t in status.get("notify_targets") or []:
        mark = "ok" if t.get("healthy") else f"FAILING: {t.get('last_error')}"
        pending = f", {t['pending']} pending" if t.get("pending") else ""
        lines.append(f"Target:       {t['target']} ({t['sent']} sent{pending}) {mark}")
    return "\n".join(lines) + "\n"
