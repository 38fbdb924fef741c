"""Many keys: CPU per tick and memory with 500 keys, side by side with one key, and the
state a key costs per year.

In-process, without the network: a provider answers every poll with the account's keys
(a few of them spending, the rest idle, as accounts usually are), the whole tick runs
(store, every key measured and judged, per-key permit files, the view).
"""

from __future__ import annotations

import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.common import QuietLog, Result, say
from tests.fakes import ListingAccount
from watchdog.core.model import Credits, KeyUsage, Snapshot

KEYS = 500
SPENDING = 25  # keys whose counters move each tick (5 %)
FEW = 5  # and an account where 1 % of keys spend at a time
TICKS = 600
WARMUP = 60
# Each account is measured in this many interleaved rounds. Another process (or a slow
# disk: the one-key tick is half kernel time, its fsyncs) only ever adds CPU time, so each
# account's figure is its quickest round (as `timeit` advises), and the ratio is of those;
# the median of the ratios paired within each round is shown beside it.
ROUNDS = 7


class ManyKeys(ListingAccount):
    """A provider and its management side: `keys` keys, `spending` of them spending."""

    def __init__(self, clock: object, keys: int, spending: int) -> None:
        self.clock = clock
        self.usage = [0.0] * keys
        self.spending = spending
        self.tick = 0
        self.rows = [self._row(i) for i in range(keys)]

    def _row(self, i: int) -> KeyUsage:
        u = self.usage[i]
        return KeyUsage(
            usage=round(u, 6),
            usage_daily=round(u, 6),
            usage_weekly=round(u, 6),
            usage_monthly=round(u, 6),
            name=f"job-{i:03d}",
            hash=f"{i:064x}",
            limit=50.0,
            limit_remaining=round(50.0 - u, 6),
            limit_reset="daily",
        )

    def fetch(self) -> Snapshot:
        self.tick += 1
        for i in range(self.spending):
            k = (i * 7 + self.tick) % len(self.usage)  # a moving set of spending keys
            self.usage[k] += 0.01
            # As OpenRouterProvider does: an unchanged /keys row gives the same KeyUsage
            # object as at the last poll; a changed one is parsed afresh. (Kept in a list,
            # so the harness's own cost does not grow with the keys: it is not the
            # watchdog's, and a real listing's HTTP and JSON are in neither figure.)
            self.rows[k] = self._row(k)
        return Snapshot(
            taken_at=self.clock(),  # type: ignore[operator]
            credits=Credits(total_credits=10_000.0, total_usage=sum(self.usage)),
            keys=tuple(self.rows),
        )


def measure(keys: int, spending: int) -> tuple[float, float, int]:
    """(CPU ms per tick, RSS MB after the ticks, state bytes) for an account of `keys`."""
    from tests.fakes import build_tick
    from watchdog import permitfile
    from watchdog.config import load

    with tempfile.TemporaryDirectory() as tmp:
        start = datetime(2026, 11, 18, 9, tzinfo=UTC)
        now = [start]
        settings = load(
            None,
            require_key=False,
            overrides={
                "budget": {
                    "daily_limit": 200.0,
                    "keys": [{"match": "job-0*", "daily_limit": 5.0, "action": "revoke"}],
                },
                "state": {"path": f"{tmp}/state.db"},
                "killswitch": {"path": f"{tmp}/permit"},
                "provider": {"management_key": "sk-or-v1-" + "0" * 64},
            },
        ).settings
        provider = ManyKeys(lambda: now[0], keys, spending)
        tick = build_tick(settings, provider, lambda: now[0], log=QuietLog())  # type: ignore[arg-type]
        tick.key_permits = permitfile.KeyPermits(
            permitfile.keys_directory(settings.killswitch.path), lambda: now[0]
        )
        tick.permit.keys_epoch = tick.key_permits.start()
        for _ in range(WARMUP):
            tick.run()
            now[0] += timedelta(minutes=1)
        gc.collect()
        began = time.process_time()
        for _ in range(TICKS):
            tick.run()
            now[0] += timedelta(minutes=1)
        per_tick = (time.process_time() - began) / TICKS * 1000
        tick.store.close()
        size = sum(p.stat().st_size for p in Path(tmp).glob("state.db*"))
    return per_tick, _rss_mb(), size


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _isolated(keys: int, spending: int) -> tuple[float, float, int]:
    """`measure` in a fresh interpreter, so one run's memory does not count in the other."""
    code = f"from bench.keys import measure; import sys; print(*measure({keys}, {spending}))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    ).stdout.split()
    return float(out[0]), float(out[1]), int(out[2])


