"""Start-up: from exec to the status server answering, while the provider hangs."""

from __future__ import annotations

import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from bench.common import BIN, Result, env_with_bytecode, say
from tests.fake_openrouter import API_KEY, FakeOpenRouter, Fault
from tests.servers import free_port


def once(fake: FakeOpenRouter, tmp: Path, n: int) -> float:
    port = free_port()
    config = tmp / f"watchdog-{n}.toml"
    config.write_text(
        f'[provider]\nbase_url = "{fake.base_url}"\napi_key = "{API_KEY}"\ntimeout = "30s"\n'
        f'[state]\npath = "{tmp}/state-{n}.db"\n[killswitch]\npath = "{tmp}/permit-{n}"\n'
        f'[server]\nlisten = "127.0.0.1:{port}"\n'
        '[[notify.targets]]\nurl = "json://127.0.0.1:9/hook"\n'
    )
    config.chmod(0o600)
    began = time.perf_counter()
    proc = subprocess.Popen(
        [str(BIN / "budget-watchdog"), "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env_with_bytecode(),
    )
    try:
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5)
                return time.perf_counter() - began
            except httpx.TransportError:
                if proc.poll() is not None:
                    raise RuntimeError("the daemon exited") from None
                time.sleep(0.005)
    finally:
        proc.kill()  # a SIGTERM would wait for the hanging poll to time out
        proc.wait()


def run() -> list[Result]:
    fake = FakeOpenRouter().start()
    fake.fault(Fault(status=200, delay=30))  # every poll hangs
    try:
        with tempfile.TemporaryDirectory() as tmp:
            once(fake, Path(tmp), -1)  # warm caches
            times = [once(fake, Path(tmp), n) for n in range(5)]
    finally:
        fake.clear_faults()
        fake.stop()
    ready = statistics.median(times)
    say(
        f"  ready (HTTP answering) {ready * 1000:.0f} ms after exec, provider hanging "
        f"(median of 5: {', '.join(f'{t * 1000:.0f}' for t in times)} ms)"
    )
    return [
        Result(
            "daemon ready (HTTP answering) after exec, provider hanging",
            ready,
            "s",
            1.0,
            note="median of 5 starts, one notification target checked by the courier",
        )
    ]
