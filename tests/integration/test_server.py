"""The status app without sockets (httpx's ASGI transport), plus real-socket tests.

Views are built the way the tick builds them: `burn.measure` over a spend history, then
`view.build` with plain policy values. Nothing here needs the config, the store or a tick.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fakes import Clock
from watchdog.core import burn
from watchdog.core.model import BudgetPolicy, Finding, PollHealth, Sample
from watchdog.core.permit import Decision
from watchdog.core.view import TargetView, View, build
from watchdog.server import Reservations, StatusServer, create_app

NOW = datetime(2026, 11, 27, 14, 9, tzinfo=UTC)
TOKEN = "s3cr3t-status-token-value"
API_KEY = "sk-or-v1-never-in-a-response"
BUDGET = BudgetPolicy(daily_limit=20.0, monthly_limit=400.0)
TARGET = TargetView(
    id="target-1", shown="json://hook:****@127.0.0.1:9/h", severities=("warning", "critical")
)


class QuietLog:
    def info(self, *args: Any, **kwargs: Any) -> None:
        pass


def measured(spent_today: float = 12.0, balance: float = 80.0) -> burn.Metrics:
    """$70 over the last 7 days ($10/day: 8 days of runway on $80), `spent_today` of it
    today by the provider's usage_daily."""
    history = burn.History()
    history.add(Sample(ts=NOW - timedelta(days=7), usage=100.0, balance=balance + 70.0))
    history.add(Sample(ts=NOW, usage=170.0, usage_daily=spent_today, balance=balance))
    return burn.measure(history, NOW, UTC)


def view(
    *,
    armed: bool = True,
    last_poll: datetime | None = NOW,
    findings: Sequence[Finding] = (),
    spent_today: float = 12.0,
    balance: float = 80.0,
    budget: BudgetPolicy = BUDGET,
    last_error: str | None = None,
) -> View:
    return build(
        now=NOW,
        budget=budget,
        metrics=measured(spent_today, balance),
        findings=list(findings),
        decision=Decision(armed, "no finding demands a stop" if armed else "daily_limit critical"),
        poll=PollHealth(
            started_at=NOW - timedelta(hours=1),
            last_success=last_poll,
            last_error=last_error,
            polls=10,
            errors_by_kind=(("transient", 2),),
        ),
        key_name="batch",
        scope="key",
        targets=[TARGET],
        chart=[(NOW - timedelta(hours=h), float(h % 5)) for h in range(168, 0, -1)],
    )


