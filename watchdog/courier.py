"""The courier: a short-lived child process that does all the daemon's Apprise work.

Apprise loads every one of its plugins (about 280 modules, with requests, oauthlib and
cryptography behind them) the first time a URL is parsed: some 18 MB that would stay in
the daemon for good, past its memory target. So the daemon never imports Apprise. At start
a child checks the notification URLs (a bad one is a config error, named with its secrets
masked); when the outbox holds a due message, a child delivers what is due and exits. A
plugin that hangs or crashes takes a child down, not the daemon.

The child reads its orders as JSON on stdin (so URLs with secrets never show in `ps`),
logs JSON lines to the daemon's stdout, and holds `<state>.courier.lock` while it
delivers, so a child orphaned by a killed daemon and the next one never send the same
message twice. Inside the child each target is drained on its own thread (see
`watchdog.outbox`), so one slow target does not hold back the others.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from watchdog.db import is_postgres_url, url_secrets
from watchdog.notify import Target, make_target, secret_parts

if TYPE_CHECKING:  # the check child must not pay for the store (and pydantic)
    from watchdog.store import Store

CHECK_TIMEOUT_S = 60.0
DELIVER_TIMEOUT_S = 600.0  # a batch: a few messages, each bounded by Apprise's timeouts


@dataclass(frozen=True)
class Inspection:
    """What the courier said of each URL: its masked form, and a problem or None."""

    shown: list[str]
    problems: list[str | None]


class Inspector:
    """Starts the URL check in a child at once; `result()` waits for it. The daemon does
    the rest of its start-up meanwhile, so the check costs no start-up time."""

    def __init__(self, urls: Sequence[str], python: str = sys.executable) -> None:
        self.urls = list(urls)
        self._proc: subprocess.Popen[str] | None = None
        if self.urls:
            self._proc = subprocess.Popen(
                [python, "-m", "watchdog.courier"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            assert self._proc.stdin is not None
            self._proc.stdin.write(json.dumps({"mode": "check", "urls": self.urls}))
            self._proc.stdin.close()

    def result(self) -> Inspection:
        if self._proc is None:
            return Inspection([], [])
        assert self._proc.stdout is not None
        try:
            out = self._proc.stdout.read()
            self._proc.wait(timeout=CHECK_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            raise RuntimeError("checking the notification URLs timed out") from None
        if self._proc.returncode != 0:
            assert self._proc.stderr is not None
            raise RuntimeError(
                f"checking the notification URLs failed: {self._proc.stderr.read().strip()[-500:]}"
            )
        data = json.loads(out)
        return Inspection(list(data["shown"]), list(data["problems"]))


def make_targets(config: Sequence[tuple[str, Sequence[str]]], shown: Sequence[str]) -> list[Target]:
    """Targets from (url, severities) pairs and the masked forms the inspection gave."""
    return [make_target(url, sev, label) for (url, sev), label in zip(config, shown, strict=True)]


class CourierOutbox:
    """The daemon's outbox delivery: a child process per batch, only when one is due."""

    def __init__(
        self,
        store: Store,
        targets: Sequence[Target],
        clock: Callable[[], datetime],
        log: Any,
        *,
        secrets: Sequence[str] = (),
        log_format: str = "json",
        python: str = sys.executable,
        instance: str = "local",
    ) -> None:
        self.store = store
        self.instance = instance
        self.targets = list(targets)
        self.clock = clock
        self.log = log
        self.secrets = list(secrets)
        self.log_format = log_format
        self.python = python

    def deliver(self) -> int:
        """Run a courier if any message is due; return how many it found due."""
        now = self.clock()
        due = self.store.due_count(now)
        if due == 0:
            return 0
        orders = {
            "mode": "deliver",
            # The path, or the URL with its password (stdin: never on a command line).
            "state": self.store.target,
            "instance": self.instance,
            "now": now.isoformat(),
            "targets": [
                {"url": t.url, "shown": t.shown, "severities": list(t.severities)}
                for t in self.targets
            ],
            # A URL without secrets is shown as itself; only scrub the ones that hide some,
            # and every part a shown form hides (Apprise's own log lines may quote them).
            "secrets": [s for s in self.secrets if s not in {t.shown for t in self.targets}]
            + [part for t in self.targets for part in secret_parts(t.url)]
            + url_secrets(self.store.target),
            "log_format": self.log_format,
        }
        try:
            done = subprocess.run(
                [self.python, "-m", "watchdog.courier"],
                input=json.dumps(orders),
                text=True,
                timeout=DELIVER_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            self.log.error("courier_timeout", detail=f"delivery took over {DELIVER_TIMEOUT_S:g}s")
            return due
        if done.returncode != 0:
            # The child said why on stderr (the journal); the messages stay in the outbox.
            self.log.error("courier_failed", exit_code=done.returncode, pending=due)
        return due


# -- the child ------------------------------------------------------------------------------


def _check(urls: list[str]) -> dict[str, Any]:
    from watchdog.notify import describe_target, url_problem

    return {"shown": [describe_target(u) for u in urls], "problems": [url_problem(u) for u in urls]}


def _deliver(orders: dict[str, Any]) -> int:
    from watchdog import log
    from watchdog.notify import AppriseTransport
    from watchdog.outbox import Outbox
    from watchdog.store import Store, StoreError

    log.configure(format=orders.get("log_format", "json"))
    log.set_secrets(orders.get("secrets", []))
    logger = log.get_logger()
    state = str(orders["state"])
    # One courier at a time per state file; instances sharing a database claim each
    # message instead (watchdog.outbox), so their couriers may run at once.
    lock_path = os.devnull if is_postgres_url(state) else f"{state}.courier.lock"
    with open(lock_path, "a") as lock:
        if lock_path != os.devnull:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return 0  # another courier is at it; the next round picks up what is left
        # The daemon's time when it sent us, moved on by the real time since: a message's
        # delay and `sent` mark are when it really went out (each target has its thread).
        now, began = datetime.fromisoformat(orders["now"]), time.monotonic()

        def clock() -> datetime:
            return now + timedelta(seconds=time.monotonic() - began)

        targets = [make_target(t["url"], t["severities"], t["shown"]) for t in orders["targets"]]
        try:
            with Store.open(state) as store:
                instance = str(orders.get("instance") or "local")
                Outbox(
                    store, AppriseTransport(), targets, clock, logger, instance=instance
                ).deliver()
        except StoreError as exc:
            logger.error("courier_failed", detail=str(exc))
            return 1
    return 0


def main() -> int:
    orders = json.loads(sys.stdin.read())
    if orders.get("mode") == "check":
        print(json.dumps(_check(list(orders["urls"]))))
        return 0
    if orders.get("mode") == "deliver":
        return _deliver(orders)
    print(f"unknown courier mode {orders.get('mode')!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
