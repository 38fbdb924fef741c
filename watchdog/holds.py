"""Pre-flight reservations in the shared database, for instances on several hosts.

On one host the reservations live in memory and a file beside the state
(`watchdog.server.Reservations`). Instances sharing one PostgreSQL database keep them in
its `holds` table instead, and a reservation is one unit of work: the sums are read, the
pre-flight's verdict taken and the hold inserted inside one transaction, and units are
serialised (the units' advisory lock). Two jobs on two hosts asking at once therefore
cannot both take the same headroom: the second sees the first's hold.

Reads (`GET /preflight`, /status, /metrics, the page, the permit's headroom) answer from
the holds as last read, which a thread of their own reads again every REFRESH_S: no
request waits on the database (nor on a database out of reach: the last holds read stand,
and the tick's own failure already makes every answer no-go). Only `POST /preflight` (reserve) and a
release go to the database, each in one transaction, off the server's event loop
(`blocking`). A reservation or a release that cannot reach the database fails (OSError): a
hold nobody else can see is not granted.
"""

from __future__ import annotations

import math
import threading
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from watchdog.server import MAX_HOLDS, Admit, Hold, HoldsFull
from watchdog.store import Store, StoredHold, StoreError

# How old the holds a read answers from may be (another host's new hold shows after this).
REFRESH_S = 1.0


class SharedReservations:
    """The reservations of every instance on `store` (see the module's doc). `on_change`
    is told the total after this instance's own changes (its permit file follows)."""

    def __init__(
        self,
        store: Store,
        instance_id: str,
        clock: Callable[[], datetime],
        log: Any,
        *,
        capacity: int = MAX_HOLDS,
        on_change: Callable[[float], None] | None = None,
    ) -> None:
        self.store = store
        self.instance_id = instance_id
        self.clock = clock
        self.log = log
        self.capacity = capacity
        self.on_change = on_change
        self._lock = threading.Lock()
        self._last: list[Hold] = []
        self._refreshing = threading.Lock()
        self._unreachable = False
        self._closed = threading.Event()
        self.refresh()
        threading.Thread(target=self._refresh_every, name="holds", daemon=True).start()

    # The server runs reserve and release off its event loop.
    blocking = True

    def refresh(self) -> None:
        """Read the holds now (the database's `until > now` is judged again at each read)."""
        with self._refreshing:
            try:
                holds = [_hold(h) for h in self.store.holds(self.clock())]
            except StoreError as exc:
                if not self._unreachable:
                    self.log.warning("holds_unreadable", error=str(exc))
                self._unreachable = True
                return
            if self._unreachable:
                self.log.info("holds_readable")
            self._unreachable = False
            self._last = holds

    def _read(self, now: datetime) -> list[Hold]:
        return [h for h in self._last if h.until > now]

    def _refresh_every(self) -> None:
        while not self._closed.wait(REFRESH_S):
            try:
                self.refresh()
            except Exception:  # a bug: said, and the next round tries again
                self.log.exception("holds_refresh_failed")

    def close(self) -> None:
        """Stop reading, and close the store (the reservations' own connection)."""
        self._closed.set()
        with self._refreshing:
            self.store.close()

    def total(self, now: datetime) -> float:
        return math.fsum(h.amount for h in self._read(now))

    def by_key(self, now: datetime) -> dict[str, float]:
        out: dict[str, float] = {}
        for h in self._read(now):
            if h.key:
                out[h.key] = out.get(h.key, 0.0) + h.amount
        return out

    def total_for(self, key: str, now: datetime) -> float:
        return math.fsum(h.amount for h in self._read(now) if h.key == key)

    def count(self, now: datetime) -> int:
        return len(self._read(now))

    def active(self, now: datetime) -> list[Hold]:
        return self._read(now)

    def reserve(
        self, amount: float, until: datetime, label: str, key: str, admit: Admit, now: datetime
    ) -> tuple[Hold | None, list[str], float]:
        """See watchdog.server.Holds.reserve: one transaction on the shared database."""
        hold = Hold(uuid.uuid4().hex[:16], amount, until, label, key)
        try:
            with self._lock, self.store.unit() as unit:
                unit.expire_holds(now)
                active = unit.holds(now)
                total = math.fsum(h.amount for h in active)
                held = math.fsum(h.amount for h in active if key and h.key == key)
                reasons = admit(total, held)
                if reasons:
                    return None, reasons, total
                if len(active) >= self.capacity:
                    raise HoldsFull(self.capacity, min(h.until for h in active), total)
                unit.add_hold(
                    StoredHold(hold.id, amount, until, label, key, made_by=self.instance_id)
                )
        except StoreError as exc:
            raise OSError(f"the shared state is out of reach ({exc})") from None
        self._last = sorted([*map(_hold, active), hold], key=lambda h: (h.until, h.id))
        total = math.fsum((total, amount))
        if self.on_change is not None:
            self.on_change(total)
        return hold, [], total

    def release(self, hold_id: str) -> bool:
        try:
            with self._lock, self.store.unit() as unit:
                released = unit.release_hold(hold_id)
        except StoreError as exc:
            raise OSError(f"the shared state is out of reach ({exc})") from None
        self._last = [h for h in self._last if h.id != hold_id]  # gone either way
        if released and self.on_change is not None:
            self.on_change(self.total(self.clock()))
        return released


def _hold(h: StoredHold) -> Hold:
    return Hold(h.id, h.amount, h.until, h.label, h.key)
