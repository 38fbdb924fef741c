"""What one poll saw (`Snapshot`) and the compact row kept for every poll (`Sample`).

Plain frozen dataclasses, no I/O: the provider builds Snapshots, the store keeps Samples,
`burn` measures over Samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

Scope = Literal["key", "account"]


@dataclass(frozen=True)
class KeyUsage:
    """One API key as the provider describes it. Amounts in USD; None when not reported."""

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

    @property
    def display_name(self) -> str:
        return self.name or self.label or (self.hash[:8] if self.hash else "key")


@dataclass(frozen=True)
class Credits:
    """The account's credits (management key): balance = total_credits - total_usage."""

    total_credits: float
    total_usage: float

    @property
    def balance(self) -> float:
        return self.total_credits - self.total_usage


@dataclass(frozen=True)
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
        """The lifetime spend counter that burn rates are computed from."""
        if self.key is not None:
            return self.key.usage
        if self.credits is not None:
            return self.credits.total_usage
        return sum(k.usage for k in self.keys)

    def _window(self, name: str) -> float | None:
        if self.key is not None:
            value: float | None = getattr(self.key, name)
            return value
        values = [getattr(k, name) for k in self.keys]
        if not values or any(v is None for v in values):
            return None
        return float(sum(values))

    @property
    def balance(self) -> float | None:
        """The tighter of the account balance and the watched key's remaining limit."""
        candidates = []
        if self.credits is not None:
            candidates.append(self.credits.balance)
        if self.key is not None and self.key.limit_remaining is not None:
            candidates.append(self.key.limit_remaining)
        return min(candidates) if candidates else None

    def to_sample(self) -> Sample:
        return Sample(
            ts=self.taken_at,
            usage=self.usage,
            usage_daily=self._window("usage_daily"),
            usage_weekly=self._window("usage_weekly"),
            usage_monthly=self._window("usage_monthly"),
            balance=self.balance,
            total_credits=self.credits.total_credits if self.credits else None,
            key_limit=self.key.limit if self.key else None,
            key_limit_remaining=self.key.limit_remaining if self.key else None,
        )


@dataclass(frozen=True)
class Sample:
    """The row kept for every poll: the usage counter, the provider's own windows, balance."""

    ts: datetime
    usage: float
    usage_daily: float | None = None
    usage_weekly: float | None = None
    usage_monthly: float | None = None
    balance: float | None = None
    total_credits: float | None = None
    key_limit: float | None = None
    key_limit_remaining: float | None = None
