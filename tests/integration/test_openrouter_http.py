"""The OpenRouter client over HTTP (respx): retries, Retry-After and X-RateLimit-Reset,
errors (a workspace budget's 403 apart from a wrong key's), pagination with disabled keys,
key limits and workspace budgets as sent. Every body served here is held to the spec by
tests/integration/test_provider_contract.py."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import date
from typing import Any

import httpx
import pytest
import respx
from freezegun import freeze_time

from tests.unit.test_openrouter_parse import (
    ACTIVITY_EXAMPLE,
    BUDGET_EXAMPLE,
    CREDITS_EXAMPLE,
    KEY_EXAMPLE,
    KEYS_EXAMPLE,
    LEGACY_EXAMPLE,
    WORKSPACES_EXAMPLE,
)
from watchdog.providers.base import (
    AuthError,
    BadResponse,
    ProviderBudgetExceeded,
    RateLimited,
    TransientError,
    WorkspaceBudget,
)
from watchdog.providers.openrouter import MAX_RETRY_AFTER, OpenRouterProvider

BASE = "https://openrouter.test/api/v1"
KEY = "sk-or-v1-respx-secret-key-value"
MGMT = "sk-or-v1-respx-management-key"
ROW = KEYS_EXAMPLE["data"][0]
BUDGET_403 = {
    "error": {
        "code": 403,
        "message": "Workspace monthly budget of $500.00 exceeded. Contact your org admin.",
    }
}
RATE_LIMITED = {
    "error": {
        "code": 429,
        "message": "Rate limit exceeded",
        "metadata": {"error_type": "rate_limit_exceeded"},
    }
}


def error(status: int, message: str) -> dict[str, Any]:
    return {"error": {"code": status, "message": message}}


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    """The API, with the spec's one workspace (GET /keys of it, every key)."""
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        router.get("/workspaces", name="workspaces").respond(200, json=WORKSPACES_EXAMPLE)
        yield router


def provider(sleeps: Sleeps, *, management: bool = False, **kwargs: float) -> OpenRouterProvider:
    return OpenRouterProvider(BASE, KEY, MGMT if management else None, sleep=sleeps, **kwargs)  # type: ignore[arg-type]


def test_fetch_sends_the_key_and_a_user_agent(mock: respx.MockRouter, sleeps: Sleeps) -> None:
    route = mock.get("/key").respond(200, json=KEY_EXAMPLE)
    snapshot = provider(sleeps).fetch()
    assert snapshot.usage == 25.5
    request = route.calls.last.request
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["user-agent"].startswith("budget-watchdog/")


def test_transient_errors_are_retried_with_backoff(mock: respx.MockRouter, sleeps: Sleeps) -> None:
    mock.get("/key").mock(
        side_effect=[
            httpx.Response(502),
            httpx.Response(503),
            httpx.Response(200, json=KEY_EXAMPLE),
        ]
    )
    assert provider(sleeps).fetch().usage == 25.5
    assert len(sleeps) == 2
    assert sleeps[1] > sleeps[0]  # exponential backoff


def test_retries_are_bounded(mock: respx.MockRouter, sleeps: Sleeps) -> None:
    route = mock.get("/key").respond(500, json={"error": {"code": 500, "message": "boom"}})
    with pytest.raises(TransientError) as exc:
        provider(sleeps, attempts=3).fetch()
    assert route.call_count == 3
    assert "HTTP 500: boom" in str(exc.value)


def test_retry_after_is_honoured(mock: respx.MockRouter, sleeps: Sleeps) -> None:
    mock.get("/key").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "7"}, json=RATE_LIMITED),
            httpx.Response(200, json=KEY_EXAMPLE),
        ]
    )
    provider(sleeps).fetch()
    assert sleeps and 7 <= sleeps[0] < 7.8


@freeze_time("2026-11-27 12:00:00")
def test_retry_after_as_http_date(mock: respx.MockRouter, sleeps: Sleeps) -> None:
    mock.get("/key").mock(
        side_effect=[
            httpx.Response(
                429, headers={"Retry-After": "Fri, 27 Nov 2026 12:00:05 GMT"}, json=RATE_LIMITED
            ),
            httpx.Response(200, json=KEY_EXAMPLE),
        ]
    )
    provider(sleeps).fetch()
    assert 5 <= sleeps[0] < 5.6