class Client:
    """Calls the ASGI app in-process through httpx (no sockets), one request at a time."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                return await client.request(method, path, **kwargs)

        return asyncio.run(call())

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", path, **kwargs)


class App:
    def __init__(
        self,
        v: View,
        token: str = "",
        clock: Clock | None = None,
        reservations: Reservations | None = None,
    ) -> None:
        self.view = v
        self.clock = clock or Clock(NOW + timedelta(seconds=5))
        self.holds = reservations or Reservations()
        self.app = create_app(
            view=lambda: self.view, clock=self.clock, token=token, reservations=self.holds
        )
        self.client = Client(self.app)


def test_healthz_is_200_when_fresh_and_503_with_a_reason_when_stale() -> None:
    app = App(view())
    ok = app.client.get("/healthz")
    assert ok.status_code == 200 and ok.json()["ok"] is True
    assert ok.json()["last_poll_at"] == NOW.isoformat()
    app.clock.advance(minutes=11)
    stale = app.client.get("/healthz")
    assert stale.status_code == 503
    assert stale.json()["reason"].startswith("no successful poll for 665 s (stale after 600 s)")


def test_status_has_the_contract_fields() -> None:
    body = App(view()).client.get("/status").json()
    for field in (
        "state",
        "permit",
        "balance",
        "spent_today",
        "spent_month",
        "burn_rate_per_hour",
        "runway_days",
        "forecast_month",
        "findings",
        "last_poll_at",
        "last_error",
    ):
        assert field in body, field
    assert body["state"] == "ok" and body["permit"] == "armed"
    assert body["spent_today"] == 12.0 and body["balance"] == 80.0
    assert body["data_age_s"] == 5.0 and body["stale"] is False
    assert body["notify_targets"][0]["target"].startswith("json://hook:****@")


def test_preflight_go_and_no_go_with_every_reason() -> None:
    app = App(view(armed=False, spent_today=19.0))
    app.clock.advance(minutes=20)
    response = app.client.get("/preflight", params={"cost": "3", "min_runway_days": "10"})
    assert response.status_code == 409
    body = response.json()
    assert body["go"] is False
    assert body["reasons"] == [
        "the permit is revoked: daily_limit critical",
        "the data is stale: last successful poll 1205 s ago",
        "$3.00 would exceed the $20.00 daily limit: $1.00 left",
        "credit lasts 8.0 days, under the 10 asked for",
    ]
    go = App(view()).client.get("/preflight", params={"cost": "3"})
    assert go.status_code == 200
    assert go.json() == {
        "go": True,
        "cost": 3.0,
        "headroom_usd": 8.0,
        "runway_days": 8.0,
        "reserved_usd": 0,
    }


def test_preflight_rejects_bad_input() -> None:
    client = App(view()).client
    assert client.get("/preflight", params={"cost": "lots"}).status_code == 400
    assert client.get("/preflight", params={"cost": "-1"}).status_code == 400
    assert client.post("/preflight", params={"cost": "1", "hold": "forever"}).status_code == 400


def test_reservations_count_against_headroom_until_released() -> None:
    app = App(view())  # headroom: $8 left of the daily limit (the buffer leaves $50)
    first = app.client.post("/preflight", params={"cost": "5", "hold": "10m", "label": "nightly"})
    assert first.status_code == 200
    hold = first.json()["reservation"]
    second = app.client.post("/preflight", params={"cost": "5"})
    assert second.status_code == 409
    assert "(with $5.00 reserved)" in second.json()["reasons"][0]
    assert app.client.get("/status").json()["reserved_usd"] == 5.0
    assert app.client.delete(f"/preflight/{hold['id']}").status_code == 200
    assert app.client.delete(f"/preflight/{hold['id']}").status_code == 404
    assert app.client.post("/preflight", params={"cost": "5"}).status_code == 200


def test_reservations_expire() -> None:
    app = App(view(), clock=Clock(NOW))
    app.client.post("/preflight", params={"cost": "6", "hold": "2m"})
    assert app.client.get("/preflight", params={"cost": "6"}).status_code == 409
    app.clock.advance(minutes=2)
    assert app.client.get("/preflight", params={"cost": "6"}).status_code == 200


def test_ten_concurrent_jobs_cannot_overcommit() -> None:
    app = App(view())  # $8 of daily room: two $3 jobs fit, the third does not

    async def launch_all() -> list[int]:
        transport = httpx.ASGITransport(app=app.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            responses = await asyncio.gather(
                *[client.post("/preflight", params={"cost": "3"}) for _ in range(10)]
            )
        return [r.status_code for r in responses]

    codes = asyncio.run(launch_all())
    assert sorted(codes) == [200, 200] + [409] * 8


def test_a_token_is_required_when_configured() -> None:
    app = App(view(), token=TOKEN)
    for path in ("/status", "/healthz", "/metrics", "/", "/preflight", "/preflight/holds"):
        assert app.client.get(path).status_code == 401
        assert app.client.get(path, headers={"Authorization": "Bearer nope"}).status_code == 401
    ok = app.client.get("/status", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200


def test_metrics_use_prometheus_names_with_units() -> None:
    v = view(findings=[Finding("spike", "warning", 5.0, 2.0, "m")])
    text = App(v).client.get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert all(name.startswith("budget_watchdog_") for name in families)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
    }
    assert samples[("budget_watchdog_balance_usd", ())] == 80.0
    assert samples[("budget_watchdog_spent_usd", (("window", "day"),))] == 12.0
    assert samples[("budget_watchdog_limit_used_ratio", (("window", "day"),))] == 0.6
    assert samples[("budget_watchdog_finding_severity", (("rule", "spike"),))] == 1
    assert samples[("budget_watchdog_finding_severity", (("rule", "daily_limit"),))] == 0
    assert samples[("budget_watchdog_poll_errors_total", (("kind", "transient"),))] == 2
    assert samples[("budget_watchdog_permit_armed", ())] == 1
    assert samples[("budget_watchdog_runway_seconds", ())] == 8 * 86400
    assert ("budget_watchdog_last_successful_poll_timestamp_seconds", ()) in samples


def test_no_secret_in_any_response() -> None:
    # The view holds no secret by construction (it is built from policy values, masked
    # target URLs and finding text); the token must not be echoed either.
    app = App(view(last_error="HTTP 401 from the provider"), token=TOKEN)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    for method, path in (
        ("GET", "/"),
        ("GET", "/status"),
        ("GET", "/metrics"),
        ("GET", "/healthz"),
        ("GET", "/preflight?cost=100"),
        ("POST", "/preflight?cost=1"),
        ("GET", "/preflight/holds"),
        ("GET", "/nope"),
    ):
        text = app.client.request(method, path, headers=headers).text
        for secret in (API_KEY, TOKEN, "pw-secret-xyz"):
            assert secret not in text, (path, secret)


def test_the_page_shows_state_limits_findings_and_a_chart() -> None:
    v = view(
        armed=False,
        findings=[
            Finding(
                "daily_limit",
                "critical",
                21.0,
                20.0,
                "$21.00 spent today, 105% of the $20.00 daily limit.",
            )
        ],
    )
    html = App(v).client.get("/").text
    assert "PERMIT REVOKED" in html and "CRITICAL · daily_limit" in html
    assert "60% of the $20.00 daily limit" in html
    assert html.count("<rect") >= 168
    assert "<script" not in html and "http://" not in html.replace("http://127.0.0.1", "")


def test_a_real_socket_serves_the_app() -> None:
    async def scenario() -> tuple[int, dict[str, Any]]:
        server = StatusServer(create_app(view=view, clock=lambda: NOW), "127.0.0.1", 0, QuietLog())
        await server.start()
        try:
            async with httpx.AsyncClient() as client:
                response = await client.get(f"http://127.0.0.1:{server.port}/status")
        finally:
            await server.stop()
        return response.status_code, response.json()

    code, body = asyncio.run(scenario())
    assert code == 200 and body["key"] == "batch"


def test_a_busy_port_is_a_clear_error() -> None:
    first = StatusServer(create_app(view=view, clock=lambda: NOW), "127.0.0.1", 0, QuietLog())
    first.bind()
    second = StatusServer(
        create_app(view=view, clock=lambda: NOW), "127.0.0.1", first.port, QuietLog()
    )
    try:
        with pytest.raises(OSError):
            second.bind()
    finally:
        asyncio.run(first.stop())