def key_year_bytes() -> tuple[float, float]:
    """State bytes per key-year: a key spending at every 60 s poll all year (raw samples
    for 40 days, one an hour after that), and the bytes of one key-sample row."""
    from watchdog.core.model import KeySample
    from watchdog.store import RAW_RETENTION, Store

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "s.db")
        t0 = datetime(2026, 1, 1, tzinfo=UTC)
        rows = 20_000
        base = Path(tmp, "s.db").stat().st_size
        with store.unit() as unit:
            unit.add_key_samples(
                [
                    KeySample(
                        f"{7:064x}",
                        t0 + timedelta(minutes=i),
                        i * 0.01,
                        i * 0.01,
                        None,
                        i * 0.01,
                        50.0,
                        10.0,
                        "daily",
                    )
                    for i in range(rows)
                ]
            )
        store.close()
        per_row = (Path(tmp, "s.db").stat().st_size - base) / rows
    raw = RAW_RETENTION.total_seconds() / 60
    thinned = (365 * 24) - RAW_RETENTION.total_seconds() / 3600
    return per_row * (raw + thinned), per_row


def run() -> list[Result]:
    rounds = []
    for n in range(ROUNDS):
        one, few, many = _isolated(1, 1), _isolated(KEYS, FEW), _isolated(KEYS, SPENDING)
        rounds.append((one, few, many))
        say(
            f"  round {n + 1}: {one[0]:.2f} ms with one key, {few[0]:.2f} ms with {KEYS} keys "
            f"({FEW} spending), {many[0]:.2f} ms ({SPENDING} spending): "
            f"{few[0] / one[0]:.2f}x, {many[0] / one[0]:.2f}x"
        )
    one_cpu, few_cpu, many_cpu = (min(r[i][0] for r in rounds) for i in range(3))
    few_ratio, ratio = few_cpu / one_cpu, many_cpu / one_cpu
    few_paired = statistics.median(few[0] / one[0] for one, few, _ in rounds)
    paired = statistics.median(many[0] / one[0] for one, _, many in rounds)
    (_, one_rss, _), _, (_, many_rss, many_state) = rounds[-1]
    year, per_row = key_year_bytes()
    say(
        f"  CPU per tick (quickest of {ROUNDS} rounds): {many_cpu:.2f} ms with {KEYS} keys "
        f"({SPENDING} spending), {few_cpu:.2f} ms ({FEW} spending) vs {one_cpu:.2f} ms with one "
        f"key: {ratio:.2f}x, {few_ratio:.2f}x (medians of the paired ratios: {paired:.2f}x, "
        f"{few_paired:.2f}x); RSS {many_rss:.1f} MB vs {one_rss:.1f} MB; "
        f"state after {WARMUP + TICKS} ticks {many_state / 1e6:.1f} MB; "
        f"a key spending every minute for a year: {year / 1e6:.1f} MB ({per_row:.0f} B a row)"
    )
    return [
        Result(
            f"CPU per tick, {KEYS} keys ({FEW} spending) / one key (side by side)",
            few_ratio,
            "x",
            3.0,
            note=f"{few_cpu:.2f} ms vs {one_cpu:.2f} ms, in-process, no network; each the "
            f"quickest of {ROUNDS} interleaved rounds (median of the ratios paired within a "
            f"round: {few_paired:.2f}x)",
        ),
        Result(
            f"CPU per tick, {KEYS} keys ({SPENDING} spending) / one key (side by side)",
            ratio,
            "x",
            3.0,
            note=f"{many_cpu:.2f} ms vs {one_cpu:.2f} ms (paired median {paired:.2f}x); a "
            "spending key costs about "
            f"{(many_cpu - few_cpu) / (SPENDING - FEW):.2f} ms a tick (measured, judged, its "
            "permit file and status row rewritten, its sample stored)",
        ),
        Result(
            f"RSS with {KEYS} keys after {WARMUP + TICKS} ticks",
            many_rss,
            "MB",
            None,
            note=f"one key: {one_rss:.1f} MB (same harness)",
        ),
        Result(
            "state per key-year, a key spending at every 60 s poll",
            year / 1e6,
            "MB",
            None,
            note=f"{per_row:.0f} B a row; an idle key costs no rows",
        ),
    ]


if __name__ == "__main__":
    for r in run():
        print(r)
