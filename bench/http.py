"""/status and /preflight of the running daemon under wrk (50 connections), side by side
with a bare uvicorn+Starlette app returning fixed JSON on the same machine."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import tempfile
import time

import httpx

from bench.common import BIN, ROOT, Result, say

DURATION_S = 8
CONNECTIONS = 50


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_http(url: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def wrk(url: str, method: str = "GET") -> tuple[float, float, float]:
    """Requests per second, p50 and p99 latency (ms) of `url`."""
    command = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{DURATION_S}s", "--latency", url]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rps = float(_find(r"Requests/sec:\s+([\d.]+)", out)[0])

    def quantile(q: str) -> float:
        value, unit = _find(rf"\s{q}%\s+([\d.]+)(us|ms|s)", out)
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{url}: {errors.group(1)} error responses")
    return rps, quantile("50"), quantile("99")


def one_at_a_time(url: str, requests: int = 500) -> float:
    """Median ms of a pre-flight as a job makes it: one request at a time, keep-alive."""
    times = []
    with httpx.Client() as client:
        for _ in range(requests):
            began = time.perf_counter()
            client.get(url)
            times.append((time.perf_counter() - began) * 1000)
    times.sort()
    return times[len(times) // 2]


def _find(pattern: str, text: str) -> tuple[str, ...]:
    match = re.search(pattern, text)
    if match is None:
        raise RuntimeError(f"wrk printed no {pattern!r}:\n{text}")
    return match.groups()


def run() -> list[Result]:
    if shutil.which("wrk") is None:
        say("  skipped: wrk is not installed (apt-get install wrk)")
        return []
    results: list[tuple[str, float, float, float]] = []
    port = free_port()
    bare = subprocess.Popen(
        [
            str(BIN / "python"),
            "-m",
            "uvicorn",
            "bench.bare_app:app",
            "--port",
            str(port),
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/fixed")
        wrk(f"http://127.0.0.1:{port}/fixed")  # warm-up
        results.append(("bare", *wrk(f"http://127.0.0.1:{port}/fixed")))
    finally:
        bare.terminate()
        bare.wait()
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        # The daemon ticks every second (the demo at 60x) while it serves.
        daemon = subprocess.Popen(
            [
                str(BIN / "budget-watchdog"),
                "demo",
                "--profile",
                "steady",
                "--listen",
                f"127.0.0.1:{port}",
                "--state-dir",
                tmp,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            wait_http(f"{base}/status")
            time.sleep(2)
            wrk(f"{base}/preflight?cost=1")  # warm-up
            results.append(("preflight", *wrk(f"{base}/preflight?cost=1")))
            results.append(("status", *wrk(f"{base}/status")))
            single = one_at_a_time(f"{base}/preflight?cost=1")
        finally:
            daemon.terminate()
            daemon.wait()
    table = {name: (rps, p50, p99) for name, rps, p50, p99 in results}
    for name, (rps, p50, p99) in table.items():
        say(f"  {name:9} {rps:8.0f} req/s  p50 {p50:.2f} ms  p99 {p99:.2f} ms")
    say(f"  one pre-flight at a time: {single:.2f} ms median")
    bare_rps, _, bare_p99 = table["bare"]
    pre_rps, pre_p50, pre_p99 = table["preflight"]
    st_rps, _, st_p99 = table["status"]
    note = f"wrk -c{CONNECTIONS} -d{DURATION_S}s, the daemon ticking every second"
    return [
        Result(
            "/preflight throughput vs bare uvicorn+Starlette fixed JSON",
            pre_rps / bare_rps,
            "x",
            0.5,
            lower_is_better=False,
            note=f"{pre_rps:.0f} vs {bare_rps:.0f} req/s; {note}",
        ),
        Result(
            "/preflight p99 latency under that load",
            pre_p99,
            "ms",
            5.0,
            note=f"bare uvicorn+Starlette: {bare_p99:.2f} ms under the same load "
            f"({pre_p99 / bare_p99:.2f}x); issue #6 asks ≤ 10 ms; {note}",
        ),
        Result(
            "/status throughput vs bare",
            st_rps / bare_rps,
            "x",
            0.5,
            lower_is_better=False,
            note=f"{st_rps:.0f} vs {bare_rps:.0f} req/s",
        ),
        Result("/status p99 latency under that load", st_p99, "ms", 10.0, note=note),
        Result(
            "a local pre-flight vs one 150 ms HTTPS round trip (speed-up)",
            150 / single,
            "x",
            50,
            lower_is_better=False,
            note=f"{single:.2f} ms one at a time; under 50 connections p50 {pre_p50:.2f} ms "
            f"({150 / pre_p50:.0f}x)",
        ),
    ]


if __name__ == "__main__":
    for r in run():
        print(r)
