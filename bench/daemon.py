"""The daemon's footprint: RSS over 1,000+ ticks of the real process (the simulated account
at accelerated time), and CPU per tick measured in-process without the network."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.common import BIN, QuietLog, Result, say
from tests.fakes import build_tick
from watchdog.config import load
from watchdog.providers.simulated import SimulatedAccount

TICKS = 1000
PAGE = os.sysconf("SC_PAGE_SIZE")
HZ = os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / HZ


def process_run() -> tuple[float, float, float, float, int]:
    """RSS after ~100 and ~1,000+ ticks, the peak, and whole-process CPU per tick."""
    with tempfile.TemporaryDirectory() as tmp:
        # 60 s simulated polls at 3000x: a tick every 20 ms of real time.
        proc = subprocess.Popen(
            [
                str(BIN / "budget-watchdog"),
                "demo",
                "--profile",
                "runaway",
                "--speed",
                "3000",
                "--state-dir",
                tmp,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert proc.stdout is not None
        ticks, early, peak, cpu_start, tick_start = 0, 0.0, 0.0, 0.0, 0
        for line in proc.stdout:
            if '"event": "poll"' not in line:
                continue
            ticks += 1
            if ticks == 100:
                early = rss_mb(proc.pid)
                cpu_start, tick_start = cpu_s(proc.pid), ticks
            if ticks % 50 == 0:
                peak = max(peak, rss_mb(proc.pid))
            if ticks >= TICKS + 100:
                break
        late = rss_mb(proc.pid)
        per_tick = (cpu_s(proc.pid) - cpu_start) / (ticks - tick_start) * 1000
        proc.terminate()
        proc.wait()
    return early, late, max(peak, late), per_tick, ticks


def in_process(ticks: int = 1000) -> float:
    """CPU ms per tick: the whole tick (poll of the simulated account, store, measure,
    rules, alerts, permit file, view) with no network and no logging output."""

    with tempfile.TemporaryDirectory() as tmp:
        start = datetime(2026, 11, 18, 9, tzinfo=UTC)
        now = [start]
        settings = load(
            None,
            require_key=False,
            overrides={
                "budget": {"daily_limit": 20.0, "monthly_limit": 400.0},
                "state": {"path": f"{tmp}/state.db"},
                "killswitch": {"path": f"{tmp}/permit"},
            },
        ).settings
        account = SimulatedAccount("steady", lambda: now[0], start=start)
        tick = build_tick(settings, account, lambda: now[0], log=QuietLog())
        for _ in range(50):
            tick.run()
            now[0] += timedelta(minutes=1)
        began = time.process_time()
        for _ in range(ticks):
            tick.run()
            now[0] += timedelta(minutes=1)
        per_tick = (time.process_time() - began) / ticks * 1000
        tick.store.close()
    return per_tick


def run() -> list[Result]:
    early, late, peak, process_cpu, ticks = process_run()
    cpu = in_process()
    say(
        f"  RSS {early:.1f} MB at tick 100, {late:.1f} MB at tick {ticks} (peak {peak:.1f} MB); "
        f"CPU {cpu:.2f} ms/tick in-process, {process_cpu:.2f} ms/tick whole process"
    )
    return [
        Result(
            f"daemon RSS after {ticks} ticks (simulated provider, alerts on the console)",
            late,
            "MB",
            60.0,
            note=f"{early:.1f} MB at tick 100; peak {peak:.1f} MB",
        ),
        Result(
            "RSS growth from tick 100 to the end",
            late / early,
            "x",
            1.1,
            note="flat means the ratio stays near 1",
        ),
        Result(
            "CPU per tick without the network (in-process)",
            cpu,
            "ms",
            5.0,
            note=f"whole daemon process incl. HTTP server and logging: {process_cpu:.2f} ms",
        ),
    ]


if __name__ == "__main__":
    for r in run():
        print(r)
