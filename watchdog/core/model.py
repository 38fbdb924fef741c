"""The domain model: what a poll saw, what the rules found, what the alerts and the permit
remember, and the policy they are judged by. Frozen dataclasses of plain values; no I/O.

The provider builds `Snapshot`s, the store keeps `Sample`s, `burn` measures over Samples,
`rules` turn Metrics into `Finding`s under a `Policy` (built once from the config at the
edge, see `watchdog.config`).
"""

from __future__ import annotations

import fnmatch
import operator
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Literal, TypeAlias

Severity = Literal["warning", "critical"]
SEVERITY_ORDER = {"warning": 1, "critical": 2}
WATCHED = "*"  # the key of findings about the watched scope (the key, or the account)
# Error kinds of a tick that failed on its own side (not the provider's).
TICK_FAILURES = ("state", "tick")

Scope = Literal["key", "account"]


@dataclass(frozen=True, slots=True)
class KeyUsage:
    """One API key as the provider describes it. Amounts in USD; None when not reported.

    `usage` and its windows are what the provider billed from its credits; `byok_usage*`
    is spend through the operator's own provider keys (BYOK), billed elsewhere. With
    `include_byok_in_limit` the provider counts BYOK spend against the key's limit too:
    `counted_usage` and `counted_window` are the counters that limit is judged on."""

    usage: float
    label: str | None = None
    name: str | None = None
    hash: str | None = None
    limit: float | None = None
    limit_remaining: float | None = None
    limit_reset: str | None = None
    usage_daily: float | None = None
    usage_weekly: float | None = None
    usage_monthly: float | None = None
    disabled: bool = False
    is_free_tier: bool | None = None
    is_management_key: bool | None = None
    expires_at: datetime | None = None
    byok_usage: float | None = None
    byok_usage_daily: float | None = None
    byok_usage_weekly: float | None = None
    byok_usage_monthly: float | None = None
    include_byok_in_limit: bool | None = None
    workspace_id: str | None = None

    @property
    def display_name(self) -> str:
        return self.name or self.label or (self.hash[:8] if self.hash else "key")

    @property
    def byok_counted(self) -> bool:
        """True when the provider counts this key's BYOK spend against its limit and the
        BYOK counter is known."""
        return self.include_byok_in_limit is True and self.byok_usage is not None

    @property
    def counted_usage(self) -> float:
        """Lifetime spend as the provider counts it against the key's limit: `usage`, plus
        `byok_usage` when `include_byok_in_limit` is true. Still a lifetime counter."""
        if self.byok_counted and self.byok_usage is not None:
            return self.usage + self.byok_usage
        return self.usage

    def counted_window(
        self, name: Literal["usage_daily", "usage_weekly", "usage_monthly"]
    ) -> float | None:
        """`usage_daily`/`_weekly`/`_monthly` as the provider counts it against the limit
        (plus the BYOK window when BYOK counts; None when that BYOK window is unknown, so
        a window never reads lower than the lifetime counter it goes with)."""
        value: float | None = getattr(self, name)
        if value is None or not self.byok_counted:
            return value
        byok: float | None = getattr(self, f"byok_{name}")
        return None if byok is None else value + byok


