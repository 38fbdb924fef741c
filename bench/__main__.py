"""`make bench`: run every benchmark, print the figures, write bench/RESULTS.md."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bench import audit, daemon, detection, http, keys, readiness, several, startup, store
from bench.common import ROOT, Result, machine, say

SUITES: list[tuple[str, Callable[[], list[Result]]]] = [
    ("gate start-up", startup.run),
    ("detection and overshoot", detection.run),
    ("daemon start-up", readiness.run),
    ("status server under load", http.run),
    ("daemon footprint", daemon.run),
    ("a year of history", store.run),
    ("spend audit", audit.run),
    ("many keys", keys.run),
    ("several instances (PostgreSQL)", several.run),
]


def security() -> list[Result]:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        say("  skipped: systemd-analyze is not installed")
        return []
    unit = (
        (ROOT / "systemd" / "budget-watchdog.service")
        .read_text()
        .replace(
            "/opt/budget-watchdog/bin/budget-watchdog",
            str(Path(sys.executable).parent / "budget-watchdog"),
        )
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "budget-watchdog.service"
        path.write_text(unit)
        out = subprocess.run(
            [analyze, "security", "--offline=yes", str(path)], capture_output=True, text=True
        ).stdout
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out)
    if not match:
        return []
    say(f"  exposure {match.group(1)}")
    return [
        Result("systemd-analyze security --offline=yes (exposure)", float(match.group(1)), "", 1.5)
    ]


def fmt(value: float, unit: str) -> str:
    if unit == "x":
        return f"{value:.2f}x"
    if abs(value) >= 100:
        return f"{value:,.0f} {unit}".strip()
    return f"{value:.3g} {unit}".strip()


def main() -> int:
    results: list[tuple[str, Result]] = []
    for title, suite in [*SUITES, ("systemd unit", security)]:
        say(f"== {title}")
        results += [(title, r) for r in suite()]
    now = datetime.now(UTC)
    lines = [
        "# Benchmark results",
        "",
        f"Measured {now:%Y-%m-%d %H:%M} UTC by `make bench` on: {machine()}.",
        'Ratios compare the figure with its target (for "higher is better" figures, the',
        "target over the figure), so a ratio of 1.0 or less meets the target. Each figure",
        "is measured side by side with its yardstick on the same machine where the target",
        "is relative.",
        "",
        "| benchmark | figure | target | ratio | met | how |",
        "|---|---|---|---|---|---|",
    ]
    for group, r in results:
        ratio = "" if r.ratio is None else f"{r.ratio:.2f}"
        target = (
            ""
            if r.target is None
            else (("≤ " if r.lower_is_better else "≥ ") + fmt(r.target, r.unit))
        )
        met = {True: "yes", False: "**no**", None: ""}[r.ok]
        lines.append(
            f"| {r.name} | {fmt(r.value, r.unit)} | {target} | {ratio} | {met} | "
            f"{group}: {r.note} |"
        )
    (ROOT / "bench" / "RESULTS.md").write_text("\n".join(lines) + "\n")
    say(f"\nwrote bench/RESULTS.md ({len(results)} figures)")
    for _, r in results:
        mark = {True: "ok  ", False: "MISS", None: "    "}[r.ok]
        say(f"  {mark} {r.name}: {fmt(r.value, r.unit)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