def test_a_long_retry_after_is_returned_not_slept(mock: respx.MockRouter, sleeps: Sleeps) -> None:
    mock.get("/key").respond(429, headers={"Retry-After": "600"}, json=RATE_LIMITED)
    with pytest.raises(RateLimited) as exc:
        provider(sleeps, max_wait=30).fetch()
    assert exc.value.retry_after == 600
    assert sleeps == []


def test_401_is_permanent_and_not_retried(mock: respx.MockRouter, sleeps: Sleeps) -> None:
    route = mock.get("/key").respond(
        401, json={"error": {"code": 401, "message": "User not found."}}
    )
    with pytest.raises(AuthError) as exc:
        provider(sleeps).fetch()
    assert route.call_count == 1
    assert exc.value.status == 401
    assert "User not found." in exc.value.message


def test_403_on_credits_is_an_auth_error(mock: respx.MockRouter, sleeps: Sleeps) -> None:
    mock.get("/key").respond(200, json=KEY_EXAMPLE)
    mock.get("/keys").respond(200, json=KEYS_EXAMPLE)
    mock.get("/credits").respond(
        403, json=error(403, "Only management keys can perform this operation")
    )
    with pytest.raises(AuthError) as exc:
        provider(sleeps, management=True).fetch()
    assert "wrong key type" in str(exc.value)
    assert not isinstance(exc.value, ProviderBudgetExceeded)


def test_legacy_path_is_used_when_key_is_404(mock: respx.MockRouter, sleeps: Sleeps) -> None:
    mock.get("/key", name="key").respond(404, json=error(404, "Not Found"))
    legacy = mock.get("/auth/key").respond(200, json=LEGACY_EXAMPLE)
    client = provider(sleeps)
    client.fetch()
    client.fetch()
    assert legacy.call_count == 2
    assert mock.routes["key"].call_count == 1  # remembered: /key is not asked again


def test_timeouts_are_transient(mock: respx.MockRouter, sleeps: Sleeps) -> None:
    mock.get("/key").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(TransientError) as exc:
        provider(sleeps, timeout=2).fetch()
    assert "no answer within 2s" in str(exc.value)


def test_connection_errors_are_transient(mock: respx.MockRouter, sleeps: Sleeps) -> None:
    mock.get("/key").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(TransientError):
        provider(sleeps).fetch()


def test_html_instead_of_json_is_a_bad_response(mock: respx.MockRouter, sleeps: Sleeps) -> None:
    mock.get("/key").respond(
        200, text="<html>maintenance</html>", headers={"content-type": "text/html"}
    )
    with pytest.raises(BadResponse) as exc:
        provider(sleeps).fetch()
    assert "not JSON (text/html)" in str(exc.value)


def test_json_without_usage_is_a_bad_response(mock: respx.MockRouter, sleeps: Sleeps) -> None:
    mock.get("/key").respond(200, json={"data": {"label": "x", "limit": None}})
    with pytest.raises(BadResponse):
        provider(sleeps).fetch()


def test_management_key_reads_credits_and_pages_through_keys(
    mock: respx.MockRouter, sleeps: Sleeps
) -> None:
    page0 = [dict(ROW, hash=f"h{i}", label=f"l{i}") for i in range(100)]
    page1 = [dict(ROW, hash="watched", label="sk-or-v1-au7...890", name="batch")]
    mock.get("/key").respond(200, json=KEY_EXAMPLE)
    credits = mock.get("/credits").respond(200, json=CREDITS_EXAMPLE)
    keys = mock.get("/keys")
    keys.side_effect = lambda request: httpx.Response(
        200, json={"data": page0 if request.url.params.get("offset") == "0" else page1}
    )
    snapshot = provider(sleeps, management=True).fetch()
    assert len(snapshot.keys) == 101
    assert [c.request.url.params["offset"] for c in keys.calls] == ["0", "100"]
    assert snapshot.credits is not None
    assert snapshot.credits.balance == pytest.approx(74.75)
    assert snapshot.key is not None
    assert snapshot.key.hash == "watched"  # matched by label
    assert credits.calls.last.request.headers["authorization"] == f"Bearer {MGMT}"


