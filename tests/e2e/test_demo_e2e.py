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
        assert "Spend audit" in result.stderr and "Savings found: $" in result.stderr
        assert "Traceback" not in result.stdout + result.stderr


DEMO = [sys.executable, "-m", "watchdog", "demo", "--for", "2s", "--speed", "600"]


def test_the_demo_removes_its_own_state_and_keeps_a_given_one(tmp_path: Path) -> None:
    import os
    import re

    env = dict(os.environ, TMPDIR=str(tmp_path))  # where the demo's own temp dir goes
    own = subprocess.run(
        DEMO,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert own.returncode == 0, own.stderr[-2000:]
    removed = re.search(r"demo state removed \((.+)\)", own.stderr)
    assert removed and not Path(removed.group(1)).exists()
    assert [p for p in tmp_path.iterdir() if p.name.startswith("budget-watchdog-demo")] == []
    mine = tmp_path / "mine"
    kept = subprocess.run(
        [*DEMO, "--state-dir", str(mine)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert kept.returncode == 0
    assert f"demo state kept in {mine}" in kept.stderr and (mine / "state.db").exists()