@dataclass(frozen=True, slots=True)
class Credits:
    """The account's credits (management key): balance = total_credits - total_usage."""

    total_credits: float
    total_usage: float

    @property
    def balance(self) -> float:
        return self.total_credits - self.total_usage


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything one poll learned. `key` is the watched key (None with only a management
    key); `credits` and `keys` need a management key."""

    taken_at: datetime
    key: KeyUsage | None = None
    credits: Credits | None = None
    keys: tuple[KeyUsage, ...] = field(default_factory=tuple)

    @property
    def scope(self) -> Scope:
        """Spend is the watched key's when there is one, else the whole account's."""
        return "key" if self.key is not None else "account"

    @property
    def usage(self) -> float:
        """The lifetime spend counter that burn rates are computed from. For the watched
        key it is the counter its limit is judged on (`KeyUsage.counted_usage`: BYOK spend
        included when the provider counts it), so `key_limit` projects from the same
        spend the provider does. For the account it is OpenRouter-billed spend."""
        if self.key is not None:
            return self.key.counted_usage
        if self.credits is not None:
            return self.credits.total_usage
        return sum(k.usage for k in self.keys)

    @property
    def byok_counted(self) -> bool:
        """True when `usage` and its windows include BYOK spend (the watched key counts it
        against its limit)."""
        return self.key is not None and self.key.byok_counted

    @property
    def byok_usage(self) -> float | None:
        """Lifetime BYOK spend, shown beside `usage`: the watched key's, or the sum over
        the account's keys (None when unknown for any of them)."""
        return self._byok("byok_usage")

    def _byok(self, name: str) -> float | None:
        if self.key is not None:
            value: float | None = getattr(self.key, name)
            return value
        values = [getattr(k, name) for k in self.keys]
        if not values or any(v is None for v in values):
            return None
        return float(sum(values))

    def _window(
        self, name: Literal["usage_daily", "usage_weekly", "usage_monthly"]
    ) -> float | None:
        if self.key is not None:
            return self.key.counted_window(name)
        values = [getattr(k, name) for k in self.keys]
        if not values or any(v is None for v in values):
            return None
        return float(sum(values))

    @property
    def balance(self) -> float | None:
        """The tighter of the account balance and the watched key's remaining limit, when
        that limit never resets (`limit_reset` null). A limit that resets daily, weekly or
        monthly is a budget per period (the `key_limit` rule), not credit: counting it as
        the balance made "$1.60 of credit lasts 1.6 days" of a $2/day key on a $1,000
        account."""
        candidates = []
        if self.credits is not None:
            candidates.append(self.credits.balance)
        key = self.key
        if key is not None and key.limit_remaining is not None and key.limit_reset is None:
            candidates.append(key.limit_remaining)
        return min(candidates) if candidates else None

    def to_sample(self) -> Sample:
        if self.key is None:
            sums = _account_sums(self.keys)
            windows = sums[:3]
            byok = sums[3:]
        else:
            windows = tuple(self._window(n) for n in _WINDOWS)
            byok = tuple(self._byok(n) for n in _BYOK)
        return Sample(
            ts=self.taken_at,
            usage=self.usage,
            usage_daily=windows[0],
            usage_weekly=windows[1],
            usage_monthly=windows[2],
            balance=self.balance,
            total_credits=self.credits.total_credits if self.credits else None,
            key_limit=self.key.limit if self.key else None,
            key_limit_remaining=self.key.limit_remaining if self.key else None,
            byok_usage=byok[0],
            byok_usage_daily=byok[1],
            byok_usage_monthly=byok[2],
            byok_counted=self.byok_counted,
        )


_WINDOWS: tuple[Literal["usage_daily", "usage_weekly", "usage_monthly"], ...] = (
    "usage_daily",
    "usage_weekly",
    "usage_monthly",
)
_BYOK = ("byok_usage", "byok_usage_daily", "byok_usage_monthly")


def _account_sums(keys: Sequence[KeyUsage]) -> tuple[float | None, ...]:
    """The account's windows and BYOK counters (`_WINDOWS`, then `_BYOK`) summed over its
    keys, each None when any key's is unknown or there is no key. Each is a C-level walk
    (hundreds of keys a poll), summed in the listing's order; a None stops its sum."""
    if not keys:
        return (None,) * 6
    return tuple(_total(map(get, keys)) for get in _COUNTERS)


def _total(values: Iterator[float | None]) -> float | None:
    try:
        return float(sum(values))  # type: ignore[arg-type]
    except TypeError:  # a None among them: unknown for the account
        return None


_COUNTERS = tuple(operator.attrgetter(name) for name in (*_WINDOWS, *_BYOK))


