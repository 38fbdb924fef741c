"""The status page in real headless Chromium (Debian's package): it loads and renders."""

from __future__ import annotations

import asyncio
import shutil
import struct
import subprocess
import threading
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from tests.integration.test_server import NOW, view
from watchdog.core.model import Finding, PermitChange, Silence
from watchdog.log import get_logger
from watchdog.server import StatusServer, create_app

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")
def test_the_page_renders_in_chromium(tmp_path: Path) -> None:
    v = view(
        armed=False,
        spent_today=21.0,
        findings=[
            Finding(
                "daily_limit",
                "critical",
                21.0,
                20.0,
                "$21.00 spent today, 105% of the $20.00 daily limit; the limit is reached.",
            ),
            Finding("spike", "warning", 9.0, 2.0, "Burning $9.00/h, 18.0x the usual $0.50/h."),
        ],
    )
    v = replace(
        v,
        silences=(Silence("spike", NOW + timedelta(hours=2), "load test", NOW),),
        permit_history=(
            PermitChange(NOW - timedelta(minutes=7), "revoked", "rules", "daily_limit critical"),
            PermitChange(NOW - timedelta(hours=3), "armed", "alice", "manual arm"),
        ),
    )
    server = StatusServer(
        create_app(view=lambda: v, clock=lambda: NOW), "127.0.0.1", 0, get_logger()
    )
    loop = asyncio.new_event_loop()
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert started.wait(10)
    shot = tmp_path / "status-page.png"
    dom = tmp_path / "dom.html"
    flags = [
        CHROMIUM or "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--hide-scrollbars",
    ]
    url = f"http://127.0.0.1:{server.port}/"
    try:
        subprocess.run(
            [*flags, "--window-size=1100,1500", f"--screenshot={shot}", url],
            check=True,
            capture_output=True,
            timeout=60,
        )
        with dom.open("w") as out:
            subprocess.run(
                [*flags, "--dump-dom", url],
                check=True,
                stdout=out,
                stderr=subprocess.DEVNULL,
                timeout=60,
            )
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (1100, 1500)
    assert len(png) > 20_000  # a rendered page, not a blank one
    rendered = dom.read_text()
    assert "PERMIT REVOKED" in rendered
    assert "silenced until" in rendered and "load test" in rendered
    assert "by rules" in rendered and "by alice" in rendered
    assert rendered.count("<rect") >= 168  # the SVG chart made it into the DOM
    keep = Path("/tmp/budget-watchdog-status-page.png")
    keep.write_bytes(png)  # for a person to look at after the run
