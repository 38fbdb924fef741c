"""The OpenRouter client over HTTP (respx): retries, Retry-After, errors, pagination."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import respx
from freezegun import freeze_time

from tests.unit.test_openrouter_parse import (
    CREDITS_EXAMPLE,
    KEY_EXAMPLE,
    KEYS_EXAMPLE,
    LEGACY_EXAMPLE,
)
from watchdog.providers.base import AuthError, BadResponse, RateLimited, TransientError
from watchdog.providers.openrouter import OpenRouterProvider

BASE = "https://openrouter.test/api/v1"
KEY = "sk-or-v1-respx-secret-key-value"
MGMT = "sk-or-v1-respx-management-key"


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
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
            httpx.Response(429, headers={"Retry-After": "7"}),
            httpx.Response(200, json=KEY_EXAMPLE),
        ]
    )
    provider(sleeps).fetch()
    assert sleeps and 7 <= sleeps[0] < 7.8


@freeze_time("2026-11-27 12:00:00")
def test_retry_after_as_http_date(mock: respx.MockRouter, sleeps: Sleeps) -> None:
    mock.get("/key").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "Fri, 27 Nov 2026 12:00:05 GMT"}),
            httpx.Response(200, json=KEY_EXAMPLE),
        ]
    )
    provider(sleeps).fetch()
    assert 5 <= sleeps[0] < 5.6


def test_a_long_retry_after_is_returned_not_slept(mock: respx.MockRouter, sleeps: Sleeps) -> None:
    mock.get("/key").respond(429, headers={"Retry-After": "600"})
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
    mock.get("/credits").respond(403, json={"error": {"code": 403, "message": "Forbidden"}})
    with pytest.raises(AuthError) as exc:
        provider(sleeps, management=True).fetch()
    assert "wrong key type" in str(exc.value)


def test_legacy_path_is_used_when_key_is_404(mock: respx.MockRouter, sleeps: Sleeps) -> None:
    mock.get("/key").respond(404)
    legacy = mock.get("/auth/key").respond(200, json=LEGACY_EXAMPLE)
    client = provider(sleeps)
    client.fetch()
    client.fetch()
    assert legacy.call_count == 2
    assert mock.routes[0].call_count == 1  # remembered: /key is not asked again


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
    row = KEYS_EXAMPLE["data"][0]
    page0 = [dict(row, hash=f"h{i}", label=f"l{i}") for i in range(100)]
    page1 = [dict(row, hash="watched", label="sk-or-v1-au7...890", name="batch")]
    mock.get("/key").respond(200, json=KEY_EXAMPLE)
    mock.get("/credits").respond(200, json=CREDITS_EXAMPLE)
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
    assert mock.routes[1].calls.last.request.headers["authorization"] == f"Bearer {MGMT}"


def test_zero_credits_from_a_non_management_answer_are_ignored(
    mock: respx.MockRouter, sleeps: Sleeps
) -> None:
    mock.get("/key").respond(200, json=KEY_EXAMPLE)
    mock.get("/keys").respond(200, json=KEYS_EXAMPLE)
    mock.get("/credits").respond(200, json={"data": {"total_credits": 0, "total_usage": 0}})
    assert provider(sleeps, management=True).fetch().credits is None


def test_disable_key_sends_a_patch(mock: respx.MockRouter, sleeps: Sleeps) -> None:
    route = mock.patch("/keys/abc123").respond(200, json={"data": {"hash": "abc123"}})
    provider(sleeps, management=True).set_key_disabled("abc123", True)
    assert route.calls.last.request.content == b'{"disabled":true}'


def test_the_key_never_appears_in_an_error(mock: respx.MockRouter, sleeps: Sleeps) -> None:
    mock.get("/key").respond(401, json={"error": {"code": 401, "message": f"bad key {KEY}"}})
    with pytest.raises(AuthError) as exc:
        provider(sleeps).fetch()
    assert KEY not in str(exc.value)