@dataclass(frozen=True, slots=True)
class Sample:
    """The row kept for every poll: the usage counter, the provider's own windows, balance.
    `byok_*` is BYOK spend shown on its own; `byok_counted` says whether `usage` and its
    windows already include it (the watched key's limit counts BYOK spend)."""

    ts: datetime
    usage: float
    usage_daily: float | None = None
    usage_weekly: float | None = None
    usage_monthly: float | None = None
    balance: float | None = None
    total_credits: float | None = None
    key_limit: float | None = None
    key_limit_remaining: float | None = None
    byok_usage: float | None = None
    byok_usage_daily: float | None = None
    byok_usage_monthly: float | None = None
    byok_counted: bool = False


@dataclass(frozen=True, slots=True)
class KnownKey:
    """A key of the account as the watchdog follows it, by hash: its latest name, label and
    workspace; when it was first and last listed; `deleted_at` once a listing no longer
    had it (told once, then no longer judged)."""

    hash: str
    name: str
    label: str | None = None
    workspace_id: str | None = None
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    deleted_at: datetime | None = None
    # The first listing that missed it (memory only): one missing listing is not a
    # deletion — a listing paged by offset can skip a key when another one is deleted.
    missing_since: datetime | None = None


# A key sample's fields after its time (KeySample.counters).
KeyCounters: TypeAlias = tuple[
    float, float | None, float | None, float | None, float | None, float | None, str | None, bool
]


@dataclass(frozen=True, slots=True)
class KeySample:
    """One key's counters at one poll (see Sample). Kept when they changed, with the last
    unchanged one before a change, so a restart rebuilds the same curve."""

    hash: str
    ts: datetime
    usage: float
    usage_daily: float | None = None
    usage_weekly: float | None = None
    usage_monthly: float | None = None
    key_limit: float | None = None
    key_limit_remaining: float | None = None
    limit_reset: str | None = None
    disabled: bool = False

    def to_sample(self) -> Sample:
        """As a Sample, for burn's measure. A key's limit that resets is still its limit
        (`key_limit` is judged per key whatever its reset); no balance per key."""
        return Sample(
            ts=self.ts,
            usage=self.usage,
            usage_daily=self.usage_daily,
            usage_weekly=self.usage_weekly,
            usage_monthly=self.usage_monthly,
            key_limit=self.key_limit,
            key_limit_remaining=self.key_limit_remaining,
        )

    def at(self, ts: datetime) -> KeySample:
        """The same counters at another time (dataclasses.replace, without its cost)."""
        return KeySample(self.hash, ts, *self.counters())

    def counters(self) -> KeyCounters:
        """Every field after `ts`, in their order: what `same_counters` compares."""
        return (
            self.usage,
            self.usage_daily,
            self.usage_weekly,
            self.usage_monthly,
            self.key_limit,
            self.key_limit_remaining,
            self.limit_reset,
            self.disabled,
        )

    def same_counters(self, other: KeySample) -> bool:
        return self.counters() == other.counters()


@dataclass(frozen=True, slots=True)
class CapChange:
    """One change of a key's provider-side limit, for the audit: old → new, who, when."""

    at: datetime
    hash: str
    name: str
    old_limit: float | None
    old_reset: str | None
    new_limit: float | None
    new_reset: str | None
    actor: str
    reason: str


# -- findings and alerts ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Finding:
    """One rule's judgement. `value` and `threshold` share a unit (USD, days, USD/h, s)."""

    rule: str
    severity: Severity
    value: float | None
    threshold: float | None
    message: str
    key: str = WATCHED
    window: str = ""
    unit: str = "usd"
    predicted: bool = False
    basis: str = ""

    @property
    def ident(self) -> tuple[str, str]:
        return (self.rule, self.key)


EventKind = Literal[
    "firing",
    "repeat",
    "escalated",
    "de-escalated",
    "resolved",
    "unsilenced",
    "revoked",
    "armed",
    "notice",
]
Ident = tuple[str, str]


