"""Several instances on one PostgreSQL (issue 16): how soon a follower takes over from a
SIGKILLed leader, /preflight reservations on PostgreSQL side by side with SQLite, and the
database time of a tick on the leader and on a follower.

- Failover: two `budget-watchdog run` on a throwaway PostgreSQL (tests/pg.py) and the
  loopback fake OpenRouter, polling every second (so the lease is 3 s). The leader is
  SIGKILLed at a random moment of its lease; the figure is the time from the signal to the
  new leader's first request at the fake provider. The killed instance is started again,
  as the follower of the next run.
- /preflight: one daemon on SQLite and one on PostgreSQL, both polling every second, loaded
  in turn by the same client (wrk -t2 -c50), rounds alternated so drift hits both alike:
  POST reservations, each released (DELETE) as soon as it is granted, as a job reserves
  and releases (the holds stay few: none runs out of headroom or room); and plain GETs.
- Database time per tick: in-process, the real Tick of a leader and of a follower on one
  PostgreSQL (and of the one daemon on SQLite), with the history a daemon has on the 28th of
  a month (one sample a minute since the 1st); every call into the database layer is timed
  (statements, and a unit's BEGIN, lock and COMMIT).
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench.common import BIN, ROOT, QuietLog, Result, say
from bench.http import CONNECTIONS, THREADS, free_port, wait_http, wrk
from tests.e2e.conftest import wait_for

FAILOVER_RUNS = 5
POLL_S = 1.0
LEASE_S = 3.0  # clamp(poll_interval, 3 s, 60 s): watchdog.cli._lease
ROUNDS = 3  # wrk rounds per engine
DURATION_S = 4
TICKS = 200
WARMUP = 20
KEYS, SPENDING = 100, 5  # the management-key case: the account's keys, how many spend

# wrk: a POST reserves; the next request of that thread releases what it was granted.
RESERVE_RELEASE = r"""
local ids = {}
request = function()
  local id = table.remove(ids)
  if id then
    return wrk.format("DELETE", "/preflight/" .. id)
  end
  return wrk.format("POST", "/preflight?cost=0.01&hold=60s&label=bench")
end
response = function(status, headers, body)
  local id = body:match('"reservation":{"id":"(%x+)"')
  if id then
    table.insert(ids, id)
  end
