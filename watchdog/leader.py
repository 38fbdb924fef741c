"""Which instance leads, when several share one PostgreSQL database: a lease row with a
deadline, renewed by its holder, taken over by another instance once it runs out, and a
term number (the fencing token) that the leader's writes check.

Why a lease row and not a session advisory lock. An advisory lock lives as long as the
database session that took it, which is right for a SIGKILL (the kernel closes the
socket, the server frees the lock at once) and wrong for the other two failures the
leader must survive. A hung process (stopped, swapping, stuck in a call) keeps its session,
and the kernel still answers TCP keepalives for it: the lock is held for ever and nobody
takes over. A network cut leaves the server holding the lock until its keepalives give up,
while the leader, not knowing it is cut off, believes it still holds it; and a lock alone
gives no way to refuse a deposed leader's late writes. A lease instead is held only as
long as its holder keeps proving it is alive, in time: whatever happens to the holder
(killed, hung, cut off), it ends at its deadline, and another instance takes over at its
next attempt. A SIGKILL costs at most the rest of the lease; `step_down` (at a clean stop)
ends it at once. A leader hung or cut off inside one of its units holds the units' lock
until the server ends its session (watchdog.db.IDLE_IN_TRANSACTION, 5 s; keepalives for a
cut, about 20 s): that is the worst case of a takeover, if longer than the lease.

Two leaders who both act are prevented twice over:
- The deadline is judged by the database server's clock (one clock for every instance,
  whatever their own clocks say), and the holder stops counting itself leader at `now`
  (read before it asked) + lease on its own clock: earlier than the database lets anyone
  else take over, as long as the clocks tick at the same rate (a clock stepped back
  lengthens the holder's own reckoning: the fence below still holds).
- Each change of holder (or a holder coming back after its lease ran out) begins a new
  term. The leader starts each of its units of work with `unit.fence(instance_id, term)`:
  units are serialised and a term begins in one, so every write of term n commits before
  term n + 1 begins, and a deposed leader's unit (hung past its lease, cut off and back)
  rolls back with LeadershipLost. Actions outside the database (polling, disabling keys)
  should follow a fenced commit, so they too come from the leader of the moment.

On SQLite there is one daemon per state file (its lock file): it is always the leader.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from watchdog.store import LeadershipLost, Store, StoreError, Unit

# How far an instance's clock may be from the database's. Samples carry the leader's time
# and are judged on each host's (the `clock` rule allows 5 s), reservations and claims
# expire by the clock: an instance further off than this neither leads nor gives permits.
MAX_CLOCK_OFFSET_S = 2.0


@dataclass(frozen=True)
class Role:
    """An instance's role at one moment. `leader_id` and `since` describe the leader of
    the moment (None when nobody leads, or it is unknown: the database is out of reach);
    `term` is the fencing token of a leader's writes (0 for a follower)."""

    instance_id: str
    role: Literal["leader", "follower"]
    leader_id: str | None
    since: datetime | None
    term: int = 0

    @property
    def leading(self) -> bool:
        return self.role == "leader"


