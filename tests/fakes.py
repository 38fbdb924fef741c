"""Hand-written fakes for the narrow interfaces (clock, provider)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from watchdog.providers.base import ProviderError
from watchdog.core.model import KeyUsage, Snapshot


class Clock:
    """A clock that moves only when told to."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> datetime:
        self.now += timedelta(**kwargs)
        return self.now


class ScriptedProvider:
    """Answers fetch() from a script: a usage number, a Snapshot, or an error to raise."""

    def __init__(
        self, clock: Clock, script: Iterable[float | Snapshot | ProviderError] = ()
    ) -> None:
        self.clock = clock
        self.script = list(script)
        self.calls = 0
        self.closed = False

    def fetch(self) -> Snapshot:
        self.calls += 1
        item = self.script.pop(0)
        if isinstance(item, ProviderError):
            raise item
        if isinstance(item, Snapshot):
            return item
        return Snapshot(taken_at=self.clock(), key=KeyUsage(usage=float(item)))

    def close(self) -> None:
        self.closed = True