def test_zero_credits_from_a_non_management_answer_are_ignored(
    mock: respx.MockRouter, sleeps: Sleeps
) -> None:
    mock.get("/key").respond(200, json=KEY_EXAMPLE)
    mock.get("/keys").respond(200, json=KEYS_EXAMPLE)
    mock.get("/credits").respond(200, json={"data": {"total_credits": 0, "total_usage": 0}})
    assert provider(sleeps, management=True).fetch().credits is None


def test_disable_key_sends_a_patch(mock: respx.MockRouter, sleeps: Sleeps) -> None:
    route = mock.patch("/keys/abc123").respond(
        200, json={"data": dict(ROW, hash="abc123", disabled=True)}
    )
    provider(sleeps, management=True).set_key_disabled("abc123", True)
    assert route.calls.last.request.content == b'{"disabled":true}'


def test_the_key_never_appears_in_an_error(mock: respx.MockRouter, sleeps: Sleeps) -> None:
    mock.get("/key").respond(401, json=error(401, f"bad key {KEY}"))
    with pytest.raises(AuthError) as exc:
        provider(sleeps).fetch()
    assert KEY not in str(exc.value)


# -- /keys: disabled keys too, page by page ------------------------------------------------


def test_keys_are_listed_with_disabled_ones(mock: respx.MockRouter, sleeps: Sleeps) -> None:
    """/keys leaves disabled keys out unless include_disabled=true: a key we disabled
    would vanish from the account's keys (and its usage from the account's sum)."""
    disabled = dict(ROW, hash="off", name="old batch", disabled=True, usage=40.0)
    keys = mock.get("/keys")
    keys.side_effect = lambda request: httpx.Response(
        200,
        json={
            "data": [ROW, disabled]
            if request.url.params.get("include_disabled") == "true"
            else [ROW]
        },
    )
    mock.get("/credits").respond(200, json=CREDITS_EXAMPLE)
    client = OpenRouterProvider(BASE, None, MGMT, sleep=sleeps)
    snapshot = client.fetch()
    assert [k.hash for k in snapshot.keys] == [ROW["hash"], "off"]
    assert snapshot.keys[1].disabled is True
    assert keys.calls.last.request.url.params["include_disabled"] == "true"


def test_a_disabled_watched_key_is_read_from_the_listing(
    mock: respx.MockRouter, sleeps: Sleeps
) -> None:
    mock.get("/key").respond(401, json=error(401, "User not found."))
    mock.get("/credits").respond(200, json=CREDITS_EXAMPLE)
    watched = dict(ROW, hash="watched", disabled=True, usage=30.0)
    mock.get("/keys").mock(
        side_effect=lambda request: httpx.Response(
            200,
            json={"data": [watched] if request.url.params.get("include_disabled") else []},
        )
    )
    client = provider(sleeps, management=True)
    client.remember_watched_key("watched")
    snapshot = client.fetch()
    assert snapshot.key is not None
    assert (snapshot.key.hash, snapshot.key.usage) == ("watched", 30.0)


def test_keys_page_by_the_rows_received_until_a_short_page(
    mock: respx.MockRouter, sleeps: Sleeps
) -> None:
    rows = [dict(ROW, hash=f"h{i:03}", label=f"l{i}") for i in range(250)]
    rows.insert(100, rows[99])  # the list shifted between two pages: h099 is seen twice
    keys = mock.get("/keys")

    def page(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params["offset"])
        return httpx.Response(200, json={"data": rows[offset : offset + 100]})

    keys.side_effect = page
    listed = OpenRouterProvider(BASE, None, MGMT, sleep=sleeps).list_keys()
    assert [c.request.url.params["offset"] for c in keys.calls] == ["0", "100", "200"]
    assert len(listed) == 250  # every key once
    assert len({k.hash for k in listed}) == 250


# -- 403: a used-up budget is not a wrong key ----------------------------------------------


