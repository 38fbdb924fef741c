"""The daemon's lifecycle on the real scheduler: on-demand ticks, overruns said once."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from structlog.testing import capture_logs

from watchdog.daemon import Daemon, Prepared
from watchdog.log import get_logger


class Counting:
    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = seconds
        self.runs = 0

    def run(self) -> None:
        self.runs += 1
        time.sleep(self.seconds)


def test_a_long_tick_is_one_structured_warning_not_a_line_per_skipped_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    slow = Counting(0.5)
    daemon = Daemon(lambda: Prepared(slow), interval=0.02, log=get_logger(), run_for=1.2)
    with capture_logs() as logs:
        assert daemon.run() == 0
    overruns = [e for e in logs if e["event"] == "tick_overrun"]
    assert 1 <= len(overruns) <= slow.runs  # at most once per overrunning tick
    skipped = [r for r in caplog.records if "maximum number of running instances" in r.message]
    assert skipped == []


def test_an_on_demand_tick_runs_on_the_scheduler_and_is_waited_for() -> None:
    """The daemon runs in the main thread (it owns the signals); a request comes from
    another thread, as the server's handlers do."""
    tick = Counting()
    daemon = Daemon(lambda: Prepared(tick), interval=60, log=get_logger(), run_for=2)
    seen: list[tuple[int, bool, int]] = []

    def ask() -> None:
        deadline = time.monotonic() + 5
        while tick.runs == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        before = tick.runs
        done = daemon.request_tick(timeout=5)
        seen.append((before, done, tick.runs))

    asker = threading.Thread(target=ask)
    asker.start()
    assert daemon.run() == 0
    asker.join(10)
    assert seen == [(1, True, 2)]  # the one asked for ran before request_tick returned


def test_a_chore_runs_on_its_own_schedule_and_its_failure_is_logged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from watchdog import daemon as daemon_module

    monkeypatch.setattr(daemon_module, "CHORE_DELAY_S", 0.0)
    runs: list[float] = []

    def chore() -> None:
        runs.append(time.monotonic())
        raise RuntimeError("the price list is down")

    daemon = Daemon(
        lambda: Prepared(Counting(), chores=((chore, 0.2),)),
        interval=60,
        log=get_logger(),
        run_for=1.0,
    )
    with capture_logs() as logs:
        assert daemon.run() == 0
    assert len(runs) >= 3  # on its own schedule, beside the tick
    assert [e["event"] for e in logs].count("chore_failed") == len(runs)
