"""The provider interface and its typed errors, shared by every provider."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Protocol

from watchdog.core.model import Snapshot


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
    """One row of per-day, per-model spend (OpenRouter's /activity)."""

    date: date
    model: str
    provider_name: str
    usage: float
    requests: int
    prompt_tokens: int
    completion_tokens: int


class Provider(Protocol):
    """Reads spend. `fetch` returns a Snapshot or raises a ProviderError; `admin` is the
    account's management side when a management key is configured, else None."""

    def fetch(self) -> Snapshot: ...

    def admin(self) -> AccountAdmin | None: ...

    def close(self) -> None: ...


class AccountAdmin(Protocol):
    """What a management key adds: per-model activity, disabling keys, and finding the
    watched key among the account's keys by its hash (after we disabled it, its own /key
    answers 401)."""

    def activity(self) -> list[ActivityRow]: ...

    def set_key_disabled(self, key_hash: str, disabled: bool) -> None: ...

    def remember_watched_key(self, key_hash: str) -> None: ...