end
"""


# -- processes ----------------------------------------------------------------------------


@dataclass
class Daemon:
    """`budget-watchdog run` with its config, status port and, once started, process."""

    config: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Daemon:
        self.process = subprocess.Popen(
            [str(BIN / "budget-watchdog"), "run", "--config", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=ROOT,
        )
        return self

    def role(self) -> str | None:
        try:
            answer = httpx.get(f"http://127.0.0.1:{self.port}/status", timeout=2)
            return str(answer.json()["instance"]["role"])
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return None

    def kill(self) -> float:
        """SIGKILL it; the monotonic time the signal went."""
        assert self.process is not None
        at = time.monotonic()
        self.process.kill()
        self.process.wait()
        return at

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def write_config(
    directory: Path, base_url: str, state: str, port: int, *, management: bool = False
) -> Path:
    from tests.fake_openrouter import API_KEY, MANAGEMENT_KEY

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "watchdog.toml"
    mgmt = f'management_key = "{MANAGEMENT_KEY}"\n' if management else ""
    path.write_text(
        f'[provider]\nbase_url = "{base_url}"\napi_key = "{API_KEY}"\n{mgmt}'
        f'poll_interval = "{POLL_S:g}s"\ntimeout = "2s"\n'
        f'[budget]\ndaily_limit = 50.0\n[killswitch]\npath = "{directory}/permit"\nttl = "1m"\n'
        f'[server]\nlisten = "127.0.0.1:{port}"\n[state]\n{state}\n'
    )
    path.chmod(0o600)
    return path


# -- failover -----------------------------------------------------------------------------


def failover(server: Any, runs: int = FAILOVER_RUNS) -> list[float]:
    """Seconds from the leader's SIGKILL to the new leader's first poll, `runs` times."""
    from tests.fake_openrouter import FakeOpenRouter

    fake = FakeOpenRouter().start()
    url = server.url(schema=server.create_schema())
    took: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        pair = []
        for name in ("a", "b"):
            port = free_port()
            config = write_config(Path(tmp) / name, fake.base_url, f'url = "{url}"', port)
            pair.append(Daemon(config, port).start())
        try:
            for _ in range(runs):
                leaders = wait_for(
                    lambda: [d for d in pair if d.role() == "leader"], 30, "a leader"
                )
                leader = leaders[0]
                follower = pair[1 - pair.index(leader)]
                wait_for(lambda: follower.role() == "follower", 30, "the follower")  # noqa: B023
                # Polling steadily, then a kill at a random point of the lease's renewals.
                wait_for(lambda: len(fake.polls_between(time.monotonic() - 1.5)) >= 1, 10, "polls")
                time.sleep(random.uniform(1.0, 2.0))
                killed_at = leader.kill()
                polled = wait_for(lambda: fake.polls_between(killed_at), 30, "a poll")  # noqa: B023
                first = polled[0]
                took.append(first - killed_at)
                say(f"  failover {len(took)}: {took[-1]:.2f} s")
                leader.start()  # back, as the follower
        finally:
            for daemon in pair:
                daemon.stop()
            fake.stop()
    return took


# -- /preflight ---------------------------------------------------------------------------


def wrk_script(url: str, script: Path, duration_s: int) -> tuple[float, int]:
    """Requests per second under `script`, and how many answers were not 2xx."""
    command = [
        "wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{duration_s}s", "-s", str(script), url,
    ]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if match is None:
        raise RuntimeError(f"wrk printed no Requests/sec:\n{out}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return float(match.group(1)), int(errors.group(1)) if errors else 0


def preflight(server: Any) -> dict[str, dict[str, list[float]]]:
    """Requests/s of reserve+release and of GET /preflight for each engine, each round."""
    from tests.fake_openrouter import FakeOpenRouter

    fake = FakeOpenRouter().start()
    got: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "reserve_release.lua"
        script.write_text(RESERVE_RELEASE)
        daemons: dict[str, Daemon] = {}
        states = {
            "sqlite": f'path = "{tmp}/sqlite/state.db"',
            "postgresql": f'url = "{server.url(schema=server.create_schema())}"',
        }
        for engine, state in states.items():
            port = free_port()
            config = write_config(Path(tmp) / engine, fake.base_url, state, port, management=True)
            daemons[engine] = Daemon(config, port).start()
            got[engine] = {"reserve": [], "get": []}
        try:
            for engine, daemon in daemons.items():
                base = f"http://127.0.0.1:{daemon.port}"
                wait_http(f"{base}/status")
                wait_for(
                    lambda: httpx.get(f"{base}/preflight?cost=1").status_code == 200,  # noqa: B023
                    20,
                    f"go on {engine}",
                )
                wrk_script(base, script, 2)  # warm-up
                wrk(f"{base}/preflight?cost=1", 2)
            for _ in range(ROUNDS):
                for engine, daemon in daemons.items():
                    base = f"http://127.0.0.1:{daemon.port}"
                    rps, errors = wrk_script(base, script, DURATION_S)
                    if errors:
                        raise RuntimeError(f"{engine}: {errors} reservations refused or failed")
                    got[engine]["reserve"].append(rps)
                    got[engine]["get"].append(wrk(f"{base}/preflight?cost=1", DURATION_S)[0])
                    say(
                        f"  {engine:10} reserve+release {rps:7.0f} req/s  "
                        f"GET {got[engine]['get'][-1]:7.0f} req/s"
                    )
        finally:
            for daemon in daemons.values():
                daemon.stop()
            fake.stop()
    return got


def paired(a: Sequence[float], b: Sequence[float]) -> float:
    """The median of each round's ratio a/b (a busy neighbour slows both of a pair)."""
    return statistics.median(x / y for x, y in zip(a, b, strict=True))


# -- database time per tick ---------------------------------------------------------------


