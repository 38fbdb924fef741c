"""The HTTP layer's edges: bounded holds, paging, bad input, the state before the first
poll, the per-view caches, metrics labels, the page's warning ratio, uvicorn's logging."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fakes import Clock
from tests.integration.test_server import (
    NOW,
    TARGET,
    App,
    Client,
    QuietLog,
    measured,
    view,
)
from watchdog.core.model import BudgetPolicy, PollHealth
from watchdog.core.permit import STARTING, Decision
from watchdog.core.view import UNKNOWN, build, starting
from watchdog.page import COLORS
from watchdog.server import MAX_HOLDS, Reservations, StatusServer, create_app

OPEN = BudgetPolicy()  # no limits: only the balance ($80, a $30 buffer) bounds a job


@pytest.mark.parametrize(
    "hold",
    [
        "9999999999d",
        "99999999999999999999",
        "25h",
        "0s",
        "0.5s",
        "forever",
        "-5m",
        "1e9s",
        "x" * 500,
    ],
)
def test_a_bad_hold_is_a_400_with_a_clear_message(hold: str) -> None:
    response = App(view()).client.post("/preflight", params={"cost": "1", "hold": hold})
    assert response.status_code == 400
    assert response.json()["error"].startswith("hold must be")


@pytest.mark.parametrize(
    ("hold", "seconds"), [("90s", 90), ("5m", 300), ("4h", 14400), ("1d", 86400), ("90", 90)]
)
def test_a_hold_is_seconds_or_a_duration_up_to_a_day(hold: str, seconds: int) -> None:
    app = App(view(), clock=Clock(NOW))
    response = app.client.post("/preflight", params={"cost": "1", "hold": hold})
    assert response.status_code == 200
    expires = response.json()["reservation"]["expires_at"]
    assert expires == (NOW + timedelta(seconds=seconds)).isoformat()


@pytest.mark.parametrize("cost", ["nan", "inf", "1e309", "-0.5", "1e12", "", "lots"])
def test_a_bad_cost_is_a_400(cost: str) -> None:
    response = App(view()).client.get("/preflight", params={"cost": cost})
    if cost == "":
        assert response.status_code == 200  # no cost given: may anything start now?
        return
    assert response.status_code == 400
    assert response.json()["error"].startswith("cost must be")


def test_status_shows_reservations_as_count_and_sum_and_holds_are_paged() -> None:
    app = App(view(budget=OPEN), clock=Clock(NOW))
    for i in range(5):
        post = app.client.post("/preflight", params={"cost": "1.5", "hold": f"{i + 1}m"})
        assert post.status_code == 200
    status = app.client.get("/status").json()
    assert "reservations" not in status
    assert status["reserved_usd"] == 7.5 and status["reservations_count"] == 5
    page = app.client.get("/preflight/holds", params={"offset": "1", "limit": "2"}).json()
    assert page["total"] == 5 and page["reserved_usd"] == 7.5
    assert [h["expires_at"] for h in page["holds"]] == [
        (NOW + timedelta(minutes=m)).isoformat() for m in (2, 3)
    ]
    assert app.client.get("/preflight/holds").json()["limit"] == 100
    for bad in ({"limit": "101"}, {"limit": "-1"}, {"offset": "x"}, {"offset": "1e3"}):
        response = app.client.get("/preflight/holds", params=bad)
        assert response.status_code == 400, bad


def test_holds_are_bounded_and_a_full_book_is_a_429_with_the_reason() -> None:
    app = App(view(budget=OPEN), clock=Clock(NOW), reservations=Reservations(capacity=3))
    ids = [
        app.client.post("/preflight", params={"cost": "1", "hold": "1m"}).json()["reservation"][
            "id"
        ]
        for _ in range(3)
    ]
    full = app.client.post("/preflight", params={"cost": "1"})
    assert full.status_code == 429
    body = full.json()
    assert body["go"] is False and body["reasons"][0].startswith("too many reservations: 3")
    assert full.headers["retry-after"] == "60"
    # A check without a hold is still answered, and a release makes room.
    assert app.client.get("/preflight", params={"cost": "1"}).status_code == 200
    assert app.client.delete(f"/preflight/{ids[0]}").status_code == 200
    assert app.client.post("/preflight", params={"cost": "1"}).status_code == 200
    assert MAX_HOLDS == Reservations().capacity == 1000


def test_reservations_stay_small_under_churn() -> None:
    holds = Reservations(capacity=10)
    for _ in range(10_000):
        hold = holds.add(0.1, NOW + timedelta(hours=1))
        holds.release(hold.id)
    assert holds.total(NOW) == 0.0 and holds.count(NOW) == 0
    assert len(holds._expiry) < 100


def test_before_the_first_poll_everything_says_unknown_and_no_go() -> None:
    v = starting(NOW, OPEN, PollHealth(started_at=NOW))
    app = App(v)
    pre = app.client.get("/preflight", params={"cost": "0"})
    assert pre.status_code == 409
    assert pre.json()["reasons"] == [
        "the permit is revoked: starting: no poll yet",
        "no successful poll yet",
    ]
    assert app.client.post("/preflight").status_code == 409
    assert app.client.get("/healthz").status_code == 503
    status = app.client.get("/status").json()
    assert status["state"] == UNKNOWN and status["permit"] == "revoked"
    assert status["balance"] is None and status["reservations_count"] == 0
    assert app.client.get("/metrics").status_code == 200
    assert "UNKNOWN" in app.client.get("/").text


def test_after_a_restart_fresh_old_data_is_still_no_go_until_a_poll_of_ours() -> None:
    # The last success is recent but from before this start: state unknown, permit off.
    poll = PollHealth(started_at=NOW, last_success=NOW - timedelta(seconds=30))
    v = build(
        now=NOW,
        budget=OPEN,
        metrics=measured(),
        findings=[],
        decision=Decision(False, STARTING),
        poll=poll,
        key_name="batch",
        scope="key",
    )
    assert v.state == UNKNOWN
    response = App(v).client.get("/preflight")
    assert response.status_code == 409
    assert response.json()["reasons"] == [f"the permit is revoked: {STARTING}"]


def test_status_follows_the_view_the_clock_and_the_holds() -> None:
    app = App(view(), clock=Clock(NOW))
    first = app.client.get("/status").json()
    assert first["data_age_s"] == 0.0
    app.clock.advance(seconds=1)
    assert app.client.get("/status").json()["data_age_s"] == 1.0
    app.clock.advance(seconds=599)
    assert app.client.get("/status").json()["stale"] is False
    app.clock.advance(microseconds=1)  # same second, but now stale
    assert app.client.get("/status").json()["stale"] is True
    app.view = view(armed=False, last_poll=app.clock.now)
    body = app.client.get("/status").json()
    assert body["permit"] == "revoked" and body["stale"] is False
    app.client.post("/preflight", params={"cost": "0.25"})  # no-go: revoked, nothing held
    app.view = view(last_poll=app.clock.now)
    app.client.post("/preflight", params={"cost": "0.25"})
    assert app.client.get("/status").json()["reserved_usd"] == 0.25


def test_preflight_follows_a_new_view() -> None:
    app = App(view())
    assert app.client.get("/preflight", params={"cost": "3"}).status_code == 200
    app.view = view(spent_today=19.0)
    assert app.client.get("/preflight", params={"cost": "3"}).status_code == 409


def test_preflight_methods() -> None:
    client = App(view()).client
    assert client.request("HEAD", "/preflight").status_code == 200
    put = client.request("PUT", "/preflight")
    assert put.status_code == 405 and "POST" in put.headers["allow"]


def test_metrics_label_targets_by_id_never_by_url() -> None:
    text = App(view()).client.get("/metrics").text
    assert "json://" not in text and "127.0.0.1" not in text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    sent = families["budget_watchdog_notifications_sent"].samples
    assert {s.labels["target"] for s in sent} == {TARGET.id}


def test_the_page_warns_at_the_budgets_own_ratio() -> None:
    # $12 of $20 is 60%: over a 0.5 warning ratio, under the default 0.8.
    def bar_color(ratio: float) -> str:
        budget = BudgetPolicy(daily_limit=20.0, warn_ratio=ratio)
        html = App(view(budget=budget)).client.get("/").text
        card = html.split("Spent today", 1)[1].split("</section>", 1)[0]
        return card.split("background:", 1)[1].split('"', 1)[0]

    assert bar_color(0.5) == COLORS["warning"]
    assert bar_color(0.8) == COLORS["ok"]


def test_tick_on_request() -> None:
    app = App(view())
    assert app.client.post("/tick").status_code == 503

    async def request_tick() -> None:
        app.view = view(armed=False)

    ticking = Client(create_app(view=lambda: app.view, clock=app.clock, request_tick=request_tick))
    assert ticking.post("/tick").json() == {
        "state": "ok",
        "permit": "revoked",
        "permit_reason": "daily_limit critical",
    }


def test_uvicorn_logs_through_the_root_logger(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        server = StatusServer(create_app(view=view, clock=lambda: NOW), "127.0.0.1", 0, QuietLog())
        await server.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"NOT HTTP AT ALL\r\n\r\n")
            await writer.drain()
            await reader.read()
            writer.close()
            async with httpx.AsyncClient() as client:  # still serving
                assert (await client.get(f"http://127.0.0.1:{server.port}/healthz")).is_success
        finally:
            await server.stop()

    with caplog.at_level(logging.WARNING):
        asyncio.run(scenario())
    assert logging.getLogger("uvicorn.error").handlers == []
    assert logging.getLogger("uvicorn.error").propagate is True
    assert any(r.name.startswith("uvicorn") for r in caplog.records), caplog.records


def test_a_decision_that_ran_out_is_no_go_everywhere_while_the_data_is_still_fresh() -> None:
    """A tick stuck (a hung database, say) past the lease of the permit it wrote: the file
    has run out, and every answer says no-go with the reason, though the data is not
    stale yet."""
    from dataclasses import replace

    app = App(replace(view(), decided_until=NOW + timedelta(minutes=2)), clock=Clock(NOW))
    assert app.client.get("/preflight", params={"cost": "1"}).status_code == 200
    app.clock.advance(minutes=2)
    refused = app.client.get("/preflight", params={"cost": "1"})
    assert refused.status_code == 409
    (reason,) = refused.json()["reasons"]
    assert "no tick has finished since" in reason and "ran out" in reason
    status = app.client.get("/status").json()
    assert status["permit"] == "revoked" and "ran out" in status["permit_reason"]
    assert status["stale"] is False  # the data itself is 2 minutes old: not stale
    health = app.client.get("/healthz")
    assert health.status_code == 503 and "ran out" in health.json()["reason"]
