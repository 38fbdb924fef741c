"""`budget-watchdog audit` as its own process beside the running daemon: the numbers are
the fake's prices, and a second process within the hour reads the prices the first one
cached in the daemon's state file instead of asking the provider again."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import DaemonProcess, base_config, cli, wait_for
from tests.fake_openrouter import AUDIT_PRICES, MANAGEMENT_KEY, FakeOpenRouter


def price_requests(fake: FakeOpenRouter) -> list[str]:
    return [path for _, path, _ in fake.requests if path.startswith("/api/v1/models")]


def test_two_audits_beside_the_daemon_fetch_prices_once(
    fake: FakeOpenRouter, daemon: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    fake.audit_account()
    proc = daemon(base_config(fake, tmp_path, management=True)).start()
    wait_for(lambda: proc.events("poll"), what="the daemon polling")
    config = proc.config

    first = cli(config, "audit", "--json")
    assert first.returncode == 0, first.stderr
    asked = price_requests(fake)
    assert asked.count("/api/v1/models") == 1 and len(asked) == 1 + len(AUDIT_PRICES)

    second = cli(config, "audit", "--json")
    assert second.returncode == 0, second.stderr
    assert price_requests(fake) == asked  # the second process read the cache
    one, two = json.loads(first.stdout), json.loads(second.stdout)
    assert one["prices_fetched_at"] == two["prices_fetched_at"]
    assert one["findings"] == two["findings"]

    # The fake's prices: Google Vertex lists Sonnet at 3.6/18 per million, Anthropic and
    # Bedrock at 3/15; 1.2M in and 24k out a day for 30 days.
    vertex = next(m for m in one["models"] if m["provider"] == "Google Vertex")
    assert vertex["spend"] == pytest.approx(4.752 * 30)
    assert vertex["cheapest_spend"] == pytest.approx(3.96 * 30)
    assert one["savings_total"] <= one["total_spend"]

    table = cli(config, "audit")
    assert table.returncode == 0 and "Savings found:" in table.stdout
    assert price_requests(fake) == asked
    assert proc.proc is not None and proc.proc.poll() is None  # the daemon runs on
    for out in (first, second, table):
        assert MANAGEMENT_KEY not in out.stdout + out.stderr
        assert "Traceback" not in out.stderr
