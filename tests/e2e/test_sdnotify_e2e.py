"""The real daemon speaks systemd's notify protocol to a socket bound by the test."""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.e2e.conftest import DaemonProcess, base_config
from tests.fake_openrouter import FakeOpenRouter
from tests.servers import free_port


def test_ready_watchdog_status_and_stopping_in_order(
    fake: FakeOpenRouter, daemon: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    path = str(tmp_path / "notify.sock")
    port = free_port()
    received: list[str] = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(15)
        config = base_config(fake, tmp_path).replace("127.0.0.1:0", f"127.0.0.1:{port}")
        proc = daemon(config, env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000"}).start()
        first = sock.recv(4096).decode()
        received.append(first)
        # READY=1 comes only once the port is bound: it answers right away.
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code in (200, 503)
        while sum(m == "WATCHDOG=1" for m in received) < 3 or not any(
            m.startswith("STATUS=state") for m in received
        ):
            received.append(sock.recv(4096).decode())
        proc.signal(signal.SIGTERM)
        while "STOPPING=1" not in received:
            received.append(sock.recv(4096).decode())
        assert proc.wait() == 0
    assert first.startswith("READY=1")
    assert received[-1] == "STOPPING=1"
    statuses = [m for m in received if m.startswith("STATUS=state")]
    assert "permit armed" in statuses[-1] and "today $2.00" in statuses[-1]
    assert received.index("WATCHDOG=1") > 0