class Leadership:
    """One instance's part in the election. `try_lead` once per attempt (each tick, and
    more often than `lease`: a sixth of it is the daemon's rhythm); `step_down` at a clean stop.

    `store_or_url`: the store to elect through, or a URL, from which Leadership opens a
    store of its own (and closes it in `close`). `clock` is the time `try_lead` and
    `is_leading` use when not given one: read it before any slow work, never after."""

    def __init__(
        self,
        store_or_url: Store | str,
        instance_id: str,
        lease: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
        if not instance_id:
            raise ValueError("an instance needs an id to lead")
        if lease <= timedelta(0):
            raise ValueError("the lease must be positive")
        self.instance_id = instance_id
        self.lease = lease
        self.clock = clock
        self._owned = not isinstance(store_or_url, Store)
        self._store: Store | None = store_or_url if isinstance(store_or_url, Store) else None
        self._url = store_or_url if isinstance(store_or_url, str) else None
        self._deadline: datetime | None = None  # while leading: when we stop, our clock
        self._role = Role(instance_id, "follower", None, None)
        self._trivial_since: datetime | None = None
        self.clock_offset: float | None = None  # database clock - ours, seconds

    @property
    def clock_problem(self) -> str | None:
        """Why this instance may not act, when its clock is too far from the database's
        (None while it is close enough, or not known yet)."""
        offset = self.clock_offset
        if offset is None or abs(offset) <= MAX_CLOCK_OFFSET_S:
            return None
        way = "behind" if offset > 0 else "ahead of"
        return (
            f"this host's clock is {abs(offset):.1f} s {way} the shared database's (at most "
            f"{MAX_CLOCK_OFFSET_S:g} s is allowed): fix its time sync (NTP); until then it "
            "neither leads nor gives permits"
        )

    @property
    def role(self) -> Role:
        """The role as of the last attempt (or step-down)."""
        return self._role

    def is_leading(self, now: datetime | None = None) -> bool:
        """Whether this instance still leads at `now` by its own reckoning, without asking
        the database: true from a successful attempt until `lease` after it began. Ask it
        before acting outside the database (a write to it is fenced anyway)."""
        if not self._role.leading:
            return False
        if self._deadline is None:  # SQLite: always
            return True
        return (now or self.clock()) < self._deadline

    def try_lead(self, now: datetime | None = None) -> Role:
        """Renew this instance's lease, or take it if it ran out; the role that results.

        When the database cannot be reached, a leader stays leader until its lease ends
        (nobody else can take over before then) and is a follower after; a follower stays
        a follower, with the leader unknown."""
        started = now or self.clock()
        try:
            store = self._open()
        except StoreError:
            return self._unreachable(started)
        if store.engine == "sqlite":
            self._trivial_since = self._trivial_since or started
            self._role = Role(self.instance_id, "leader", self.instance_id, self._trivial_since)
            return self._role
        try:
            with store.unit() as unit:
                before = self.clock().timestamp()
                database = unit.clock_ms() / 1000
                self.clock_offset = database - (before + self.clock().timestamp()) / 2
                if self.clock_problem is not None:
                    # Too far off to act on time: no lease (and ours handed back).
                    if self._role.leading and self._deadline is not None:
                        unit.release_lease(self.instance_id, self._role.term)
                    lease = unit.read_lease()
                else:
                    lease = unit.take_lease(self.instance_id, self.lease)
        except StoreError:
            return self._unreachable(started)
        if lease is None:
            self._deadline = None
            self._role = Role(self.instance_id, "follower", None, None)
            return self._role
        if lease.live and lease.holder == self.instance_id and self.clock_problem is None:
            self._deadline = started + self.lease
            self._role = Role(self.instance_id, "leader", lease.holder, lease.since, lease.term)
        else:
            self._deadline = None
            self._role = Role(
                self.instance_id,
                "follower",
                lease.holder if lease.live else None,
                lease.since if lease.live else None,
            )
        return self._role

    def fence(self, unit: Unit, term: int | None = None) -> None:
        """Check, inside `unit`, that this instance still leads in its term (see
        Unit.fence): LeadershipLost, and the unit rolls back, when it does not. `term`:
        the term the work began in (a tick that began in term n must not commit in term
        n + 2, after another leader's term n + 1 changed what it read); the current one
        when not given."""
        if not self._role.leading:
            raise LeadershipLost(f"{self.instance_id} is not the leader")
        if self._deadline is not None:
            unit.fence(self.instance_id, self._role.term if term is None else term)

    def step_down(self) -> None:
        """Give up leadership now (a clean stop): the lease ends at once, so another
        instance takes over at its next attempt. Quiet when the database is out of reach
        (the lease then ends on its own)."""
        role = self._role
        self._role = Role(self.instance_id, "follower", None, None)
        self._deadline = None
        if not role.leading or self._store is None or self._store.engine == "sqlite":
            return
        with suppress(StoreError), self._store.unit() as unit:
            unit.release_lease(self.instance_id, role.term)

    def close(self) -> None:
        """Step down, and close the store if Leadership opened it."""
        self.step_down()
        if self._owned and self._store is not None:
            self._store.close()
            self._store = None

    def _open(self) -> Store:
        if self._store is None:
            assert self._url is not None
            self._store = Store.open(self._url)
        return self._store

    def _unreachable(self, now: datetime) -> Role:
        if self._role.leading and self._deadline is not None and now < self._deadline:
            return self._role
        self._deadline = None
        self._role = Role(self.instance_id, "follower", None, None)
        return self._role
