"""The daemon's lifecycle: scheduler, signals, HTTP server, systemd notifications.

The only module that imports APScheduler, and the scheduler owns the schedule: the tick,
the outbox delivery and the systemd heartbeat are its jobs (each at most one at a time,
missed runs coalesced). An on-demand tick (`POST /tick`, after `trip`/`arm`/`silence`)
asks the scheduler to run the tick job now (`modify_job(next_run_time=now)`) and waits
for it; no lock of ours guards the tick. The asyncio loop in the main thread runs the
status server and waits for SIGTERM/SIGINT. On a signal the server stops, the scheduler
shuts down waiting for a running tick, `on_stop` runs (it revokes the permit), exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobSubmissionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from watchdog.sdnotify import Notifier

# The outbox is looked at this often (a cheap count; a courier starts only when a message
# is due). A poll rather than a kick from the tick: a kick must take the scheduler's lock,
# which a shutdown holds while it waits for that very tick.
DELIVER_EVERY_S = 2.0
# Chores (the price list) start this long after the daemon, out of the first tick's way.
CHORE_DELAY_S = 60.0
# An on-demand tick waits at most this long for the tick to run.
TICK_REQUEST_TIMEOUT_S = 60.0
# A tick that runs longer than this is stuck (a poll is bounded far below it: timeouts,
# a few retries, backoff): the heartbeat stops and systemd's watchdog restarts us.
STUCK_AFTER_S = 300.0


class _SkippedRuns(logging.Filter):
    """APScheduler says "maximum number of running instances reached" for every run a long
    tick makes it skip; the daemon says it once, structured (`tick_overrun`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances reached" not in record.getMessage()


SKIPPED_RUNS = _SkippedRuns()


class Runnable(Protocol):
    def run(self) -> object: ...


class Server(Protocol):
    """The status server as the daemon needs it (see watchdog.server)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass(frozen=True)
class Prepared:
    """What `prepare` hands the daemon once start-up work is done: the tick to schedule,
    and the outbox delivery (None without notification targets)."""

    tick: Runnable
    deliver: Callable[[], object] | None = None
    # Work on its own schedule, beside the tick: (what, every how many seconds).
    chores: tuple[tuple[Callable[[], object], float], ...] = ()
    # Several instances on one database: the election (True when this instance has just
    # become the leader: a tick runs at once, to poll), and every how many seconds.
    lead: tuple[Callable[[], bool], float] | None = None


class Daemon:
    """Runs the prepared tick every `interval` seconds until a signal (or `run_for`)."""

    def __init__(
        self,
        prepare: Callable[[], Prepared | None],
        *,
        interval: float,
        log: Any,
        sd: Notifier | None = None,
        status_line: Callable[[], str] | None = None,
        on_stop: Callable[[], None] | None = None,
        run_for: float | None = None,
    ) -> None:
        self.prepare = prepare
        self.interval = interval
        self.log = log
        self.sd = sd or Notifier({})
        self.status_line = status_line
        self.on_stop = on_stop
        self.run_for = run_for
        self.tick: Runnable | None = None
        self.deliver: Callable[[], object] | None = None
        self._started = time.monotonic()
        # Progress of the tick job, for on-demand ticks and the liveness check.
        self._progress = threading.Condition()
        self._tick_started: float | None = None
        self._tick_finished: float | None = None
        self._ticks_done = 0
        self._stopping = False
        self._overrun_warned = False
        self._scheduler: BackgroundScheduler | None = None

    def run(self, server: Server | None = None) -> int:
        """Serve `server` and run until stopped; return the process exit code (2 when
        `prepare` refused to start)."""
        return asyncio.run(self._main(server))

    async def _main(self, server: Server | None) -> int:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if server is not None:
            await server.start()
        # Work that may take a moment (checking the notification URLs) runs while the
        # server already answers; READY=1 and the first tick wait for it.
        prepared = await loop.run_in_executor(None, self.prepare)
        if prepared is None:
            if server is not None:
                await server.stop()
            return 2
        self.tick, self.deliver = prepared.tick, prepared.deliver

        scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(3)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )
        scheduler.add_listener(self._on_overrun, EVENT_JOB_MAX_INSTANCES)
        logging.getLogger("apscheduler.scheduler").addFilter(SKIPPED_RUNS)
        scheduler.add_job(
            self._run_tick,
            "interval",
            seconds=self.interval,
            next_run_time=datetime.now(UTC),
            id="tick",
        )
        if self.deliver is not None:
            scheduler.add_job(
                self._run_delivery,
                "interval",
                seconds=DELIVER_EVERY_S,
                next_run_time=datetime.now(UTC),
                id="deliver",
            )
        for number, (chore, every) in enumerate(prepared.chores):
            scheduler.add_job(
                self._run_chore,
                "interval",
                args=[chore],
                seconds=every,
                next_run_time=datetime.now(UTC) + timedelta(seconds=CHORE_DELAY_S),
                id=f"chore-{number}",
            )
        if prepared.lead is not None:
            elect, every = prepared.lead
            scheduler.add_job(
                self._run_election,
                "interval",
                args=[elect],
                seconds=every,
                next_run_time=datetime.now(UTC) + timedelta(seconds=every),
                id="lead",
            )
        if self.sd.watchdog_interval:
            scheduler.add_job(
                self._heartbeat, "interval", seconds=self.sd.watchdog_interval / 2, id="heartbeat"
            )
        # Config loaded, store open, port bound: ready. Said before the first tick starts,
        # so systemd hears READY=1 before any STATUS= of a tick.
        self.sd.ready(self.status_line() if self.status_line else "starting")
        self._scheduler = scheduler
        scheduler.start()
        self.log.info("started", interval_s=self.interval)

        try:
            await asyncio.wait_for(stop.wait(), timeout=self.run_for)
            reason = "signal"
        except TimeoutError:
            reason = "run_for elapsed"
        self.log.info("stopping", reason=reason)
        self.sd.stopping()
        with self._progress:
            self._stopping = True
            self._progress.notify_all()
        if server is not None:
            await server.stop()
        # The running tick finishes (it may be mid-write) and no other starts; a courier
        # already under way finishes on its own (it holds the delivery lock).
        await loop.run_in_executor(None, scheduler.shutdown)
        if self.on_stop is not None:
            self.on_stop()
        self.log.info("stopped")
        self.sd.close()
        return 0

    def _run_delivery(self) -> None:
        try:
            if self.deliver is not None:
                self.deliver()
        except Exception:
            self.log.exception("delivery_failed")

    def _run_chore(self, chore: Callable[[], object]) -> None:
        try:
            chore()
        except Exception:
            self.log.exception("chore_failed")

    def _run_election(self, elect: Callable[[], bool]) -> None:
        try:
            promoted = elect()
        except Exception:
            self.log.exception("election_failed")
            return
        if promoted:
            # The new leader polls now, not at its next tick. From a thread of its own: a
            # shutdown holds the scheduler's lock while it waits for this job.
            threading.Thread(target=self._tick_soon, name="lead-kick", daemon=True).start()

    def _tick_soon(self) -> None:
        scheduler = self._scheduler
        if scheduler is None or self._stopping:
            return
        with contextlib.suppress(Exception):  # the scheduler is shutting down
            scheduler.modify_job("tick", next_run_time=datetime.now(UTC))

    def _on_overrun(self, event: JobSubmissionEvent) -> None:
        """A job still running when its next run came: said once per overrun, not per skip."""
        if event.job_id == "tick" and not self._overrun_warned:
            self._overrun_warned = True
            self.log.warning(
                "tick_overrun",
                detail="a tick took longer than poll_interval; the next one runs when it ends",
                interval_s=self.interval,
            )

    async def run_tick_now(self) -> None:
        """Have the scheduler run a tick now (after the one in progress, if any) and wait
        for it to finish."""
        await asyncio.get_running_loop().run_in_executor(None, self.request_tick)

    def request_tick(self, timeout: float = TICK_REQUEST_TIMEOUT_S) -> bool:
        """Blocking form of run_tick_now; False if no tick finished within `timeout`."""
        scheduler = self._scheduler
        deadline = time.monotonic() + timeout
        with self._progress:
            if scheduler is None or self._stopping:
                return False
            # A tick under way may have read the state before the caller's change: wait
            # for it, then ask for a fresh one (asking while it runs would be skipped).
            if self._tick_started is not None:
                running = self._ticks_done + 1
                self._progress.wait_for(
                    lambda: self._ticks_done >= running or self._stopping,
                    max(0.0, deadline - time.monotonic()),
                )
            wanted = self._ticks_done + 1
        try:
            scheduler.modify_job("tick", next_run_time=datetime.now(UTC))
        except Exception:  # the scheduler is shutting down
            return False
        with self._progress:
            return (
                self._progress.wait_for(
                    lambda: self._ticks_done >= wanted or self._stopping,
                    max(0.0, deadline - time.monotonic()),
                )
                and self._ticks_done >= wanted
            )

    def _run_tick(self) -> None:
        with self._progress:
            self._tick_started = time.monotonic()
        try:
            if self.tick is not None:
                self.tick.run()
        except Exception:
            # The tick records its own failures; this is the last line of defence, so the
            # loop stays alive and the next tick tries again.
            self.log.exception("tick_failed")
        finally:
            with self._progress:
                self._tick_finished = time.monotonic()
                self._tick_started = None
                self._ticks_done += 1
                self._overrun_warned = False
                self._progress.notify_all()
        if self.status_line is not None:
            self.sd.status(self.status_line())

    def tick_running_for(self) -> float | None:
        """Seconds the tick under way has been running (None: no tick is running)."""
        with self._progress:
            started = self._tick_started
        return None if started is None else time.monotonic() - started

    def alive(self) -> bool:
        """True while the tick loop makes progress (no tick stuck, ticks still coming)."""
        now = time.monotonic()
        with self._progress:
            started, finished = self._tick_started, self._tick_finished
        if started is not None:
            return now - started < STUCK_AFTER_S
        last = finished if finished is not None else self._started
        return now - last < self.interval + STUCK_AFTER_S

    def _heartbeat(self) -> None:
        if self.alive():
            self.sd.watchdog()
        else:
            self.log.error("tick_stuck", detail="no tick progress; not pinging systemd's watchdog")
