"""`budget-watchdog demo` as a person runs it: the whole loop, alerts on the console, and a
clean stop by itself even while alerts are being written and delivered."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_demo_runs_the_loop_and_stops_by_itself(tmp_path: Path) -> None:
    # 600x: a tick every 0.1 s, alerts written and couriers started while it stops (a stop
    # that waited on the scheduler while a tick asked it for a delivery once hung here).
    for run in range(2):
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "watchdog",
                "demo",
                "--for",
                "4s",
                "--speed",
                "600",
                "--state-dir",
                str(tmp_path / str(run)),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        assert '"event": "stopped"' in result.stdout
        assert "[WARNING] spike on simulated batch key" in result.stderr  # the console target
        assert "Status page: http://127.0.0.1:" in result.stderr
        assert "Traceback" not in result.stdout + result.stderr
