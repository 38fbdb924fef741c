"""The status page in real headless Chromium (Debian's package): it loads and renders, and
its charts draw at the three states an operator meets (fresh install, mid-month, over
budget): screenshots of the expected size, not blank, the charts' colours on them."""

from __future__ import annotations

import asyncio
import shutil
import struct
import subprocess
import threading
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.integration.test_page_charts import CHARTS, STATES, State, charts
from tests.integration.test_server import NOW, view
from watchdog.core.model import Finding, PermitChange, Silence
from watchdog.core.view import View
from watchdog.log import get_logger
from watchdog.page import BLUE, COLORS
from watchdog.server import StatusServer, create_app

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)"
)
# Tall enough for the whole page: header, cards, findings and the four charts.
WINDOW = (1100, 2300)


@contextmanager
def serving(v: View, now: datetime) -> Iterator[str]:
    """The status app on a loopback port in a thread, showing `v` at `now`: its URL."""
    server = StatusServer(
        create_app(view=lambda: v, clock=lambda: now), "127.0.0.1", 0, get_logger()
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
    try:
        yield f"http://127.0.0.1:{server.port}/"
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def chromium(url: str, tmp_path: Path, size: tuple[int, int]) -> tuple[bytes, str]:
    """A screenshot of `url` at `size` and its DOM after rendering."""
    shot = tmp_path / "page.png"
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
        "--force-device-scale-factor=1",
    ]
    subprocess.run(
        [*flags, f"--window-size={size[0]},{size[1]}", f"--screenshot={shot}", url],
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
    return shot.read_bytes(), dom.read_text()


def pixels(png: bytes) -> tuple[int, int, Counter[tuple[int, int, int]]]:
    """Width, height and how many pixels of each colour: a small PNG decoder (8-bit RGB or
    RGBA, not interlaced, as Chromium writes them), so the test needs no imaging library."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, bytearray(), b""
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind, body = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and color in (2, 6) and interlace == 0, header
    bpp = 3 if color == 2 else 4
    raw = zlib.decompress(bytes(idat))
    stride = width * bpp
    counts: Counter[tuple[int, int, int]] = Counter()
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        if kind == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif kind == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, previous, strict=True))
        elif kind == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + previous[i]) >> 1)) & 0xFF
        elif kind == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = previous[i], previous[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                line[i] = (line[i] + pred) & 0xFF
        counts.update(zip(line[0::bpp], line[1::bpp], line[2::bpp], strict=True))
        previous = line
    return width, height, counts


def rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


@needs_chromium
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
    with serving(v, NOW) as url:
        png, rendered = chromium(url, tmp_path, (1100, 1500))
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (1100, 1500)
    assert len(png) > 20_000  # a rendered page, not a blank one
    assert "PERMIT REVOKED" in rendered
    assert "silenced until" in rendered and "load test" in rendered
    assert "by rules" in rendered and "by alice" in rendered
    assert rendered.count("<rect") >= 168  # the SVG chart made it into the DOM
    keep = Path("/tmp/budget-watchdog-status-page.png")
    keep.write_bytes(png)  # for a person to look at after the run


@needs_chromium
@pytest.mark.parametrize("make", STATES, ids=lambda make: make.__name__)
def test_the_charts_draw_at_each_state(make: Callable[[], State], tmp_path: Path) -> None:
    state = make()
    with serving(state.view, state.now) as url:
        png, rendered = chromium(url, tmp_path, WINDOW)
    Path(f"/tmp/budget-watchdog-page-{state.name}.png").write_bytes(png)  # for a person
    width, height, counts = pixels(png)
    assert (width, height) == WINDOW
    found = charts(rendered)  # the DOM after Chromium parsed it: the charts made it in
    assert {k: found[k] for k in CHARTS} == CHARTS and found["burn-chart"] == (940, 200)
    assert "<script" not in rendered.lower()
    white = counts[(255, 255, 255)] + counts[rgb("#f6f8fa")]
    assert white < 0.97 * width * height and len(counts) > 50  # drawn on, not blank
    red, blue = counts[rgb(COLORS["critical"])], counts[rgb(BLUE)]
    if state.name == "fresh-install":
        assert blue < 2_000  # no bars: nothing is known (a little blue in links only)
        assert red > 900  # the monthly limit's line across the month chart
    elif state.name == "mid-month":
        assert blue > 40_000  # the month's, the 30 days' and the top model's bars
    else:
        assert red > 20_000  # the month's bars past the limit, the forecast, the badges
