"""`budget-watchdog gate` (the account permit, and `--key` with a key's permit beside it)
against `python3 -c pass` on the same interpreter.

It runs the installed console script, as a batch job would: that script must be the one
whose entry point is `watchdog.entry:main` (`pip install -e .` again after it changed).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.common import BIN, ROOT, Result, env_with_bytecode, median_runs, say
from watchdog.permitfile import KeyPermit, KeyPermits, keys_directory

KEYS = 500  # an account's keys, as the daemon keeps them: one file each


def run(rounds: int = 150) -> list[Result]:
    # No WATCHDOG_* variable from the shell: the permit path alone is measured, not a
    # config (tomllib) or another ttl that would make this permit no-go.
    env = {k: v for k, v in env_with_bytecode().items() if not k.startswith("WATCHDOG_")}
    script = BIN / "budget-watchdog"
    if "watchdog.entry" not in script.read_text():
        raise SystemExit(
            f"{script} is not the current console script (its entry point should be "
            "watchdog.entry:main): run `pip install -e .` again"
        )
    subprocess.run(
        [str(BIN / "python"), "-m", "compileall", "-q", str(ROOT / "watchdog")], env=env, check=True
    )
    with tempfile.TemporaryDirectory() as tmp:
        permit = Path(tmp) / "permit"
        now = datetime.now(UTC)
        # The key permits as the daemon writes them, a directory of KEYS files.
        keys = KeyPermits(keys_directory(permit), lambda: now)
        epoch = keys.start()
        keys.sync(
            {
                f"batch job {i}": KeyPermit(f"batch job {i}", f"h{i}", True, "", 20.0)
                for i in range(KEYS)
            }
        )
        permit.write_text(
            json.dumps(
                {
                    "state": "armed",
                    "issued_at": now.isoformat(),
                    "expires_at": (now + timedelta(minutes=5)).isoformat(),
                    "balance": 50.0,
                    "runway_days": 9.5,
                    "headroom_usd": 12.0,
                    "keys_epoch": epoch,
                }
            )
        )
        python = [str(BIN / "python"), "-c", "pass"]
        gate = [str(script), "gate", "--permit", str(permit), "--cost", "3"]
        gate_key = [*gate, "--key", f"batch job {KEYS // 2}"]
        for command in (gate, gate_key):
            first = subprocess.run(command, env=env, capture_output=True, text=True)
            if first.returncode != 0:
                raise SystemExit(f"gate said exit {first.returncode}: {first.stderr.strip()}")
        median_runs([python, gate, gate_key], 10, env)  # warm the page cache
        start = time.monotonic()
        base, ours, keyed = median_runs([python, gate, gate_key], rounds, env)
        say(
            f"  gate {ours:.1f} ms, gate --key {keyed:.1f} ms vs python -c pass {base:.1f} ms "
            f"({rounds} interleaved runs, {time.monotonic() - start:.0f} s)"
        )
    note = f"medians of {rounds} interleaved runs"
    return [
        Result(
            "gate (permit file) vs `python -c pass`",
            ours / base,
            "x",
            1.3,
            note=f"{ours:.1f} ms vs {base:.1f} ms, {note}",
        ),
        Result(
            "gate --key (key permit beside it) vs `python -c pass`",
            keyed / base,
            "x",
            1.3,
            note=f"{keyed:.1f} ms vs {base:.1f} ms, {note}; {KEYS} key files",
        ),
    ]