def test_a_403_for_a_used_up_workspace_budget_is_a_budget_error_not_an_auth_error(
    mock: respx.MockRouter, sleeps: Sleeps
) -> None:
    route = mock.get("/key").respond(403, json=BUDGET_403)
    with pytest.raises(ProviderBudgetExceeded) as exc:
        provider(sleeps).fetch()
    assert exc.value.kind == "provider_budget"
    assert exc.value.permanent is False
    assert exc.value.status == 403
    assert "Workspace monthly budget of $500.00 exceeded" in exc.value.message
    assert not isinstance(exc.value, AuthError)
    assert route.call_count == 1  # retrying in the same poll cannot help
    assert sleeps == []


def test_a_budget_named_in_the_error_metadata_is_a_budget_error(
    mock: respx.MockRouter, sleeps: Sleeps
) -> None:
    body = {"error": {"code": 403, "message": "Forbidden", "metadata": {"reason": "budget"}}}
    mock.get("/key").respond(403, json=body)
    with pytest.raises(ProviderBudgetExceeded):
        provider(sleeps).fetch()


def test_a_budget_error_message_is_scrubbed_of_the_keys(
    mock: respx.MockRouter, sleeps: Sleeps
) -> None:
    message = f"Workspace daily budget of $5.00 exceeded for {KEY} (management {MGMT})"
    mock.get("/key").respond(403, json=error(403, message))
    with pytest.raises(ProviderBudgetExceeded) as exc:
        provider(sleeps, management=True).fetch()
    assert KEY not in str(exc.value) and MGMT not in str(exc.value)


# -- 429: X-RateLimit-Reset ------------------------------------------------------------------


def limited(headers: dict[str, str], body: dict[str, Any] = RATE_LIMITED) -> httpx.Response:
    return httpx.Response(429, headers=headers, json=body)


@freeze_time("2026-11-27 12:00:00")
def test_x_ratelimit_reset_in_epoch_milliseconds_is_honoured(
    mock: respx.MockRouter, sleeps: Sleeps
) -> None:
    reset_ms = int((time.time() + 6) * 1000)
    mock.get("/key").mock(
        side_effect=[
            limited({"X-RateLimit-Reset": str(reset_ms)}),
            httpx.Response(200, json=KEY_EXAMPLE),
        ]
    )
    provider(sleeps).fetch()
    assert 6 <= sleeps[0] < 6.7


@freeze_time("2026-11-27 12:00:00")
def test_a_far_x_ratelimit_reset_is_returned_bounded_not_slept(
    mock: respx.MockRouter, sleeps: Sleeps
) -> None:
    tomorrow_ms = int((time.time() + 20 * 3600) * 1000)  # a daily limit: resets tomorrow
    mock.get("/key").respond(
        429, headers={"X-RateLimit-Reset": str(tomorrow_ms)}, json=RATE_LIMITED
    )
    with pytest.raises(RateLimited) as exc:
        provider(sleeps).fetch()
    assert exc.value.retry_after == MAX_RETRY_AFTER == 3600
    assert sleeps == []


@freeze_time("2026-11-27 12:00:00")  # epoch 1795780800
@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"X-RateLimit-Reset": "1795780812000"}, 12.0),  # epoch ms
        ({"X-RateLimit-Reset": "1795780812"}, 12.0),  # epoch s
        ({"X-RateLimit-Reset": "12"}, 12.0),  # seconds from now
        ({"X-RateLimit-Reset": "1795780000000"}, 0.0),  # in the past: never negative
        ({"X-RateLimit-Reset": "soon"}, None),
        ({"Retry-After": "-5"}, 0.0),
        ({"Retry-After": "9", "X-RateLimit-Reset": "1795780812000"}, 12.0),  # the later one
        ({"Retry-After": "99999"}, 3600.0),  # bounded
    ],
)
def test_rate_limit_waits_are_read_from_either_header(
    mock: respx.MockRouter, sleeps: Sleeps, headers: dict[str, str], expected: float | None
) -> None:
    mock.get("/key").respond(429, headers=headers, json=RATE_LIMITED)
    with pytest.raises(RateLimited) as exc:
        provider(sleeps, attempts=1).fetch()
    if expected is None:
        assert exc.value.retry_after is None
    else:
        assert exc.value.retry_after == pytest.approx(expected)