@dataclass(frozen=True, slots=True)
class AlertState:
    """One alert, as persisted between ticks and restarts.

    `last_sent` is when recipients last heard of it (None: never). `suppressed` means its
    rule was silenced at the last tick, whether or not a message was held back: when the
    silence ends (expiry or `unsilence`) a finding still firing is sent again. A finding
    that ends under a silence after recipients heard of it stays here with `resolved_at`
    set, its resolution held until the silence ends; it is no longer firing."""

    rule: str
    key: str
    severity: Severity
    since: datetime
    last_sent: datetime | None
    message: str
    value: float | None = None
    threshold: float | None = None
    suppressed: bool = False  # its rule was silenced at the last tick
    resolved_at: datetime | None = None  # ended under a silence; resolution held

    @property
    def ident(self) -> Ident:
        return (self.rule, self.key)

    @property
    def firing(self) -> bool:
        """Still firing (not an ended finding whose resolution a silence holds)."""
        return self.resolved_at is None


@dataclass(frozen=True, slots=True)
class Silence:
    """Notifications for `rule` stop until `until` (the kill switch is not affected)."""

    rule: str
    until: datetime
    reason: str = ""
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """A change worth telling someone about. `severity` routes it to targets; `at` is
    when it happened (every message says so)."""

    kind: EventKind
    rule: str
    key: str
    severity: Severity
    since: datetime
    at: datetime
    message: str
    finding: Finding | None = None
    previous: Severity | None = None
    held_until: datetime | None = None  # held by a silence that ended then (`at` is earlier)


@dataclass(frozen=True, slots=True)
class Recipient:
    """A notification target as routing sees it: a stable id and the severities it takes."""

    id: str
    severities: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """A message for one target, as written to the outbox."""

    created_at: datetime
    target: str
    severity: str
    kind: str
    rule: str
    title: str
    body: str


# -- polling ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PollHealth:
    """What is known about polling: for staleness, /healthz, the view and metrics. The one
    place data age is computed."""

    started_at: datetime
    last_success: datetime | None = None
    last_error: str | None = None
    last_error_kind: str | None = None
    last_error_at: datetime | None = None
    consecutive_failures: int = 0
    polls: int = 0
    errors_by_kind: tuple[tuple[str, int], ...] = ()
    not_before: datetime | None = None  # Retry-After: no poll before this
    auth_error: str | None = None  # set while the provider rejects the key
    budget_error: str | None = None  # set while a provider-side budget refuses the key

    def data_age(self, now: datetime) -> float | None:
        """Seconds since the last successful poll (0 if it seems to be in the future)."""
        if self.last_success is None:
            return None
        return max(0.0, (now - self.last_success).total_seconds())

    def fresh(self, now: datetime, stale_after: timedelta) -> bool:
        age = self.data_age(now)
        return age is not None and age <= stale_after.total_seconds()

    def failing_tick(self) -> str | None:
        """The kind of the tick's own failure ("state": the state could not be written,
        "tick": anything else) when the latest tick failed that way, else None."""
        if self.last_error_kind not in TICK_FAILURES or self.last_error_at is None:
            return None
        if self.last_success is not None and self.last_success >= self.last_error_at:
            return None
        return self.last_error_kind

    def succeeded(self, now: datetime, auth_error: str | None = None) -> PollHealth:
        """After a successful poll at `now` (`auth_error`: the key answered but is
        disabled)."""
        return replace(
            self,
            last_success=now,
            polls=self.polls + 1,
            consecutive_failures=0,
            not_before=None,
            auth_error=auth_error,
            budget_error=None,
        )

    def failed(
        self,
        now: datetime,
        kind: str,
        message: str,
        *,
        retry_after: float | None = None,
        auth: bool = False,
        budget: bool = False,
    ) -> PollHealth:
        """After a failed poll (or tick) at `now`: counted by kind; a provider's request to
        wait is honoured; a rejected key, or a provider-side budget reached, is remembered
        until a poll succeeds."""
        counts = dict(self.errors_by_kind)
        counts[kind] = counts.get(kind, 0) + 1
        return replace(
            self,
            polls=self.polls + 1,
            consecutive_failures=self.consecutive_failures + 1,
            errors_by_kind=tuple(sorted(counts.items())),
            last_error=message,
            last_error_kind=kind,
            last_error_at=now,
            not_before=now + timedelta(seconds=retry_after) if retry_after is not None else None,
            auth_error=message if auth else self.auth_error,
            budget_error=message if budget else self.budget_error,
        )


