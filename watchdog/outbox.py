"""Delivering the outbox: every message was written to the store before it is sent.

Each target is drained on its own thread, oldest message first, so a slow target (Apprise
paces e-mail 5.5 s a message) delays only its own messages, never another target's. A
failure leaves the message at the head of its target's queue and retries it with
exponential backoff, so a target that is down neither blocks the others nor the loop, and
receives everything, in order, when it is back. While any target is still busy, messages
written meanwhile for the others go out too. A message older than GIVE_UP_AFTER is given
up loudly (logged, counted, shown in status), never silently. A message that goes out
more than a couple of minutes after it was written says how late it is.

The store serialises the threads' writes (one connection behind a lock, a transaction
per mark). Delivery is at-least-once: a crash in the instant between a successful send
and its `sent` mark repeats that one message after restart; a crash anywhere else loses
nothing and repeats nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from watchdog.core.messages import delivered_late
from watchdog.notify import DeliveryError, Target, Transport, scrub
from watchdog.store import OutboxMessage, Store

BACKOFF_FIRST = timedelta(seconds=30)
BACKOFF_MAX = timedelta(hours=1)
GIVE_UP_AFTER = timedelta(hours=24)
# While a target is still being drained, look this often for messages due elsewhere.
RECHECK_S = 0.2
# How long a claim on a message lasts: well above one send (Apprise's transports time out
# after 15 s, a few connection attempts at most) and any clock difference between hosts.
# An instance that dies mid-send delays that message by at most this much.
CLAIM_HOLD = timedelta(seconds=90)


def backoff(attempts: int) -> timedelta:
    """Wait before retry number `attempts` (1-based): 30 s, 1 min, 2 min, … 1 h."""
    wait: timedelta = BACKOFF_FIRST * (2 ** min(20, max(0, attempts - 1)))
    return min(BACKOFF_MAX, wait)


class Outbox:
    """Sends what the store's outbox holds through `transport`, each target on its own
    thread. `linger_s` bounds how long `deliver` keeps starting work for messages written
    while it runs."""

    def __init__(
        self,
        store: Store,
        transport: Transport,
        targets: Sequence[Target],
        clock: Callable[[], datetime],
        log: Any,
        *,
        linger_s: float = 120.0,
        instance: str = "local",
    ) -> None:
        self.store = store
        self.transport = transport
        self.targets = {t.id: t for t in targets}
        self.clock = clock
        self.log = log
        self.linger_s = linger_s
        self.instance = instance  # who claims the messages it sends

    def deliver(self) -> int:
        """Send every message that is due, each target on its own thread; return how many
        were delivered. Returns once no target is busy and none has a message due."""
        started = time.monotonic()
        workers: dict[str, threading.Thread] = {}
        delivered: list[int] = []
        broken: set[str] = set()  # a drain that raised is not restarted in this call
        self._start(workers, delivered, broken)
        while True:
            busy = [w for w in workers.values() if w.is_alive()]
            if busy:
                busy[0].join(RECHECK_S)
            if time.monotonic() - started > self.linger_s:
                if not busy:
                    return sum(delivered)
                continue
            # Messages written meanwhile, or due now, for a target that is not busy.
            started_now = self._start(workers, delivered, broken)
            if not busy and not started_now:
                return sum(delivered)

    def _start(
        self, workers: dict[str, threading.Thread], delivered: list[int], broken: set[str]
    ) -> int:
        """Start a drain for every target with a message due and no drain running; return
        how many were started. Messages for a target no longer configured are given up."""
        count = 0
        for target_id in self.store.pending_targets(due_at=self.clock()):
            worker = workers.get(target_id)
            if target_id in broken or (worker is not None and worker.is_alive()):
                continue
            target = self.targets.get(target_id)
            if target is None:
                self._orphaned(target_id, self.clock())
                continue
            worker = threading.Thread(
                target=self._drain_safely,
                args=(target, delivered, broken),
                name=f"outbox-{target_id}",
                daemon=True,
            )
            workers[target_id] = worker
            worker.start()
            count += 1
        return count

    def _drain_safely(self, target: Target, delivered: list[int], broken: set[str]) -> None:
        try:
            delivered.append(self._drain(target))
        except Exception as exc:  # a bug or a store failure: said, and the rest goes on
            broken.add(target.id)
            self.log.error(
                "notify_drain_failed", target=target.shown, error=self._scrub(target, str(exc))
            )

    def _drain(self, target: Target) -> int:
        sent = 0
        while True:
            now = self.clock()
            # Claimed first (see Store.claim): of instances sharing the outbox, exactly
            # one sends each message; one that dies mid-send leaves it to the next.
            message = self.store.claim_next(target.id, self.instance, now, CLAIM_HOLD)
            if message is None:
                return sent
            if not self._send(target, message, now):
                return sent
            sent += 1

    def _send(self, target: Target, message: OutboxMessage, now: datetime) -> bool:
        """One attempt at one message; True when it was delivered."""
        row = message.row
        body = delivered_late(row.body, (now - row.created_at).total_seconds())
        try:
            self.transport.send(
                target, row.title, body, row.severity, row.kind in ("resolved", "armed")
            )
        except DeliveryError as exc:
            error = self._scrub(target, str(exc))
            attempts = message.attempts + 1
            give_up = now - row.created_at >= GIVE_UP_AFTER
            retry_at = None if give_up else now + backoff(attempts)
            with self.store.unit() as unit:
                unit.mark_failed(message.id, target.id, now, error, retry_at)
            if give_up:
                self.log.error(
                    "notify_gave_up",
                    target=target.shown,
                    title=row.title,
                    attempts=attempts,
                    error=error,
                )
            else:
                self.log.warning(
                    "notify_failed",
                    target=target.shown,
                    title=row.title,
                    attempts=attempts,
                    error=error,
                    retry_in_s=(retry_at - now).total_seconds() if retry_at else None,
                )
            return False
        sent_at = self.clock()
        with self.store.unit() as unit:
            unit.mark_sent(message.id, target.id, sent_at)
        self.log.info(
            "notified",
            target=target.shown,
            title=row.title,
            attempts=message.attempts + 1,
            late_s=round((sent_at - row.created_at).total_seconds(), 1),
        )
        return True

    def _scrub(self, target: Target, text: str) -> str:
        """`text` without any part of the target's URL that its shown form masks."""
        return scrub(target.url, text)

    def _orphaned(self, target_id: str, now: datetime) -> None:
        while (message := self.store.next_pending(target_id)) is not None:
            error = "target is no longer in the config"
            with self.store.unit() as unit:
                unit.mark_failed(message.id, target_id, now, error, None)
            self.log.error("notify_gave_up", target=target_id, title=message.row.title, error=error)