@freeze_time("2026-11-27 12:00:00")
def test_the_reset_repeated_in_the_error_metadata_is_honoured(
    mock: respx.MockRouter, sleeps: Sleeps
) -> None:
    """OpenRouter repeats the limit's headers in error.metadata.headers."""
    body = {
        "error": {
            "code": 429,
            "message": "Rate limit exceeded: free-models-per-day.",
            "metadata": {
                "headers": {
                    "X-RateLimit-Limit": "50",
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": "1795780812000",
                }
            },
        }
    }
    mock.get("/key").respond(429, json=body)
    with pytest.raises(RateLimited) as exc:
        provider(sleeps, attempts=1).fetch()
    assert exc.value.retry_after == pytest.approx(12.0)


def test_patch_sends_only_the_disabled_field(mock: respx.MockRouter, sleeps: Sleeps) -> None:
    route = mock.patch("/keys/abc123").respond(
        200, json={"data": dict(ROW, hash="abc123", disabled=False)}
    )
    provider(sleeps, management=True).set_key_disabled("abc123", False)
    assert json.loads(route.calls.last.request.content) == {"disabled": False}


# -- key limits: exactly the two fields, checked before sending ----------------------------------


def test_a_key_limit_is_sent_as_exactly_limit_and_limit_reset(
    mock: respx.MockRouter, sleeps: Sleeps
) -> None:
    answer = dict(ROW, hash="abc123", limit=12.5, limit_reset="daily", limit_remaining=12.5)
    route = mock.patch("/keys/abc123").respond(200, json={"data": answer})
    key = provider(sleeps, management=True).update_key_limit("abc123", 12.5, "daily")
    request = route.calls.last.request
    assert request.headers["authorization"] == f"Bearer {MGMT}"
    assert json.loads(request.content) == {"limit": 12.5, "limit_reset": "daily"}
    assert (key.hash, key.limit, key.limit_reset, key.limit_remaining) == (
        "abc123",
        12.5,
        "daily",
        12.5,
    )


def test_removing_a_key_limit_sends_nulls(mock: respx.MockRouter, sleeps: Sleeps) -> None:
    answer = dict(ROW, hash="abc123", limit=None, limit_reset=None, limit_remaining=None)
    route = mock.patch("/keys/abc123").respond(200, json={"data": answer})
    key = provider(sleeps, management=True).update_key_limit("abc123", None, None)
    assert route.calls.last.request.content == b'{"limit":null,"limit_reset":null}'
    assert key.limit is None


@pytest.mark.parametrize(
    ("limit", "reset"),
    [
        (-0.01, "daily"),
        (float("nan"), None),
        (float("inf"), "monthly"),
        (True, "weekly"),
        ("10", "daily"),
        (10.0, "hourly"),
        (10.0, "lifetime"),
        (10.0, ""),
    ],
)
def test_a_key_limit_the_provider_would_refuse_is_refused_before_sending(
    mock: respx.MockRouter, sleeps: Sleeps, limit: Any, reset: Any
) -> None:
    route = mock.patch(url__regex=r".*/keys/.*")
    with pytest.raises(ValueError):
        provider(sleeps, management=True).update_key_limit("abc123", limit, reset)
    assert not route.called


def test_a_key_limit_needs_a_management_key(mock: respx.MockRouter, sleeps: Sleeps) -> None:
    with pytest.raises(AuthError):
        provider(sleeps).update_key_limit("abc123", 5.0, None)


def test_a_refused_key_limit_is_a_typed_error(mock: respx.MockRouter, sleeps: Sleeps) -> None:
    mock.patch("/keys/nope").respond(404, json=error(404, "Resource not found"))
    with pytest.raises(BadResponse) as exc:
        provider(sleeps, management=True, attempts=1).update_key_limit("nope", 5.0, None)
    assert exc.value.status == 404


def test_a_key_limit_answer_that_is_not_a_key_is_a_bad_response(
    mock: respx.MockRouter, sleeps: Sleeps
) -> None:
    mock.patch("/keys/abc123").respond(200, json={"data": dict(ROW, hash="abc123", limit=-5)})
    with pytest.raises(BadResponse):
        provider(sleeps, management=True).update_key_limit("abc123", 5.0, None)


# -- per-key, per-day activity --------------------------------------------------------------------