# -- the permit ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Trip:
    """A manual stop: `budget-watchdog trip --reason TEXT`."""

    reason: str
    by: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Override:
    """What operators said by hand: a trip in force, and when `arm` was last asked for."""

    trip: Trip | None = None
    armed_at: datetime | None = None


# -- policy -------------------------------------------------------------------------------
# The config's decision-relevant part as plain values. Defaults match the config's (a test
# keeps them equal), so core tests can build a policy with just the fields they care about.


KeyAction = Literal["alert", "revoke", "disable"]


@dataclass(frozen=True, slots=True)
class KeyBudget:
    """One [[budget.keys]] entry: the limits of the keys it matches, and what their
    findings do (`alert` only; `revoke` that key's permit; `disable` that key at the
    provider, which revokes its permit too)."""

    match: str
    daily_limit: float | None = None
    monthly_limit: float | None = None
    action: KeyAction = "alert"

    def matches(self, name: str | None, label: str | None, key_hash: str | None) -> bool:
        """True when `match` is the key's full hash, or a glob matching its name or label
        (case-sensitive, as the provider shows them)."""
        if key_hash is not None and self.match == key_hash:
            return True
        return any(
            text is not None and fnmatch.fnmatchcase(text, self.match) for text in (name, label)
        )


@dataclass(frozen=True, slots=True)
class BudgetPolicy:
    """[budget]: the limits and targets findings are judged against."""

    timezone: str = "UTC"
    tz: tzinfo = UTC
    daily_limit: float | None = None
    monthly_limit: float | None = None
    warn_ratio: float = 0.8
    buffer_days_warning: float = 7.0
    buffer_days_critical: float = 3.0
    min_balance: float = 0.0
    spike_factor: float = 4.0
    spike_min_rate: float = 0.5
    hysteresis: float = 0.05
    stale_after: timedelta = timedelta(minutes=10)
    keys: tuple[KeyBudget, ...] = ()

    def key_budget(
        self, name: str | None, label: str | None, key_hash: str | None
    ) -> KeyBudget | None:
        """The first [[budget.keys]] entry matching a key, or None."""
        return next((k for k in self.keys if k.matches(name, label, key_hash)), None)


@dataclass(frozen=True, slots=True)
class KillswitchPolicy:
    """[killswitch]: what revokes the permit and how long a written permit is good for."""

    revoke_on: tuple[Severity, ...] = ("critical",)
    ttl: timedelta = timedelta(minutes=5)
    latch: bool = False
    on_stale: Literal["revoke", "keep"] = "revoke"
    disable_keys: bool = False


@dataclass(frozen=True, slots=True)
class NotifyPolicy:
    """[notify]: how often alerts repeat and whether an end is announced."""

    repeat_interval: timedelta = timedelta(hours=4)
    send_resolved: bool = True


@dataclass(frozen=True, slots=True)
class Policy:
    """Everything the core decides by."""

    budget: BudgetPolicy = field(default_factory=BudgetPolicy)
    killswitch: KillswitchPolicy = field(default_factory=KillswitchPolicy)
    notify: NotifyPolicy = field(default_factory=NotifyPolicy)
    poll_interval: timedelta = timedelta(seconds=60)
    caps: CapsPolicy = field(default_factory=lambda: CapsPolicy())


@dataclass(frozen=True, slots=True)
class CapsPolicy:
    """[caps]: provider-side key limits the watchdog keeps at `factor` × expected daily
    spend (never below `min_daily`), every `every` when `manage`."""

    manage: bool = False
    factor: float = 1.3
    min_daily: float = 1.0
    every: timedelta = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class TargetHealth:
    """Delivery to one notification target so far."""

    sent: int = 0
    failed: int = 0
    last_ok: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    pending: int = 0

    @property
    def healthy(self) -> bool:
        return self.last_error_at is None or (
            self.last_ok is not None and self.last_ok > self.last_error_at
        )


@dataclass(frozen=True, slots=True)
class PermitChange:
    """One line of the permit's audit trail."""

    at: datetime
    state: str
    by: str
    reason: str
