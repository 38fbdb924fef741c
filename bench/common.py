"""Shared helpers for the benchmarks: results, the machine, timing subprocesses."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Result:
    """One figure: what was measured, its value, the target, and how they compare."""

    name: str
    value: float
    unit: str
    target: float | None
    lower_is_better: bool = True
    note: str = ""

    @property
    def ratio(self) -> float | None:
        """value / target (lower is better) or target / value (higher is better)."""
        if self.target is None or self.target == 0:
            return None
        return self.value / self.target if self.lower_is_better else self.target / self.value

    @property
    def ok(self) -> bool | None:
        if self.target == 0:
            return self.value <= 0 if self.lower_is_better else None
        ratio = self.ratio
        return None if ratio is None else ratio <= 1.0


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores{mem}; {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}"
    )


def env_with_bytecode() -> dict[str, str]:
    """The environment of a normal machine: Python may write and use .pyc files."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def median_runs(commands: list[list[str]], rounds: int, env: dict[str, str]) -> list[float]:
    """Median wall time (ms) of each command, run interleaved so drift hits all alike."""
    times: list[list[float]] = [[] for _ in commands]
    for _ in range(rounds):
        for i, command in enumerate(commands):
            start = time.perf_counter()
            subprocess.run(
                command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False
            )
            times[i].append((time.perf_counter() - start) * 1000)
    return [statistics.median(t) for t in times]


class QuietLog:
    """A logger that drops everything: the benchmarks time the work, not the printing."""

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: None


def say(text: str) -> None:
    print(text, flush=True)