class Timed:
    """A database layer (watchdog.db.Database) whose every call is timed: `seconds` and
    `calls` add up what went to the engine (a unit's BEGIN and lock, and its COMMIT, count
    as one call each)."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self.seconds = 0.0
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)

    def _timed(self, call: Callable[..., Any], *args: Any) -> Any:
        began = time.perf_counter()
        try:
            return call(*args)
        finally:
            self.seconds += time.perf_counter() - began
            self.calls += 1

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        return self._timed(self.db.execute, sql, args)

    def one(self, sql: str, args: Sequence[Any] = ()) -> Any:
        return self._timed(self.db.one, sql, args)

    def all(self, sql: str, args: Sequence[Any] = ()) -> Any:
        return self._timed(self.db.all, sql, args)

    def run(self, sql: str, args: Sequence[Any] = ()) -> Any:
        return self._timed(self.db.run, sql, args)

    def run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> Any:
        return self._timed(self.db.run_many, sql, rows)

    def clock_ms(self) -> Any:
        return self._timed(self.db.clock_ms)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        inner = self.db.transaction()
        self._timed(inner.__enter__)
        try:
            yield
        except BaseException as exc:
            if not self._timed(inner.__exit__, type(exc), exc, exc.__traceback__):
                raise
        else:
            self._timed(inner.__exit__, None, None, None)


@dataclass
class TickTimes:
    """Per tick: milliseconds in the database, database calls, and the whole tick."""

    db_ms: list[float] = field(default_factory=list)
    calls: list[int] = field(default_factory=list)
    tick_ms: list[float] = field(default_factory=list)

    def line(self, name: str) -> str:
        return (
            f"  {name:18} database {median(self.db_ms):6.2f} ms a tick (p95 "
            f"{p95(self.db_ms):.2f}), {median(self.calls):.0f} calls; whole tick "
            f"{median(self.tick_ms):.2f} ms"
        )


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def p95(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def seeded_history(target: str, now: datetime, key_hashes: Sequence[str] = ()) -> None:
    """One sample a minute from the 1st of `now`'s month to `now`, $0.01 a minute, for the
    account and for each of `key_hashes` (keys that spent every minute)."""
    import sqlite3

    import psycopg

    from watchdog.core.model import Sample
    from watchdog.store import Store

    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    minutes = int((now - start).total_seconds() // 60)
    with Store.open(target) as store:
        for chunk in range(0, minutes, 5000):
            samples = [
                Sample(
                    ts=start + timedelta(minutes=m),
                    usage=100.0 + m * 0.01,
                    usage_daily=(m % 1440) * 0.01,
                    usage_monthly=m * 0.01,
                )
                for m in range(chunk, min(minutes, chunk + 5000))
            ]
            with store.unit() as unit:
                unit.add_samples(samples)
    rows = [
        (h, int((start + timedelta(minutes=m)).timestamp() * 1000), m * 0.01, 0)
        for h in key_hashes
        for m in range(minutes)
    ]
    if not rows:
        return
    if target.startswith("postgresql://"):  # COPY: the store writes a row at a time
        with (
            psycopg.connect(target) as conn,
            conn.cursor().copy("COPY key_samples (hash, ts, usage, disabled) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
    else:
        with sqlite3.connect(target) as db:
            db.executemany(
                "INSERT INTO key_samples (hash, ts, usage, disabled) VALUES (?, ?, ?, ?)", rows
            )


def tick_times(
    server: Any, *, keys: int = 0, spending: int = 0, ticks: int = TICKS, warmup: int = WARMUP
) -> dict[str, TickTimes]:
    """Database time of the leader's and the follower's ticks on PostgreSQL, and of the
    daemon's tick on SQLite, on a month of history; the election's cost beside them. With
    `keys`: a management key, the account's `keys` keys (bench.keys.ManyKeys), `spending` of
    them with a month of samples and spending at every poll."""
    from bench.keys import ManyKeys
    from tests.fakes import Clock, ScriptedProvider
    from watchdog.config import load
    from watchdog.leader import Leadership
    from watchdog.permitfile import Issuer
    from watchdog.providers.base import AccountAdmin, Provider
    from watchdog.store import Store
    from watchdog.tick import Tick

    now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    out: dict[str, TickTimes] = {}
    hashes = [f"{i:064x}" for i in range(spending)]
    with tempfile.TemporaryDirectory() as tmp:
        url = server.url(schema=server.create_schema())
        sqlite = f"{tmp}/state.db"
        for target in (url, sqlite):
            seeded_history(target, now, hashes)
        clock = Clock(now)
        ticks_by: dict[str, tuple[Tick, Timed]] = {}
        stores: list[Store] = []
        roles = (("leader", url), ("follower", url), ("SQLite", sqlite))
        for name, target in roles:
            store = Store.open(target)
            stores.append(store)
            timed = Timed(store._db)
            setattr(store, "_db", timed)  # noqa: B010  (every call of the store and its units)
            overrides: dict[str, Any] = {
                "state": {"url": url} if target == url else {"path": sqlite},
                "killswitch": {"path": f"{tmp}/{name}/permit"},
                "budget": {"daily_limit": 50.0},
            }
            provider: Provider
            admin: AccountAdmin | None = None
            if keys:
                overrides["provider"] = {"management_key": "sk-or-v1-" + "0" * 64}
                many = ManyKeys(clock, keys, spending)
                month = now - now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
                seeded = month.total_seconds() // 60 * 0.01  # where the seeded counters end
                many.usage[:spending] = [seeded] * spending
                provider, admin = many, many  # type: ignore[assignment]
            else:
                usage = [500.0 + i * 0.01 for i in range(warmup + ticks + 1)]
                provider = ScriptedProvider(clock, usage)
            settings = load(None, require_key=False, overrides=overrides).settings
            leadership = None
            if target == url:
                leadership = Leadership(store, name, timedelta(hours=1), lambda: datetime.now(UTC))
                leadership.try_lead()
            tick = Tick(
                policy=settings.policy(),
                provider=provider,
                admin=admin,
                store=store,
                permit=Issuer(settings.killswitch.path, clock),
                clock=clock,
                log=QuietLog(),
                leadership=leadership,
            )
            ticks_by[name] = (tick, timed)
            out[name] = TickTimes()
        try:
            for n in range(warmup + ticks):
                for name, (tick, timed) in ticks_by.items():
                    timed.seconds, timed.calls = 0.0, 0
                    began = time.perf_counter()
                    result = tick.run()
                    took = time.perf_counter() - began
                    if result.outcome is None:
                        raise RuntimeError(f"{name}: the tick failed: {result.failure}")
                    if n >= warmup:
                        out[name].db_ms.append(timed.seconds * 1000)
                        out[name].calls.append(timed.calls)
                        out[name].tick_ms.append(took * 1000)
                clock.advance(seconds=60)
            # The election beside the ticks: one attempt every lease / 6.
            leader_tick, leader_timed = ticks_by["leader"]
            assert leader_tick.leadership is not None
            lease = TickTimes()
            for _ in range(100):
                leader_timed.seconds, leader_timed.calls = 0.0, 0
                leader_tick.leadership.try_lead()
                lease.db_ms.append(leader_timed.seconds * 1000)
                lease.calls.append(leader_timed.calls)
                lease.tick_ms.append(leader_timed.seconds * 1000)
            out["election attempt"] = lease
        finally:
            for store in stores:
                store.close()
    for name, times in out.items():
        say(times.line(name))
    return out


# -- the suite ----------------------------------------------------------------------------


def run() -> list[Result]:
    from tests.pg import find_bindir, start_server

    if find_bindir() is None:
        say("  skipped: no PostgreSQL binaries (initdb, pg_ctl): apt-get install postgresql")
        return []
    server = start_server()
    try:
        results = []
        took = failover(server)
        bound = 2 * POLL_S + LEASE_S
        results.append(
            Result(
                "failover: a SIGKILLed leader's successor polls (max of "
                f"{len(took)}; poll_interval {POLL_S:g} s, lease {LEASE_S:g} s)",
                max(took),
                "s",
                bound,
                note=f"median {median(took):.2f} s, runs {', '.join(f'{t:.2f}' for t in took)}; "
                "target 2 x poll_interval + lease",
            )
        )
        if shutil.which("wrk") is None:
            say("  /preflight skipped: wrk is not installed (apt-get install wrk)")
        else:
            got = preflight(server)
            pg, lite = got["postgresql"], got["sqlite"]
            note = (
                f"wrk -t{THREADS} -c{CONNECTIONS} -d{DURATION_S}s, {ROUNDS} alternated rounds, "
                "medians; each daemon polls a loopback fake every second"
            )
            results.append(
                Result(
                    "POST /preflight (reserve, then release) on PostgreSQL vs SQLite",
                    paired(pg["reserve"], lite["reserve"]),
                    "x",
                    0.5,
                    lower_is_better=False,
                    note=f"{median(pg['reserve']):.0f} vs {median(lite['reserve']):.0f} "
                    f"req/s (POST and DELETE alternate); {note}",
                )
            )
            results.append(
                Result(
                    "GET /preflight on PostgreSQL vs SQLite",
                    paired(pg["get"], lite["get"]),
                    "x",
                    0.5,
                    lower_is_better=False,
                    note=f"{median(pg['get']):.0f} vs {median(lite['get']):.0f} req/s; {note}",
                )
            )
        history = "a month of minute samples; in-process, every database call timed"
        scenarios = (
            ("", tick_times(server), "the watched key only"),
            (
                ", management key",
                tick_times(server, keys=KEYS, spending=SPENDING, ticks=10, warmup=2),
                f"{KEYS} keys, {SPENDING} of them spending every minute since the 1st",
            ),
        )
        for suffix, times, what in scenarios:
            for name in ("leader", "follower", "SQLite"):
                t = times[name]
                where = "one host on SQLite" if name == "SQLite" else f"{name} on PostgreSQL"
                results.append(
                    Result(
                        f"database time per tick, {where}{suffix}",
                        median(t.db_ms),
                        "ms",
                        None,
                        note=f"median of {len(t.db_ms)}, p95 {p95(t.db_ms):.2f} ms, "
                        f"{median(t.calls):.0f} calls; whole tick {median(t.tick_ms):.2f} ms; "
                        f"{what}; {history}",
                    )
                )
        lease = scenarios[0][1]["election attempt"]
        results.append(
            Result(
                "database time of an election attempt (every lease / 6)",
                median(lease.db_ms),
                "ms",
                None,
                note=f"p95 {p95(lease.db_ms):.2f} ms, {median(lease.calls):.0f} calls",
            )
        )
        return results
    finally:
        server.remove()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.parse_args()
    for r in run():
        print(r)
    sys.exit(0)