def test_activity_asks_for_one_key_and_one_day(mock: respx.MockRouter, sleeps: Sleeps) -> None:
    route = mock.get("/activity").respond(200, json=ACTIVITY_EXAMPLE)
    client = provider(sleeps, management=True)
    rows = client.activity(api_key_hash="f01d5260", day=date(2025, 8, 24))
    assert dict(route.calls.last.request.url.params) == {
        "api_key_hash": "f01d5260",
        "date": "2025-08-24",
    }
    assert [r.usage for r in rows] == [0.015]
    client.activity()
    assert route.calls.last.request.url.query == b""  # the whole account, every day


# -- workspace budgets --------------------------------------------------------------------------


WS = "550e8400-e29b-41d4-a716-446655440000"


def test_a_workspace_budget_is_read(mock: respx.MockRouter, sleeps: Sleeps) -> None:
    route = mock.get(f"/workspaces/{WS}/budgets/monthly").respond(200, json=BUDGET_EXAMPLE)
    budget = provider(sleeps, management=True).workspace_budget(WS, "monthly")
    assert budget == WorkspaceBudget(WS, "monthly", 100.0, "monthly")
    assert route.calls.last.request.headers["authorization"] == f"Bearer {MGMT}"


def test_no_workspace_budget_is_none(mock: respx.MockRouter, sleeps: Sleeps) -> None:
    route = mock.get(f"/workspaces/{WS}/budgets/daily").respond(
        404, json=error(404, "Resource not found")
    )
    assert provider(sleeps, management=True).workspace_budget(WS, "daily") is None
    assert route.call_count == 1  # a 404 is not retried


def test_a_workspace_budget_is_put_with_only_its_limit(
    mock: respx.MockRouter, sleeps: Sleeps
) -> None:
    answer = {"data": dict(BUDGET_EXAMPLE["data"], limit_usd=250.0, reset_interval=None)}
    route = mock.put("/workspaces/production/budgets/lifetime").respond(200, json=answer)
    budget = provider(sleeps, management=True).set_workspace_budget("production", "lifetime", 250.0)
    assert json.loads(route.calls.last.request.content) == {"limit_usd": 250.0}
    assert budget == WorkspaceBudget(WS, "lifetime", 250.0, None)


@pytest.mark.parametrize(
    ("interval", "limit"),
    [("hourly", 5.0), ("", 5.0), ("monthly", -1.0), ("monthly", float("nan")), ("daily", True)],
)
def test_a_budget_the_provider_would_refuse_is_refused_before_sending(
    mock: respx.MockRouter, sleeps: Sleeps, interval: str, limit: Any
) -> None:
    route = mock.put(url__regex=r".*/budgets/.*")
    with pytest.raises(ValueError):
        provider(sleeps, management=True).set_workspace_budget(WS, interval, limit)
    assert not route.called


@pytest.mark.parametrize("interval", ["hourly", "", "Monthly", "lifetime "])
def test_a_budget_of_an_unknown_interval_is_not_asked_for(
    mock: respx.MockRouter, sleeps: Sleeps, interval: str
) -> None:
    route = mock.get(url__regex=r".*/budgets/.*")
    with pytest.raises(ValueError):
        provider(sleeps, management=True).workspace_budget(WS, interval)
    assert not route.called


def test_a_nan_budget_is_a_bad_response(mock: respx.MockRouter, sleeps: Sleeps) -> None:
    body = {"data": dict(BUDGET_EXAMPLE["data"], limit_usd="NaN")}
    mock.get(f"/workspaces/{WS}/budgets/weekly").respond(200, json=body)
    with pytest.raises(BadResponse):
        provider(sleeps, management=True).workspace_budget(WS, "weekly")


def test_a_failing_budget_read_is_not_none(mock: respx.MockRouter, sleeps: Sleeps) -> None:
    """Only a 404 means no budget; a 500 is an error, not "unlimited"."""
    mock.get(f"/workspaces/{WS}/budgets/weekly").respond(
        500, json=error(500, "Internal Server Error")
    )
    with pytest.raises(TransientError):
        provider(sleeps, management=True, attempts=2).workspace_budget(WS, "weekly")
