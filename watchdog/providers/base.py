"""The provider interface and its typed errors, shared by every provider."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Protocol

from watchdog.core.model import KeyUsage, Snapshot

# How a key's limit resets (PATCH /keys/{hash} `limit_reset`); None: never, a lifetime limit.
LIMIT_RESETS: tuple[str | None, ...] = (None, "daily", "weekly", "monthly")
# The intervals a workspace budget is kept for (/workspaces/{id}/budgets/{interval}).
BUDGET_INTERVALS: tuple[str, ...] = ("daily", "weekly", "monthly", "lifetime")


class ProviderError(Exception):
    """A poll failed. `kind` names the failure for logs and metrics; `permanent` errors
    (a rejected key) will not heal by retrying; `retry_after` is the provider's request to
    wait, in seconds, when it gave one."""

    kind = "error"
    permanent = False

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after = retry_after


class AuthError(ProviderError):
    """401/403: the key is invalid, disabled, or of the wrong type."""

    kind = "auth"
    permanent = True


class ProviderBudgetExceeded(ProviderError):
    """403 because a budget kept at the provider is used up (an OpenRouter workspace
    budget: "Workspace monthly budget of $500.00 exceeded. Contact your org admin."), not
    because the key is wrong. The provider refuses requests until the budget resets or is
    raised: a budget finding, not an auth one. Not retried within a poll."""

    kind = "provider_budget"
    permanent = False


class RateLimited(ProviderError):
    """429: the provider asks us to slow down."""

    kind = "rate_limited"


class TransientError(ProviderError):
    """5xx, timeouts, connection failures: expected to heal by themselves."""

    kind = "transient"


class BadResponse(ProviderError):
    """The answer was not JSON, or not of the documented shape."""

    kind = "bad_response"


@dataclass(frozen=True)
class ActivityRow:
    """One row of per-day, per-model spend (OpenRouter's /activity). `usage` is what
    OpenRouter billed from its credits, `byok_usage` what ran on the operator's own
    provider keys (`byok_usage_inference`); `spend` is both."""

    date: date
    model: str
    provider_name: str
    usage: float
    requests: int
    prompt_tokens: int
    completion_tokens: int
    byok_usage: float = 0.0
    reasoning_tokens: int = 0

    @property
    def spend(self) -> float:
        """All spend of the row: OpenRouter credits plus BYOK (a BYOK-only row is not $0)."""
        return self.usage + self.byok_usage


@dataclass(frozen=True)
class Workspace:
    """A workspace of the account (GET /workspaces): its `id` (a UUID, what the other
    endpoints filter by), its `slug` (also accepted in paths) and its display `name`."""

    id: str
    slug: str
    name: str


@dataclass(frozen=True)
class WorkspaceBudget:
    """A spending budget kept at the provider for one workspace and one interval.
    `interval` is the one asked for (daily, weekly, monthly or lifetime); `reset_interval`
    is what the provider reports (daily, weekly, monthly, or None for a lifetime budget
    that never resets). Once `limit_usd` is reached the provider refuses the workspace's
    requests with a 403 (ProviderBudgetExceeded)."""

    workspace_id: str
    interval: str
    limit_usd: float
    reset_interval: str | None


@dataclass(frozen=True)
class KeyIdentity:
    """How the watched key is known at the provider: its `hash` (what the provider-side
    kill switch disables) and `source` (how it was found), or `problem`: why the switch
    cannot act on it, in words for one clear log line. `pending`: not known yet; decided
    by the first successful poll."""

    hash: str | None = None
    source: str = ""
    problem: str | None = None
    pending: bool = False

    @property
    def can_disable(self) -> bool:
        return self.hash is not None and self.problem is None


class Provider(Protocol):
    """Reads spend. `fetch` returns a Snapshot or raises a ProviderError; `admin` is the
    account's management side when a management key is configured, else None."""

    def fetch(self) -> Snapshot: ...

    def admin(self) -> AccountAdmin | None: ...

    def close(self) -> None: ...


class KeyIdentifying(Protocol):
    """A provider that can say whether the watched key can be disabled at the provider.
    No I/O: the answer as of the last poll (or the configuration, before one)."""

    def watched_key_identity(self) -> KeyIdentity: ...


class AccountAdmin(Protocol):
    """What a management key adds: every key of the account's workspaces, per-model
    activity (of the account or of one key), disabling keys and setting their limits,
    the workspaces' budgets, and finding the watched key among the account's keys by its
    hash (after we disabled it, its own /key answers 401). Each call returns or raises a
    ProviderError; the setters raise ValueError for a value the provider would refuse."""

    def list_keys(self) -> list[KeyUsage]: ...

    def workspaces(self) -> list[Workspace]: ...

    def activity(
        self, *, api_key_hash: str | None = None, day: date | None = None
    ) -> list[ActivityRow]: ...

    def set_key_disabled(self, key_hash: str, disabled: bool) -> None: ...

    def update_key_limit(
        self, key_hash: str, limit: float | None, limit_reset: str | None
    ) -> KeyUsage: ...

    def workspace_budget(self, workspace_id: str, interval: str) -> WorkspaceBudget | None: ...

    def set_workspace_budget(
        self, workspace_id: str, interval: str, limit_usd: float
    ) -> WorkspaceBudget: ...

    def remember_watched_key(self, key_hash: str) -> None: ...

    def watched_key_identity(self) -> KeyIdentity: ...
