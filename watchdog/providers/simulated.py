"""A deterministic simulated OpenRouter account, driven by an injectable clock.

Spend follows a closed-form curve (a daily rhythm around a base rate, plus the profile's
events), so any moment's counters are exact and repeatable: the demo, the tests and the
benchmarks all see the same account. Profiles: `steady`, `runaway` (a loop starts burning
fast a few minutes in), `topup` (low credit, then a top-up).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from watchdog.core.audit import Endpoint, Price
from watchdog.core.model import Credits, KeyUsage, Snapshot
from watchdog.providers.base import (
    ActivityRow,
    AuthError,
    KeyIdentity,
    Workspace,
    WorkspaceBudget,
)

HOUR = 3600.0
MODELS = (
    ("anthropic/claude-sonnet-4", "Anthropic", 0.55),
    ("openai/gpt-4.1-mini", "OpenAI", 0.30),
    ("google/gemini-2.5-flash", "Google", 0.15),
)
# The simulated price list (USD per million tokens, input and output): what the demo's
# audit prices against. Each model has a cheaper endpoint than the one it is used at,
# so the audit finds real-looking savings.
PER_MILLION = 1_000_000
PRICES = {
    "anthropic/claude-sonnet-4": (("Anthropic", 3.0, 15.0), ("Amazon Bedrock", 2.7, 13.5)),
    "openai/gpt-4.1-mini": (("OpenAI", 0.40, 1.60), ("Azure", 0.36, 1.44)),
    "google/gemini-2.5-flash": (("Google", 0.30, 2.50), ("Google AI Studio", 0.27, 2.25)),
    "meta-llama/llama-3.3-70b-instruct": (("DeepInfra", 0.13, 0.40),),
}
SIM_KEY_HASH = "5f1e0c3a9d2b4e6f8a7c1b0d3e5f7a9c2b4d6e8f0a1c3e5a7b9d1f3e5a7c9b1d"
SIM_KEY_LABEL = "sk-or-v1-sim...c9b"
SIM_WORKSPACE = "00000000-0000-0000-0000-000000000000"


@dataclass(frozen=True)
class Profile:
    """How a simulated account spends. Rates in USD/hour, amounts in USD."""

    name: str
    base_rate: float
    balance: float
    runaway_after: timedelta | None = None
    runaway_rate: float = 0.0
    topup_after: timedelta | None = None
    topup_amount: float = 0.0
    description: str = ""


PROFILES = {
    "steady": Profile(
        "steady",
        base_rate=0.40,
        balance=150.0,
        description="about $9.60/day with a daily rhythm, $150 of credit",
    ),
    "runaway": Profile(
        "runaway",
        base_rate=0.40,
        balance=75.0,
        runaway_after=timedelta(minutes=5),
        runaway_rate=30.0,
        description="steady, then 5 minutes in a loop starts burning $30/h",
    ),
    "topup": Profile(
        "topup",
        base_rate=0.40,
        balance=30.0,
        topup_after=timedelta(minutes=30),
        topup_amount=100.0,
        description="$30 of credit (about 3 days), topped up by $100 after 30 minutes",
    ),
}


class AcceleratedClock:
    """A clock that starts at `start` and runs `speed` times faster than real time."""

    def __init__(self, start: datetime, speed: float = 1.0) -> None:
        self._start = start
        self._speed = speed
        self._origin = time.monotonic()

    def __call__(self) -> datetime:
        return self._start + timedelta(seconds=(time.monotonic() - self._origin) * self._speed)


class SimulatedAccount:
    """A provider whose spend is a function of the clock. `history` is how long the
    account has been spending before `start`, so window counters look lived-in."""

    def __init__(
        self,
        profile: Profile | str,
        clock: Callable[[], datetime],
        *,
        start: datetime | None = None,
        history: timedelta = timedelta(days=40),
    ) -> None:
        self.profile = PROFILES[profile] if isinstance(profile, str) else profile
        self._clock = clock
        self.start = start or clock()
        self._origin = self.start - history
        self._paused: list[tuple[datetime, datetime | None]] = []  # key disabled spans
        self._credits_at_start = self._raw_usage(self.start) + self.profile.balance
        self._limit: tuple[float | None, str | None] = (None, None)  # set by caps --apply

    # The raw curve: cumulative spend since the origin, ignoring disabled spans.
    def _raw_usage(self, t: datetime) -> float:
        p = self.profile
        hours = (t - self._origin).total_seconds() / HOUR
        period = 24.0
        base = p.base_rate * (
            hours - 0.5 * period / (2 * math.pi) * math.cos(2 * math.pi * hours / period)
        )
        base -= p.base_rate * (-0.5 * period / (2 * math.pi))  # zero at the origin
        extra = 0.0
        if p.runaway_after is not None:
            began = self.start + p.runaway_after
            extra = p.runaway_rate * max(0.0, (t - began).total_seconds() / HOUR)
        return base + extra

    def usage_at(self, t: datetime) -> float:
        """Lifetime spend at `t`, with no spend while the key was disabled."""
        used = self._raw_usage(t)
        for began, ended in self._paused:
            if t <= began:
                continue
            stop = min(t, ended) if ended is not None else t
            used -= self._raw_usage(stop) - self._raw_usage(began)
        return used

    def credits_at(self, t: datetime) -> float:
        p = self.profile
        topped = p.topup_after is not None and t >= self.start + p.topup_after
        return self._credits_at_start + (p.topup_amount if topped else 0.0)

    def fetch(self) -> Snapshot:
        now = self._clock()
        used = self.usage_at(now)
        midnight = datetime(now.year, now.month, now.day, tzinfo=UTC)
        monday = midnight - timedelta(days=now.weekday())
        first = midnight.replace(day=1)
        disabled = bool(self._paused and self._paused[-1][1] is None)
        limit, reset = self._limit
        window = {"daily": midnight, "weekly": monday, "monthly": first}.get(reset or "")
        counted = used - self.usage_at(window) if window is not None else used
        key = KeyUsage(
            limit=limit,
            limit_remaining=None if limit is None else round(max(0.0, limit - counted), 6),
            limit_reset=reset,
            usage=round(used, 6),
            label=SIM_KEY_LABEL,
            name="simulated batch key",
            hash=SIM_KEY_HASH,
            usage_daily=round(used - self.usage_at(midnight), 6),
            usage_weekly=round(used - self.usage_at(monday), 6),
            usage_monthly=round(used - self.usage_at(first), 6),
            disabled=disabled,
            is_free_tier=False,
            is_management_key=False,
            byok_usage=0.0,
            byok_usage_daily=0.0,
            byok_usage_weekly=0.0,
            byok_usage_monthly=0.0,
            include_byok_in_limit=False,
        )
        credits = Credits(total_credits=round(self.credits_at(now), 6), total_usage=key.usage)
        return Snapshot(taken_at=now, key=key, credits=credits, keys=(key,))

    def list_keys(self) -> list[KeyUsage]:
        """The account's one key."""
        key = self.fetch().key
        return [key] if key is not None else []

    def workspaces(self) -> list[Workspace]:
        return [Workspace(SIM_WORKSPACE, "default", "Default")]

    def update_key_limit(
        self, key_hash: str, limit: float | None, limit_reset: str | None
    ) -> KeyUsage:
        if key_hash != SIM_KEY_HASH:
            raise AuthError(f"PATCH /keys/{key_hash[:8]}…: HTTP 404: no such key", status=404)
        self._limit = (limit, limit_reset)
        return self.list_keys()[0]

    def workspace_budget(self, workspace_id: str, interval: str) -> WorkspaceBudget | None:
        return None  # the simulated account keeps no workspace budgets

    def set_workspace_budget(
        self, workspace_id: str, interval: str, limit_usd: float
    ) -> WorkspaceBudget:
        return WorkspaceBudget(workspace_id, interval, limit_usd, interval)

    def activity(
        self, *, api_key_hash: str | None = None, day: date | None = None
    ) -> list[ActivityRow]:
        """The last 30 complete UTC days, split over three models (all of the one key)."""
        if api_key_hash not in (None, SIM_KEY_HASH):
            return []
        return [r for r in self._activity() if day is None or r.date == day]

    def _activity(self) -> list[ActivityRow]:
        now = self._clock()
        today = date(now.year, now.month, now.day)
        rows = []
        for back in range(30, 0, -1):
            day = today - timedelta(days=back)
            begin = datetime(day.year, day.month, day.day, tzinfo=UTC)
            spent = self.usage_at(begin + timedelta(days=1)) - self.usage_at(begin)
            for model, provider, share in MODELS:
                usage = round(spent * share, 6)
                requests = int(usage * 400)
                rows.append(
                    ActivityRow(
                        day, model, provider, usage, requests, requests * 900, requests * 300
                    )
                )
        return rows

    def set_key_disabled(self, key_hash: str, disabled: bool) -> None:
        if key_hash != SIM_KEY_HASH:
            raise AuthError(f"PATCH /keys/{key_hash[:8]}…: HTTP 404: no such key", status=404)
        now = self._clock()
        is_disabled = bool(self._paused and self._paused[-1][1] is None)
        if disabled and not is_disabled:
            self._paused.append((now, None))
        elif not disabled and is_disabled:
            self._paused[-1] = (self._paused[-1][0], now)

    def admin(self) -> SimulatedAccount:
        """The simulated account has a management side: activity and key disable."""
        return self

    def list_models(self) -> dict[str, Price | None]:
        """The simulated price list: each model at its first provider's price."""
        return {
            model: Price(endpoints[0][1] / PER_MILLION, endpoints[0][2] / PER_MILLION)
            for model, endpoints in PRICES.items()
        }

    def model_endpoints(self, model: str) -> list[Endpoint] | None:
        endpoints = PRICES.get(model)
        if endpoints is None:
            return None
        return [
            Endpoint(provider, Price(prompt / PER_MILLION, completion / PER_MILLION))
            for provider, prompt, completion in endpoints
        ]

    def remember_watched_key(self, key_hash: str) -> None:
        """The simulated account has one key; nothing to remember."""

    def watched_key_identity(self) -> KeyIdentity:
        """The simulated account's one key can always be disabled."""
        return KeyIdentity(SIM_KEY_HASH, "the simulated account")

    def close(self) -> None:
        return None
