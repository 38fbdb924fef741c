"""The daemon's lifecycle: scheduler, signals, HTTP server, systemd notifications.

The only module that imports APScheduler. The asyncio loop in the main thread runs the
status server and waits for SIGTERM/SIGINT; a BackgroundScheduler thread runs the tick
every poll interval (never two at once, missed runs coalesced). On a signal the running
tick finishes, the scheduler stops, `on_stop` runs (it revokes the permit), exit 0.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from watchdog.sdnotify import Notifier

# The outbox is looked at this often (a cheap count; a courier starts only when a message
# is due). A poll rather than a kick from the tick: a kick must take the scheduler's lock,
# which a shutdown holds while it waits for that very tick (a deadlock seen in testing).
DELIVER_EVERY_S = 2.0
# A tick that runs longer than this is stuck (a poll is bounded far below it: timeouts,
# a few retries, backoff): the heartbeat stops and systemd's watchdog restarts us.
STUCK_AFTER_S = 300.0


class Runnable(Protocol):
    def run(self) -> object: ...


class Server(Protocol):
    """The status server as the daemon needs it (see watchdog.server)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class Daemon:
    """Runs `tick` every `interval` seconds until a signal (or `run_for` seconds)."""

    def __init__(
        self,
        tick: Runnable,
        *,
        interval: float,
        log: Any,
        sd: Notifier | None = None,
        server: Server | None = None,
        status_line: Callable[[], str] | None = None,
        on_stop: Callable[[], None] | None = None,
        run_for: float | None = None,
        deliver: Callable[[], object] | None = None,
        prepare: Callable[[], bool] | None = None,
    ) -> None:
        self.tick = tick
        self.interval = interval
        self.log = log
        self.sd = sd or Notifier({})
        self.server = server
        self.status_line = status_line
        self.on_stop = on_stop
        self.run_for = run_for
        self.deliver = deliver
        self.prepare = prepare
        self._tick_started: float | None = None
        self._tick_finished: float | None = None
        self._started = time.monotonic()
        self._state_lock = threading.Lock()
        self._tick_lock = threading.Lock()  # one tick at a time, scheduled or requested
        self._stopping = False  # set under _tick_lock: no tick starts after it

    def run(self) -> int:
        """Run until stopped; return the process exit code."""
        return asyncio.run(self._main())

    async def _main(self) -> int:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if self.server is not None:
            await self.server.start()
        # Work that may take a moment (checking the notification URLs) runs while the
        # server already answers; READY=1 and the first tick wait for it.
        if self.prepare is not None and not await loop.run_in_executor(None, self.prepare):
            if self.server is not None:
                await self.server.stop()
            return 2

        scheduler = BackgroundScheduler(
            executors={
                "default": ThreadPoolExecutor(1),
                "delivery": ThreadPoolExecutor(1),
                "heartbeat": ThreadPoolExecutor(1),
            },
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )
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
                executor="delivery",
                id="deliver",
            )
        if self.sd.watchdog_interval:
            scheduler.add_job(
                self._heartbeat,
                "interval",
                seconds=self.sd.watchdog_interval / 2,
                executor="heartbeat",
                id="heartbeat",
            )
        # Config loaded, store open, port bound: ready. Said before the first tick starts,
        # so systemd hears READY=1 before any STATUS= of a tick.
        self.sd.ready(self.status_line() if self.status_line else "starting")
        scheduler.start()
        self.log.info("started", interval_s=self.interval)

        try:
            await asyncio.wait_for(stop.wait(), timeout=self.run_for)
            reason = "signal"
        except TimeoutError:
            reason = "run_for elapsed"
        self.log.info("stopping", reason=reason)
        self.sd.stopping()
        # Let the running tick finish (it may be mid-write) and start no other, then stop.
        # A courier already under way finishes on its own (it holds the delivery lock).
        await loop.run_in_executor(None, self._stop_ticks)
        scheduler.shutdown(wait=False)
        if self.server is not None:
            await self.server.stop()
        if self.on_stop is not None:
            self.on_stop()
        self.log.info("stopped")
        self.sd.close()
        return 0

    def _stop_ticks(self) -> None:
        with self._tick_lock:  # waits for a running tick
            self._stopping = True

    def _run_delivery(self) -> None:
        assert self.deliver is not None
        try:
            self.deliver()
        except Exception:
            self.log.exception("delivery_failed")

    async def run_tick_now(self) -> None:
        """Run a tick now (after the one in progress, if any) and wait for it."""
        await asyncio.get_running_loop().run_in_executor(None, self._run_tick)

    def _run_tick(self) -> None:
        with self._tick_lock:
            if self._stopping:
                return
            with self._state_lock:
                self._tick_started = time.monotonic()
            try:
                self.tick.run()
            except Exception:
                # A bug, a full disk: log it with its traceback and keep the loop alive; the
                # next tick tries again, staleness alerts if it keeps failing.
                self.log.exception("tick_failed")
            finally:
                with self._state_lock:
                    self._tick_finished = time.monotonic()
                    self._tick_started = None
            if self.status_line is not None:
                self.sd.status(self.status_line())

    def alive(self) -> bool:
        """True while the tick loop makes progress (no tick stuck, ticks still coming)."""
        now = time.monotonic()
        with self._state_lock:
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
