"""/preflight and /status under wrk (50 connections), side by side with a bare
uvicorn+Starlette app returning fixed JSON on the same machine, in the same run.

`run()` (what `make bench` runs) measures `budget-watchdog run` polling every second with a
management key (so every tick asks /key, /credits, /keys and, once, /activity) against the
loopback fake OpenRouter the tests use. `python -m bench.http --app-alone` measures the HTTP
layer alone: `StatusServer` serving one fixed, realistic View in its own process, no daemon,
no tick, against the bare app, alternating rounds so drift hits both alike.
"""

from __future__ import annotations

import argparse
import re
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from bench.common import BIN, ROOT, Result, say

DURATION_S = 8
CONNECTIONS = 50
THREADS = 2


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


def wrk(url: str, duration_s: int = DURATION_S) -> tuple[float, float, float]:
    """Requests per second, p50 and p99 latency (ms) of `url`."""
    command = [
        "wrk",
        f"-t{THREADS}",
        f"-c{CONNECTIONS}",
        f"-d{duration_s}s",
        "--latency",
        url,
    ]
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


@contextmanager
def serving(command: list[str], ready_url: str) -> Iterator[None]:
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_http(ready_url)
        yield
    finally:
        process.terminate()
        process.wait()


def bare_command(port: int) -> list[str]:
    """The yardstick, served the way uvicorn serves any app (asyncio loop, httptools)."""
    return [
        str(BIN / "python"),
        "-m",
        "uvicorn",
        "bench.bare_app:app",
        "--port",
        str(port),
        "--http",
        "httptools",
        "--loop",
        "asyncio",
        "--no-access-log",
        "--log-level",
        "warning",
    ]


def run() -> list[Result]:
    """The daemon (polling every second) against the bare app, in the same run."""
    if shutil.which("wrk") is None:
        say("  skipped: wrk is not installed (apt-get install wrk)")
        return []
    results: dict[str, tuple[float, float, float]] = {}
    port = free_port()
    with serving(bare_command(port), f"http://127.0.0.1:{port}/fixed"):
        wrk(f"http://127.0.0.1:{port}/fixed")  # warm-up
        results["bare"] = wrk(f"http://127.0.0.1:{port}/fixed")
    from tests.fake_openrouter import API_KEY, MANAGEMENT_KEY, FakeOpenRouter

    fake = FakeOpenRouter().start()
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        config = f"{tmp}/watchdog.toml"
        with open(config, "w") as handle:
            handle.write(
                f'[provider]\nbase_url = "{fake.base_url}"\napi_key = "{API_KEY}"\n'
                f'management_key = "{MANAGEMENT_KEY}"\npoll_interval = "1s"\n'
                f'[budget]\ndaily_limit = 50.0\n[killswitch]\npath = "{tmp}/permit"\n'
                f'ttl = "1m"\n[server]\nlisten = "127.0.0.1:{port}"\n'
                f'[state]\npath = "{tmp}/state.db"\n'
            )
        daemon = [str(BIN / "budget-watchdog"), "run", "--config", config]
        with serving(daemon, f"{base}/status"):
            time.sleep(2)
            wrk(f"{base}/preflight?cost=1")  # warm-up
            results["preflight"] = wrk(f"{base}/preflight?cost=1")
            results["status"] = wrk(f"{base}/status")
            single = one_at_a_time(f"{base}/preflight?cost=1")
            polls = sum(1 for _, path, _ in fake.requests if path.endswith("/key"))
    fake.stop()
    say(f"  the daemon polled the fake provider {polls} times meanwhile")
    for name, (rps, p50, p99) in results.items():
        say(f"  {name:9} {rps:8.0f} req/s  p50 {p50:.2f} ms  p99 {p99:.2f} ms")
    say(f"  one pre-flight at a time: {single:.2f} ms median")
    bare_rps, _, bare_p99 = results["bare"]
    pre_rps, pre_p50, pre_p99 = results["preflight"]
    st_rps, _, st_p99 = results["status"]
    note = (
        f"wrk -t{THREADS} -c{CONNECTIONS} -d{DURATION_S}s; the daemon polls a loopback fake "
        "provider every second with a management key"
    )
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
            "/preflight p99 latency vs the bare app's p99 under the same load",
            pre_p99 / bare_p99,
            "x",
            1.5,
            note=f"{pre_p99:.2f} ms vs {bare_p99:.2f} ms (issue #6 asks ≤ 10 ms); {note}",
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


