"""Detection: the simulated runaway against a $20 daily limit, polled every 60 s.

For ten start phases, the tick runs with a hand-moved clock until the permit is revoked;
the crossing instant comes from the simulated account's exact curve. Side by side: the
same polls judged by the threshold alone (revoke at the first poll at or past the limit).
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.common import QuietLog, Result, say
from tests.fakes import build_tick
from watchdog.config import load
from watchdog.providers.simulated import SimulatedAccount

LIMIT = 20.0
POLL = timedelta(seconds=60)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def spent_today(account: SimulatedAccount, t: datetime) -> float:
    midnight = datetime(t.year, t.month, t.day, tzinfo=UTC)
    return account.usage_at(t) - account.usage_at(midnight)


def crossing(account: SimulatedAccount, start: datetime) -> datetime:
    low, high = start, start + timedelta(hours=6)
    for _ in range(60):
        mid = low + (high - low) / 2
        if spent_today(account, mid) >= LIMIT:
            high = mid
        else:
            low = mid
    return high


def one(phase_s: float, tmp: Path) -> tuple[float, float, float, float]:
    # The account starts at noon; the first poll comes `phase_s` later, so the polls fall
    # at a different moment of the runaway each time.
    origin = datetime(2026, 11, 18, 12, tzinfo=UTC)
    start = origin + timedelta(seconds=phase_s)
    clock = Clock(start)
    settings = load(
        None,
        require_key=False,
        overrides={
            "budget": {"daily_limit": LIMIT},
            "state": {"path": str(tmp / f"state-{phase_s}.db")},
            "killswitch": {"path": str(tmp / f"permit-{phase_s}")},
        },
    ).settings
    account = SimulatedAccount("runaway", clock, start=origin)
    tick = build_tick(settings, account, clock, log=QuietLog())
    cross = crossing(account, start)
    revoked = naive = None
    while clock.now < start + timedelta(hours=6) and (revoked is None or naive is None):
        result = tick.run()
        if revoked is None and not result.decision.armed:
            revoked = clock.now
        if naive is None and spent_today(account, clock.now) >= LIMIT:
            naive = clock.now
        clock.now += POLL
    tick.store.close()
    assert revoked is not None and naive is not None
    return (
        (revoked - cross).total_seconds(),
        max(0.0, spent_today(account, revoked) - LIMIT),
        (naive - cross).total_seconds(),
        max(0.0, spent_today(account, naive) - LIMIT),
    )


def run() -> list[Result]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for phase in range(10):
            rows.append(one(phase * 6.0, Path(tmp)))
    latency = max(r[0] for r in rows)
    overshoot = max(r[1] for r in rows)
    naive_latency = max(r[2] for r in rows)
    naive_overshoot = max(r[3] for r in rows)
    say(
        f"  revoke vs crossing: worst {latency:+.0f} s (threshold alone {naive_latency:+.0f} s); "
        f"overshoot ${overshoot:.2f} (threshold alone ${naive_overshoot:.2f})"
    )
    limit_s = POLL.total_seconds() + 1
    return [
        Result(
            "permit revoked after the crossing (worst of 10 phases; negative = before)",
            latency,
            "s",
            limit_s,
            note=f"threshold alone: {naive_latency:+.0f} s; target ≤ poll interval + 1 s",
        ),
        Result(
            "spend past the daily limit before the revoke (worst of 10)",
            overshoot,
            "USD",
            0.0,
            note=f"threshold alone: ${naive_overshoot:.2f}; target $0",
        ),
    ]
