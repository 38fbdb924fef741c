"""The status app without sockets (Starlette's test client), plus one real-socket test."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fakes import Clock
from tests.unit.test_rules import metrics, rate
from watchdog import status
from watchdog.config import Settings, load
from watchdog.log import get_logger
from watchdog.permit import Decision
from watchdog.rules import Finding
from watchdog.server import Reservations, StatusServer, create_app

NOW = datetime(2026, 11, 27, 14, 9, tzinfo=UTC)
TOKEN = "s3cr3t-status-token-value"
API_KEY = "sk-or-v1-never-in-a-response"


def settings(**server: Any) -> Settings:
    return load(
        None,
        overrides={
            "provider": {"api_key": API_KEY},
            "budget": {"daily_limit": 20.0, "monthly_limit": 400.0},
            "server": server,
            "notify": {"targets": [{"url": "json://hook:pw-secret-xyz@127.0.0.1:9/h"}]},
        },
    ).settings


def view(
    s: Settings | None = None,
    *,
    armed: bool = True,
    last_poll: datetime = NOW,
    findings: list[Finding] | None = None,
    **m: Any,
) -> status.View:
    from watchdog.notify import targets_from

    s = s or settings()
    values = {
        "spent_today": 12.0,
        "balance": 80.0,
        "runway_days": 8.0,
        "avg_daily": rate(0.5, timedelta(days=7)),
        **m,
    }
    return status.build(
        now=NOW,
        settings=s,
        metrics=metrics(**values),
        findings=findings or [],
        decision=Decision(armed, "ok" if armed else "daily_limit critical"),
        poll=status.PollInfo(last_poll, None, None, None, 10, {"transient": 2}),
        key_name="batch",
        scope="key",
        targets=targets_from(s.notify.targets),
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
    def __init__(self, v: status.View, token: str = "", clock: Clock | None = None) -> None:
        self.view = v
        self.clock = clock or Clock(NOW + timedelta(seconds=5))
        self.holds = Reservations()
        self.app = create_app(
            view=lambda: self.view, clock=self.clock, token=token, reservations=self.holds
        )
        self.client = Client(self.app)


def test_healthz_is_200_when_fresh_and_503_with_a_reason_when_stale() -> None:
    app = App(view())
    ok = app.client.get("/healthz")
    assert ok.status_code == 200 and ok.json()["ok"] is True
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
    assert go.json() == {"go": True, "cost": 3.0, "headroom_usd": 8.0, "reserved_usd": 0}


def test_preflight_rejects_bad_input() -> None:
    client = App(view()).client
    assert client.get("/preflight", params={"cost": "lots"}).status_code == 400
    assert client.get("/preflight", params={"cost": "-1"}).status_code == 400
    assert client.post("/preflight", params={"cost": "1", "hold": "forever"}).status_code == 400


def test_reservations_count_against_headroom_until_released() -> None:
    app = App(view())  # headroom: balance 80 - 3 days x $12/day buffer = $44; daily $8 left
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
    for path in ("/status", "/healthz", "/metrics", "/", "/preflight"):
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
    assert samples[("budget_watchdog_spent_usd", (("window", "today"),))] == 12.0
    assert samples[("budget_watchdog_limit_used_ratio", (("window", "daily"),))] == 0.6
    assert samples[("budget_watchdog_finding_severity", (("rule", "spike"),))] == 1
    assert samples[("budget_watchdog_finding_severity", (("rule", "daily_limit"),))] == 0
    assert samples[("budget_watchdog_poll_errors_total", (("kind", "transient"),))] == 2
    assert samples[("budget_watchdog_permit_armed", ())] == 1
    assert samples[("budget_watchdog_runway_days", ())] == 8.0
    assert ("budget_watchdog_last_successful_poll_timestamp_seconds", ()) in samples


def test_no_secret_in_any_response() -> None:
    s = settings(listen="127.0.0.1:8787", token=TOKEN)
    app = App(view(s), token=TOKEN)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    for method, path in (
        ("GET", "/"),
        ("GET", "/status"),
        ("GET", "/metrics"),
        ("GET", "/healthz"),
        ("GET", "/preflight?cost=100"),
        ("POST", "/preflight?cost=1"),
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
        server = StatusServer(
            create_app(view=view, clock=lambda: NOW), "127.0.0.1", 0, get_logger()
        )
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
    first = StatusServer(create_app(view=view, clock=lambda: NOW), "127.0.0.1", 0, get_logger())
    first.bind()
    second = StatusServer(
        create_app(view=view, clock=lambda: NOW), "127.0.0.1", first.port, get_logger()
    )
    with pytest.raises(OSError):
        second.bind()