# -- the HTTP layer alone -----------------------------------------------------------------


def serve_fixed_view(port: int) -> None:
    """Serve one realistic View (findings, targets, a 7-day chart) until killed: what the
    status server does between two ticks."""
    import asyncio
    from datetime import UTC, datetime, timedelta

    from bench.common import QuietLog
    from watchdog.core import burn
    from watchdog.core.model import BudgetPolicy, Finding, PollHealth, Sample
    from watchdog.core.permit import Decision
    from watchdog.core.view import TargetView, build
    from watchdog.server import StatusServer, create_app

    def clock() -> datetime:
        return datetime.now(UTC)

    now = clock()
    history = burn.History()
    for minutes in range(7 * 24 * 60, -1, -5):
        spent = (7 * 24 * 60 - minutes) * 0.01
        history.add(Sample(ts=now - timedelta(minutes=minutes), usage=spent, balance=500.0 - spent))
    budget = BudgetPolicy(daily_limit=200.0, monthly_limit=4000.0, stale_after=timedelta(days=1))
    view = build(
        now=now,
        budget=budget,
        metrics=burn.measure(history, now, UTC),
        findings=[Finding("spike", "warning", 0.9, 0.6, "Burning $0.90/h, 1.5x the usual.")],
        decision=Decision(True, "no finding demands a stop"),
        poll=PollHealth(started_at=now - timedelta(hours=1), last_success=now, polls=60),
        key_name="batch",
        scope="key",
        targets=[TargetView("t1", "slack://****/****/****", ("warning", "critical"))],
        chart=history.hourly(now, 168),
    )

    async def main() -> None:
        server = StatusServer(
            create_app(view=lambda: view, clock=clock), "127.0.0.1", port, QuietLog()
        )
        await server.start()
        await asyncio.Event().wait()

    asyncio.run(main())


def app_alone(rounds: int = 5, duration_s: int = DURATION_S) -> None:
    """Alternate the bare app and the status server (a fixed View), `rounds` times each;
    print every round, the medians, and the medians of each round's ratios (paired, so a
    busy neighbour slows both sides of a pair alike)."""
    bare_port, app_port = free_port(), free_port()
    view_command = [str(BIN / "python"), "-m", "bench.http", "--serve-view", str(app_port)]
    bare_url = f"http://127.0.0.1:{bare_port}/fixed"
    urls = {
        "bare": bare_url,
        "preflight": f"http://127.0.0.1:{app_port}/preflight?cost=1",
        "status": f"http://127.0.0.1:{app_port}/status",
    }
    got: dict[str, list[tuple[float, float, float]]] = {name: [] for name in urls}
    with serving(bare_command(bare_port), bare_url), serving(view_command, urls["status"]):
        for url in urls.values():
            wrk(url, 2)  # warm-up
        for _ in range(rounds):
            for name, url in urls.items():
                got[name].append(wrk(url, duration_s))
                rps, p50, p99 = got[name][-1]
                say(f"  {name:9} {rps:8.0f} req/s  p50 {p50:.2f} ms  p99 {p99:.2f} ms")
    say(f"medians of {rounds} rounds of wrk -t{THREADS} -c{CONNECTIONS} -d{duration_s}s:")
    for name, runs in got.items():
        rps, p50, p99 = (statistics.median(run[i] for run in runs) for i in range(3))
        say(f"  {name:9} {rps:8.0f} req/s  p50 {p50:.2f} ms  p99 {p99:.2f} ms")
    bare = got["bare"]
    for name in ("preflight", "status"):
        runs = got[name]
        rps_ratio = statistics.median(a[0] / b[0] for a, b in zip(runs, bare, strict=True))
        p99_ratio = statistics.median(a[2] / b[2] for a, b in zip(runs, bare, strict=True))
        say(
            f"  {name}: {rps_ratio:.2f}x the bare app's requests/s (target >= 0.5), "
            f"p99 {p99_ratio:.2f}x its p99 (target <= 1.5); medians of paired rounds"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--app-alone", action="store_true", help="the HTTP layer, no daemon")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=DURATION_S, help="seconds per wrk run")
    parser.add_argument("--serve-view", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_view is not None:
        serve_fixed_view(args.serve_view)
    elif args.app_alone:
        app_alone(args.rounds, args.duration)
    else:
        for r in run():
            print(r)
