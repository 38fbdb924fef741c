"""The daemon process under the faults the real provider produces, one after another:
it stays up, logs one clear line per failed poll, turns /healthz to 503 and raises stale,
revokes the permit (on_stale = "revoke"), raises auth on 401/403 (but not on the 403 of a
used-up workspace budget), and recovers by itself."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import DaemonProcess, base_config, wait_for
from tests.fake_openrouter import (
    API_KEY,
    MANAGEMENT_KEY,
    FakeOpenRouter,
    Fault,
    budget_exceeded,
)
from tests.servers import free_port

ERROR = '{"error": {"code": %d, "message": "%s"}}'
FAULTS: list[tuple[str, Fault, str]] = [
    ("500 burst", Fault(500, ERROR % (500, "Internal Server Error")), "transient"),
    ("502 burst", Fault(502, ERROR % (502, "Bad Gateway")), "transient"),
    ("503 burst", Fault(503, "<html>Service Unavailable</html>", "text/html"), "transient"),
    (
        "429 Retry-After",
        Fault(429, ERROR % (429, "Rate limit exceeded"), headers={"Retry-After": "4"}),
        "rate_limited",
    ),
    (
        "429 X-RateLimit-Reset only",  # epoch milliseconds, 4 s ahead when served
        Fault(429, ERROR % (429, "Rate limit exceeded"), reset_in=4),
        "rate_limited",
    ),
    ("slower than the timeout", Fault(200, "{}", delay=1.6), "transient"),
    (
        "HTML instead of JSON",
        Fault(200, "<html><body>maintenance</body></html>", "text/html"),
        "bad_response",
    ),
    ("JSON missing fields", Fault(200, '{"data": {"label": "x", "limit": null}}'), "bad_response"),
    ("401 key revoked", Fault(401, ERROR % (401, "User not found.")), "auth"),
    (
        "403 wrong key type",
        Fault(403, ERROR % (403, "Only management keys can perform this operation")),
        "auth",
    ),
    ("403 workspace budget used up", budget_exceeded(), "provider_budget"),
]


class Watch:
    def __init__(self, proc: DaemonProcess, port: int) -> None:
        self.proc = proc
        self.port = port
        self.responses: list[str] = []

    def get(self, path: str) -> httpx.Response | None:
        try:
            response = httpx.get(f"http://127.0.0.1:{self.port}{path}", timeout=3)
        except httpx.HTTPError:
            return None
        self.responses.append(response.text)
        return response

    def status(self) -> dict[str, Any]:
        response = self.get("/status")
        return response.json() if response is not None else {}

    def healthz(self) -> int:
        response = self.get("/healthz")
        return response.status_code if response is not None else 0


@pytest.fixture
def watched(fake: FakeOpenRouter, daemon: Callable[..., DaemonProcess], tmp_path: Path) -> Watch:
    port = free_port()
    config = (
        base_config(fake, tmp_path, management=True)
        .replace('timeout = "2s"', 'timeout = "1s"')
        .replace("127.0.0.1:0", f"127.0.0.1:{port}")
        + '[budget]\nstale_after = "2s"\n'
    )
    watch = Watch(daemon(config).start(), port)
    wait_for(lambda: watch.healthz() == 200, what="a healthy start")
    return watch


@pytest.mark.slow  # every provider fault in turn (~40 s): make test-slow
def test_every_fault_is_survived_reported_and_recovered(
    fake: FakeOpenRouter, watched: Watch, tmp_path: Path
) -> None:
    permit = tmp_path / "run" / "permit"
    proc = watched.proc
    for name, fault, kind in FAULTS:
        fake.fault(fault)
        expected = "auth" if kind == "auth" else "stale"

        def failures(kind: str = kind) -> list[dict[str, Any]]:
            return [e for e in proc.events("poll_failed") if e["kind"] == kind]

        def finding(rule: str = expected) -> bool:
            return rule in {f["rule"] for f in watched.status()["findings"]}

        failed = wait_for(failures, timeout=15, what=f"{name}: a {kind} failure logged")
        assert failed[-1]["error"], name
        wait_for(lambda: watched.healthz() == 503, timeout=15, what=f"{name}: /healthz 503")
        wait_for(finding, timeout=15, what=f"{name}: the {expected} finding")
        wait_for(lambda: not permit.exists(), timeout=10, what=f"{name}: the permit revoked")
        fake.clear_faults()
        wait_for(lambda: watched.healthz() == 200, timeout=20, what=f"{name}: recovery")
        wait_for(permit.exists, timeout=10, what=f"{name}: the permit re-armed")
        assert watched.status()["findings"] == [], name
        assert proc.proc is not None and proc.proc.poll() is None, f"{name}: the daemon died"
    out = proc.output()
    assert "Traceback" not in out
    for secret in (API_KEY, MANAGEMENT_KEY):
        assert secret not in out
        assert not any(secret in r for r in watched.responses)
    # One line per failed poll, not one per retry inside it.
    polls_failed = proc.events("poll_failed")
    assert len(polls_failed) == len({e["timestamp"] for e in polls_failed})


def test_a_counter_going_backwards_and_a_top_up(fake: FakeOpenRouter, watched: Watch) -> None:
    proc = watched.proc
    before = watched.status()
    with fake.lock:
        fake.account.usage = 3.0  # the key was replaced: a fresh counter
        fake.account.usage_daily = 2.5
    wait_for(lambda: proc.events("usage_counter_reset"), what="the reset noticed")
    status = watched.status()
    # the old key's $2.00 today still counts, plus the new key's $2.50
    assert status["spent_today"] == 4.5
    assert status["burn_rate_per_hour"] is None or status["burn_rate_per_hour"] >= 0
    with fake.lock:
        fake.account.total_credits += 100.0  # a top-up
    wait_for(
        lambda: (watched.status().get("balance") or 0) > before["balance"] + 90,
        what="the top-up in the balance",
    )
    assert (watched.status()["burn_rate_per_hour"] or 0) < 5  # not a burst of negative spend
    assert watched.status()["findings"] == []
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0
    assert "Traceback" not in proc.output()
    json.dumps(status)
