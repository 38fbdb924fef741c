"""Delivering the outbox: every message was written to the store before it is sent.

Per target, messages go out oldest first; a failure leaves the message at the head of its
target's queue and retries it with exponential backoff, so a target that is down neither
blocks the others nor the loop, and receives everything, in order, when it is back. A
message older than GIVE_UP_AFTER is given up loudly (logged, counted, shown in status),
never silently.

Delivery is at-least-once: a crash in the instant between a successful send and its
`sent` mark repeats that one message after restart; a crash anywhere else loses nothing
and repeats nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from watchdog.notify import DeliveryError, Target, Transport
from watchdog.store import Store

BACKOFF_FIRST = timedelta(seconds=30)
BACKOFF_MAX = timedelta(hours=1)
GIVE_UP_AFTER = timedelta(hours=24)


def backoff(attempts: int) -> timedelta:
    """Wait before retry number `attempts` (1-based): 30 s, 1 min, 2 min, … 1 h."""
    wait: timedelta = BACKOFF_FIRST * (2 ** min(20, max(0, attempts - 1)))
    return min(BACKOFF_MAX, wait)


class Outbox:
    """Sends what the store's outbox holds through `transport`."""

    def __init__(
        self,
        store: Store,
        transport: Transport,
        targets: Sequence[Target],
        clock: Callable[[], datetime],
        log: Any,
    ) -> None:
        self.store = store
        self.transport = transport
        self.targets = {t.id: t for t in targets}
        self.clock = clock
        self.log = log

    def deliver(self) -> int:
        """Send every message that is due; return how many were delivered."""
        now = self.clock()
        delivered = 0
        for target_id in self.store.pending_targets():
            target = self.targets.get(target_id)
            if target is None:
                self._orphaned(target_id, now)
                continue
            delivered += self._drain(target, now)
        return delivered

    def _drain(self, target: Target, now: datetime) -> int:
        sent = 0
        while True:
            message = self.store.next_pending(target.id)
            if message is None or message.next_attempt_at > now:
                return sent
            try:
                row = message.row
                self.transport.send(
                    target, row.title, row.body, row.severity, row.kind in ("resolved", "armed")
                )
            except DeliveryError as exc:
                attempts = message.attempts + 1
                give_up = now - message.row.created_at >= GIVE_UP_AFTER
                retry_at = None if give_up else now + backoff(attempts)
                with self.store.unit() as unit:
                    unit.mark_failed(message.id, target.id, now, str(exc), retry_at)
                if give_up:
                    self.log.error(
                        "notify_gave_up",
                        target=target.shown,
                        title=message.row.title,
                        attempts=attempts,
                        error=str(exc),
                    )
                else:
                    self.log.warning(
                        "notify_failed",
                        target=target.shown,
                        title=message.row.title,
                        attempts=attempts,
                        error=str(exc),
                        retry_in_s=(retry_at - now).total_seconds() if retry_at else None,
                    )
                return sent
            with self.store.unit() as unit:
                unit.mark_sent(message.id, target.id, now)
            self.log.info(
                "notified",
                target=target.shown,
                title=message.row.title,
                attempts=message.attempts + 1,
            )
            sent += 1

    def _orphaned(self, target_id: str, now: datetime) -> None:
        while (message := self.store.next_pending(target_id)) is not None:
            error = "target is no longer in the config"
            with self.store.unit() as unit:
                unit.mark_failed(message.id, target_id, now, error, None)
            self.log.error("notify_gave_up", target=target_id, title=message.row.title, error=error)
