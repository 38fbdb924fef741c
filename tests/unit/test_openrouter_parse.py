"""Parsing OpenRouter's documented bodies into Snapshots, tolerant of what may vary."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from watchdog.core.model import Credits, KeyUsage, Snapshot
from watchdog.providers.base import BadResponse, Workspace, WorkspaceBudget
from watchdog.providers.openrouter import parse_activity, parse_budget, parse_key, parse_workspace

# The example of GET /api/v1/key in OpenRouter's OpenAPI document.
KEY_EXAMPLE = {
    "data": {
        "byok_usage": 17.38,
        "byok_usage_daily": 17.38,
        "byok_usage_monthly": 17.38,
        "byok_usage_weekly": 17.38,
        "creator_user_id": "user_2dHFtVWx2n56w6HkM0000000000",
        "expires_at": "2027-12-31T23:59:59Z",
        "include_byok_in_limit": False,
        "is_free_tier": False,
        "is_management_key": False,
        "is_provisioning_key": False,
        "label": "sk-or-v1-au7...890",
        "limit": 100,
        "limit_remaining": 74.5,
        "limit_reset": "monthly",
        "rate_limit": {"interval": "1h", "note": "deprecated", "requests": 1000},
        "usage": 25.5,
        "usage_daily": 25.5,
        "usage_monthly": 25.5,
        "usage_weekly": 25.5,
    }
}
# The example of GET /api/v1/keys in OpenRouter's OpenAPI document (one row). Its label
# is not of the form /key reports: labels do not identify a key across the two.
KEYS_EXAMPLE = {
    "data": [
        {
            "byok_usage": 17.38,
            "byok_usage_daily": 17.38,
            "byok_usage_monthly": 17.38,
            "byok_usage_weekly": 17.38,
            "created_at": "2025-08-24T10:30:00Z",
            "creator_user_id": "user_2dHFtVWx2n56w6HkM0000000000",
            "disabled": False,
            "expires_at": "2027-12-31T23:59:59Z",
            "hash": "f01d52606dc8f0a8303a7b5cc3fa07109c2e346cec7c0a16b40de462992ce943",
            "include_byok_in_limit": False,
            "label": "Production API Key",
            "limit": 100,
            "limit_remaining": 74.5,
            "limit_reset": "monthly",
            "name": "My Production Key",
            "updated_at": "2025-08-24T15:45:00Z",
            "usage": 25.5,
            "usage_daily": 25.5,
            "usage_monthly": 25.5,
            "usage_weekly": 25.5,
            "workspace_id": "0df9e665-d932-5740-b2c7-b52af166bc11",
        }
    ]
}
# The example of GET /api/v1/activity (one row).
ACTIVITY_EXAMPLE = {
    "data": [
        {
            "byok_usage_inference": 0.012,
            "completion_tokens": 125,
            "date": "2025-08-24",
            "endpoint_id": "550e8400-e29b-41d4-a716-446655440000",
            "model": "openai/gpt-4.1",
            "model_permaslug": "openai/gpt-4.1-2025-04-14",
            "prompt_tokens": 50,
            "provider_name": "OpenAI",
            "reasoning_tokens": 25,
            "requests": 5,
            "usage": 0.015,
        }
    ]
}
# What older deployments answer on GET /api/v1/auth/key: a subset.
LEGACY_EXAMPLE = {
    "data": {
        "label": "sk-or-v1-116...0ce",
        "limit": 5,
        "usage": 0.1015644762,
        "is_provisioning_key": False,
        "limit_remaining": 4.8984355238,
        "is_free_tier": False,
        "rate_limit": {"requests": 50, "interval": "10s"},
    }
}
CREDITS_EXAMPLE = {"data": {"total_credits": 100.5, "total_usage": 25.75}}
# The example of GET /api/v1/workspaces in OpenRouter's OpenAPI document.
WORKSPACES_EXAMPLE: dict[str, Any] = {
    "data": [
        {
            "created_at": "2025-08-24T10:30:00Z",
            "created_by": "user_abc123",
            "default_guardrail_id": "595d5849-7e86-51fd-a7c0-705c34e4afff",
            "default_image_model": "openai/dall-e-3",
            "default_provider_sort": "price",
            "default_text_model": "openai/gpt-4o",
            "description": "Production environment workspace",
            "id": "550e8400-e29b-41d4-a716-446655440000",
            "include_byok_in_budgets": False,
            "io_logging_api_key_ids": None,
            "io_logging_sampling_rate": 1,
            "is_data_discount_logging_enabled": True,
            "is_observability_broadcast_enabled": False,
            "is_observability_io_logging_enabled": False,
            "name": "Production",
            "slug": "production",
            "updated_at": "2025-08-24T15:45:00Z",
        }
    ],
    "total_count": 1,
}
# The example of GET (and PUT) /api/v1/workspaces/{id}/budgets/{interval}.
BUDGET_EXAMPLE: dict[str, Any] = {
    "data": {
        "created_at": "2025-08-24T10:30:00Z",
        "id": "770e8400-e29b-41d4-a716-446655440000",
        "limit_usd": 100,
        "reset_interval": "monthly",
        "updated_at": "2025-08-24T15:45:00Z",
        "workspace_id": "550e8400-e29b-41d4-a716-446655440000",
    },
    "include_byok_in_budgets": True,
}


def test_current_key_example_parses_every_field() -> None:
    key = parse_key(KEY_EXAMPLE["data"], "/key")
    assert key.usage == 25.5
    assert key.limit == 100.0
    assert key.limit_remaining == 74.5
    assert key.limit_reset == "monthly"
    assert (key.usage_daily, key.usage_weekly, key.usage_monthly) == (25.5, 25.5, 25.5)
    assert key.is_free_tier is False
    assert key.expires_at == datetime(2027, 12, 31, 23, 59, 59, tzinfo=UTC)


def test_keys_example_carries_identity() -> None:
    key = parse_key(KEYS_EXAMPLE["data"][0], "/keys")
    assert key.hash is not None
    assert key.hash.startswith("f01d5260")
    assert key.name == "My Production Key"
    assert key.disabled is False
    assert key.display_name == "My Production Key"


def test_legacy_body_leaves_missing_windows_unknown() -> None:
    key = parse_key(LEGACY_EXAMPLE["data"], "/auth/key")
    assert key.usage == pytest.approx(0.1015644762)
    assert key.usage_daily is None
    assert key.limit_reset is None
    assert key.expires_at is None


def test_null_limit_means_unlimited_and_odd_optional_fields_are_ignored() -> None:
    body = dict(
        KEY_EXAMPLE["data"],
        limit=None,
        limit_remaining=None,
        expires_at="soon",
        is_free_tier="no",
        brand_new_field={"x": 1},
    )
    key = parse_key(body, "/key")
    assert key.limit is None
    assert key.limit_remaining is None
    assert key.expires_at is None
    assert key.is_free_tier is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("usage", 1e400),
        ("usage", float("nan")),
        ("usage_daily", "NaN"),
        ("usage_daily", "n/a"),
        ("usage_monthly", "-Infinity"),
        ("usage_weekly", "1e400"),
        ("limit", "NaN"),
        ("usage", -5),
        ("usage_daily", -1),
        ("byok_usage", True),
    ],
)
def test_a_counter_that_is_not_a_finite_number_makes_the_answer_unreadable(
    field: str, value: object
) -> None:
    """A spend counter read as NaN, infinity or a negative number made spend read $0 and
    the permit say go: such an answer is a failed poll (no-go), said with the field."""
    with pytest.raises(BadResponse, match=field):
        parse_key(dict(KEY_EXAMPLE["data"], **{field: value}), "/key")


def test_a_negative_remaining_limit_is_still_read() -> None:
    key = parse_key(dict(KEY_EXAMPLE["data"], limit_remaining=-3.25), "/key")
    assert key.limit_remaining == -3.25


@pytest.mark.parametrize(
    "body", [None, [], "text", {"label": "x"}, {"usage": None}, {"usage": "lots"}, {"usage": True}]
)
def test_a_key_without_numeric_usage_is_a_bad_response(body: object) -> None:
    with pytest.raises(BadResponse):
        parse_key(body, "/key")


def test_snapshot_balance_is_the_tighter_of_account_and_key_limit() -> None:
    now = datetime(2026, 11, 27, tzinfo=UTC)
    # A limit that never resets bounds the balance (a resetting one is a budget per period).
    key = parse_key(dict(KEY_EXAMPLE["data"], limit_reset=None), "/key")  # remaining 74.5
    roomy = Snapshot(now, key=key, credits=Credits(200.0, 25.75))
    tight = Snapshot(now, key=key, credits=Credits(100.5, 60.0))
    assert roomy.balance == 74.5
    assert tight.balance == pytest.approx(40.5)
    assert Snapshot(now, key=KeyUsage(usage=3.0)).balance is None


def test_snapshot_scope_and_counter() -> None:
    now = datetime(2026, 11, 27, tzinfo=UTC)
    watched = Snapshot(now, key=KeyUsage(usage=7.0), credits=Credits(50, 30))
    assert watched.scope == "key"
    assert watched.usage == 7.0
    keys = (KeyUsage(usage=10, usage_daily=1), KeyUsage(usage=20, usage_daily=2))
    account = Snapshot(now, credits=Credits(50, 30), keys=keys)
    assert account.scope == "account"
    assert account.usage == 30
    sample = account.to_sample()
    assert sample.usage_daily == 3
    assert sample.usage_weekly is None  # unknown for some key: unknown for the account
    assert sample.balance == 20


def test_negative_remaining_limit_is_kept() -> None:
    key = parse_key(dict(KEY_EXAMPLE["data"], limit_remaining=-3.25, limit_reset=None), "/key")
    assert Snapshot(datetime(2026, 1, 1, tzinfo=UTC), key=key).balance == -3.25


def test_activity_rows_parse_with_defaults() -> None:
    row = parse_activity(dict(ACTIVITY_EXAMPLE["data"][0], date="2026-11-20 00:00:00"))
    assert row.date == date(2026, 11, 20)
    assert row.usage == 0.015
    assert row.reasoning_tokens == 25
    assert parse_activity({"date": "2026-11-21"}).model == "unknown"
    with pytest.raises(BadResponse):
        parse_activity({"date": "yesterday"})


# -- BYOK: count what the provider counts ---------------------------------------------------


def test_byok_fields_are_kept_not_discarded() -> None:
    key = parse_key(KEY_EXAMPLE["data"], "/key")
    assert key.byok_usage == 17.38
    assert (key.byok_usage_daily, key.byok_usage_weekly, key.byok_usage_monthly) == (
        17.38,
        17.38,
        17.38,
    )
    assert key.include_byok_in_limit is False
    listed = parse_key(KEYS_EXAMPLE["data"][0], "/keys")
    assert listed.workspace_id == "0df9e665-d932-5740-b2c7-b52af166bc11"


def test_byok_spend_counts_toward_the_key_limit_burn_when_the_provider_counts_it() -> None:
    """With include_byok_in_limit the provider counts BYOK spend against the key's limit:
    the counter the burn (and so the key_limit projection) is measured on must too."""
    t0, t1 = datetime(2026, 11, 27, 12, tzinfo=UTC), datetime(2026, 11, 27, 13, tzinfo=UTC)
    body = dict(KEY_EXAMPLE["data"], include_byok_in_limit=True)
    before = Snapshot(t0, key=parse_key(body, "/key"))
    later = dict(body, usage=26.5, usage_daily=26.5, byok_usage=21.38, byok_usage_daily=21.38)
    after = Snapshot(t1, key=parse_key(later, "/key"))
    assert before.usage == pytest.approx(25.5 + 17.38)
    assert after.usage - before.usage == pytest.approx(1.0 + 4.0)  # $5/h, not $1/h
    sample = after.to_sample()
    assert sample.usage_daily == pytest.approx(26.5 + 21.38)  # the window goes with it
    assert sample.byok_usage == pytest.approx(21.38)
    assert sample.byok_usage_daily == pytest.approx(21.38)
    assert sample.byok_counted is True


def test_byok_spend_is_shown_apart_but_not_counted_when_the_limit_excludes_it() -> None:
    now = datetime(2026, 11, 27, tzinfo=UTC)
    snapshot = Snapshot(now, key=parse_key(KEY_EXAMPLE["data"], "/key"))
    assert snapshot.usage == 25.5  # OpenRouter's lifetime counter, as before
    sample = snapshot.to_sample()
    assert sample.usage_daily == 25.5
    assert sample.byok_usage == 17.38
    assert sample.byok_counted is False


def test_counted_byok_with_an_unknown_byok_window_leaves_that_window_unknown() -> None:
    key = KeyUsage(usage=10.0, usage_daily=2.0, byok_usage=5.0, include_byok_in_limit=True)
    assert key.counted_usage == 15.0
    assert key.counted_window("usage_daily") is None  # never lower than the counter says
    legacy = KeyUsage(usage=10.0, usage_daily=2.0, include_byok_in_limit=True)
    assert legacy.counted_usage == 10.0  # BYOK unknown: nothing to add
    assert legacy.counted_window("usage_daily") == 2.0


def test_account_byok_is_summed_over_the_keys_and_usage_stays_credits() -> None:
    now = datetime(2026, 11, 27, tzinfo=UTC)
    keys = (
        KeyUsage(usage=10, byok_usage=3.0, include_byok_in_limit=True),
        KeyUsage(usage=20, byok_usage=1.0),
    )
    account = Snapshot(now, credits=Credits(50, 30), keys=keys)
    assert account.usage == 30  # the account's counter: OpenRouter credits
    assert account.byok_usage == 4.0
    assert account.to_sample().byok_counted is False


def test_a_byok_only_activity_row_is_not_zero() -> None:
    row = parse_activity(dict(ACTIVITY_EXAMPLE["data"][0], usage=0, byok_usage_inference=0.012))
    assert row.usage == 0
    assert row.byok_usage == 0.012
    assert row.spend == 0.012
    assert parse_activity({"date": "2026-11-21"}).spend == 0.0  # missing: counts as 0


# -- workspaces and their budgets ----------------------------------------------------------


def test_the_workspaces_example_parses_to_id_slug_and_name() -> None:
    assert parse_workspace(WORKSPACES_EXAMPLE["data"][0]) == Workspace(
        "550e8400-e29b-41d4-a716-446655440000", "production", "Production"
    )


@pytest.mark.parametrize(
    "change",
    [{"id": None}, {"id": ""}, {"slug": 7}, {"name": None}],
)
def test_a_workspace_without_id_slug_or_name_is_a_bad_response(change: dict[str, object]) -> None:
    with pytest.raises(BadResponse):
        parse_workspace(dict(WORKSPACES_EXAMPLE["data"][0], **change))
    with pytest.raises(BadResponse):
        parse_workspace(["not", "an", "object"])


def test_the_budget_example_parses() -> None:
    assert parse_budget(BUDGET_EXAMPLE["data"], "monthly") == WorkspaceBudget(
        "550e8400-e29b-41d4-a716-446655440000", "monthly", 100.0, "monthly"
    )


def test_a_lifetime_budget_has_no_reset_interval() -> None:
    """The spec's reset_interval enum is daily/weekly/monthly/null: lifetime is null."""
    body = dict(BUDGET_EXAMPLE["data"], reset_interval=None, limit_usd=1000.5)
    budget = parse_budget(body, "lifetime")
    assert (budget.interval, budget.reset_interval, budget.limit_usd) == ("lifetime", None, 1000.5)


@pytest.mark.parametrize(
    "change",
    [
        {"limit_usd": float("nan")},
        {"limit_usd": "Infinity"},
        {"limit_usd": -1},
        {"limit_usd": True},
        {"limit_usd": None},
        {"workspace_id": None},
        {"reset_interval": "hourly"},
    ],
)
def test_an_unreadable_budget_is_a_bad_response(change: dict[str, object]) -> None:
    with pytest.raises(BadResponse):
        parse_budget(dict(BUDGET_EXAMPLE["data"], **change), "monthly")
