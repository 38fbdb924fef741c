"""A year of 60-second polls: the state file's size, and measure + evaluate on that history
side by side with the same on one day of history (it must not grow with history)."""

from __future__ import annotations

import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.common import Result, say
from watchdog.core import burn, rules
from watchdog.core.model import BudgetPolicy, PollHealth, Sample
from watchdog.providers.simulated import SimulatedAccount
from watchdog.store import Store

START = datetime(2025, 11, 27, tzinfo=UTC)
DAYS = 365


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def fill(path: Path) -> tuple[int, datetime]:
    """A year of one-minute samples from the steady simulated account, written a day at a
    time and thinned as the daemon does (it thins hourly; daily ends at the same place)."""
    clock = Clock()
    account = SimulatedAccount("steady", clock, start=START)
    written = 0
    with Store(path) as store:
        for day in range(DAYS):
            batch = []
            for minute in range(24 * 60):
                clock.now = START + timedelta(days=day, minutes=minute)
                batch.append(account.fetch().to_sample())
            with store.unit() as unit:
                unit.add_samples(batch)
                unit.thin(clock.now)
            written += len(batch)
    # Fold the WAL into the main file, so the size on disk is the file's.
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return written, clock.now


def tick_cost(samples: list[Sample], now: datetime, rounds: int = 300) -> float:
    """Median ms of measure + evaluate on a history built the way the tick builds it."""
    budget = BudgetPolicy(daily_limit=20.0, monthly_limit=400.0)
    history = burn.history_from(samples, now)
    poll = PollHealth(last_success=now, started_at=now - timedelta(days=1))
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        metrics = burn.measure(history, now, budget.tz)
        rules.evaluate(metrics, budget, poll, horizon=timedelta(seconds=75))
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def run() -> list[Result]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "state.db"
        began = time.monotonic()
        written, end = fill(path)
        size_mb = sum(p.stat().st_size for p in Path(tmp).iterdir()) / 1024 / 1024
        with Store(path) as store:
            kept = len(store.history(START))
            year = store.history(burn.samples_needed_since(end, UTC))
            day = store.history(end - timedelta(days=1))
        say(
            f"  {written:,} polls written in {time.monotonic() - began:.0f} s; {kept:,} samples "
            f"kept; {size_mb:.1f} MB on disk"
        )
        long_ms = tick_cost(year, end)
        short_ms = tick_cost(day, end)
        say(f"  measure + evaluate: {long_ms:.3f} ms on a year, {short_ms:.3f} ms on a day")
    return [
        Result(
            "state file after a year of 60-second polls",
            size_mb,
            "MB",
            50.0,
            note=f"{written:,} polls; {kept:,} samples kept (raw for 40 days, hourly before)",
        ),
        Result(
            "measure + evaluate per tick on a year of history",
            long_ms,
            "ms",
            10.0,
            note=f"{short_ms:.3f} ms on one day of history: ratio {long_ms / short_ms:.2f}",
        ),
    ]


if __name__ == "__main__":
    for r in run():
        print(r)
