"""Delivery per target through the real daemon and its courier: a slow target (a webhook
that takes 2 s to answer, as Apprise's e-mail pacing does) holds back only itself."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import DaemonProcess, base_config, wait_for
from tests.fake_openrouter import FakeOpenRouter
from watchdog.notify import target_id

SLOW_S = 1.5


class TimedSink:
    """A webhook on 127.0.0.1 that notes when each message arrives, then answers after
    `delay` seconds."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.arrivals: list[tuple[float, str]] = []
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"] or 0)))
                with sink.lock:
                    sink.arrivals.append((time.monotonic(), str(body.get("title"))))
                time.sleep(sink.delay)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"json://127.0.0.1:{self.server.server_address[1]}/{path}"

    def titles(self) -> list[str]:
        with self.lock:
            return [title for _, title in self.arrivals]

    def times(self) -> list[float]:
        with self.lock:
            return [at for at, _ in self.arrivals]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sinks() -> Iterator[tuple[TimedSink, TimedSink]]:
    slow, fast = TimedSink(SLOW_S), TimedSink()
    yield slow, fast
    slow.stop()
    fast.stop()


def test_a_slow_target_does_not_delay_a_fast_ones_messages(
    fake: FakeOpenRouter,
    daemon: Callable[..., DaemonProcess],
    tmp_path: Path,
    sinks: tuple[TimedSink, TimedSink],
) -> None:
    slow, fast = sinks
    fast_url = fast.url("hook")
    # The slow target comes first in the outbox's order of targets (its id sorts first),
    # as the e-mails did before the webhook in the issue.
    slow_url = next(
        url
        for url in (slow.url(f"hook{n}") for n in range(100))
        if target_id(url) < target_id(fast_url)
    )
    fake.account.usage_daily = 25.0  # over the $20 daily limit: critical, permit revoked
    targets = "".join(
        f'[[notify.targets]]\nurl = "{url}"\nseverities = ["warning", "critical"]\n'
        for url in (slow_url, fast_url)
    )
    proc = daemon(base_config(fake, tmp_path, extra="[budget]\ndaily_limit = 20.0\n" + targets))
    proc.start()
    wait_for(lambda: len(fast.titles()) >= 2, timeout=15, what="the fast target's messages")
    wait_for(lambda: len(slow.titles()) >= len(fast.titles()), timeout=20, what="the slow target")
    assert slow.titles()[: len(fast.titles())] == fast.titles()  # the same, in the same order
    assert "[CRITICAL] daily_limit on sk-or-v1-e2e...cdef (budget-watchdog)" in fast.titles()
    # Every message to the fast target arrived before the slow one answered its first.
    assert max(fast.times()[:2]) < min(slow.times()) + SLOW_S * 0.75
