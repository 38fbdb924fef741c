"""The fake OpenRouter's account beyond the watched key, as the spec says it behaves: keys
per workspace, spend on any key in every window, deleted and renamed keys, activity
filtered by key, day and workspace, limits set by PATCH, workspace budgets by PUT, and
fault injection on the new paths. Tests of the client rely on these; here they are
checked over HTTP, on their own."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import httpx
import pytest

from tests.fake_openrouter import (
    API_KEY,
    DEFAULT_WORKSPACE_ID,
    KEY_HASH,
    MANAGEMENT_KEY,
    FakeOpenRouter,
    Fault,
    activity_row,
    key_row,
)

TEAM = "5a1e0000-0000-4000-8000-00000000000b"
DAY = date(2026, 11, 2)


@pytest.fixture
def fake() -> Iterator[FakeOpenRouter]:
    server = FakeOpenRouter().start()
    yield server
    server.stop()


def get(fake: FakeOpenRouter, path: str, key: str = MANAGEMENT_KEY, **params: Any) -> Any:
    response = httpx.get(
        f"{fake.base_url}{path}",
        params=params,
        headers={"Authorization": f"Bearer {key}"},
        timeout=5,
    )
    return response.json() if response.status_code == 200 else response.status_code


def send(fake: FakeOpenRouter, method: str, path: str, body: Any) -> Any:
    response = httpx.request(
        method,
        f"{fake.base_url}{path}",
        json=body,
        headers={"Authorization": f"Bearer {MANAGEMENT_KEY}"},
        timeout=5,
    )
    return response.json() if response.status_code == 200 else response.status_code


def hashes(body: Any) -> list[str]:
    return [row["hash"] for row in body["data"]]


# -- workspaces and their keys ----------------------------------------------------------------


def test_there_is_always_a_default_workspace(fake: FakeOpenRouter) -> None:
    body = get(fake, "/workspaces")
    assert body["total_count"] == 1
    assert [(w["id"], w["slug"]) for w in body["data"]] == [(DEFAULT_WORKSPACE_ID, "default")]


def test_keys_are_listed_by_workspace_the_default_one_without_a_filter(
    fake: FakeOpenRouter,
) -> None:
    fake.add_workspace(TEAM, "team", "Team")
    fake.other_keys += [
        key_row("d1", "default key"),
        {k: v for k, v in key_row("d2", "no workspace named").items() if k != "workspace_id"},
        key_row("t1", "team key", workspace_id=TEAM),
        key_row("t2", "team key, off", workspace_id=TEAM, disabled=True),
    ]
    assert hashes(get(fake, "/keys")) == [KEY_HASH, "d1", "d2"]
    assert hashes(get(fake, "/keys", workspace_id=TEAM)) == ["t1"]
    assert hashes(get(fake, "/keys", workspace_id=TEAM, include_disabled="true")) == ["t1", "t2"]
    assert get(fake, "/keys/d2")["data"]["workspace_id"] == DEFAULT_WORKSPACE_ID
    assert get(fake, "/keys/t2")["data"]["workspace_id"] == TEAM
    assert get(fake, "/keys", workspace_id="team") == 400  # an id, not a slug
    assert get(fake, "/keys", workspace_id="00000000-0000-4000-8000-00000000dead") == 400


def test_a_workspace_is_listed_only_once(fake: FakeOpenRouter) -> None:
    fake.add_workspace(TEAM, "team", "Team")
    with pytest.raises(ValueError):
        fake.add_workspace(TEAM, "team-2", "Team again")
    with pytest.raises(ValueError):
        fake.add_workspace("5a1e0000-0000-4000-8000-0000000000ff", "team", "Same slug")


def test_workspaces_page_by_offset_and_limit(fake: FakeOpenRouter) -> None:
    for i in range(1, 130):
        fake.add_workspace(f"00000000-0000-4000-8000-{i:012}", f"ws-{i}", f"W {i}")
    assert len(get(fake, "/workspaces")["data"]) == 50  # the spec's default limit
    page = get(fake, "/workspaces", offset=100, limit=100)
    assert (len(page["data"]), page["total_count"]) == (30, 130)
    assert get(fake, "/workspaces", limit=101) == 400
    assert get(fake, "/workspaces", API_KEY) == 403


# -- spend on any key -----------------------------------------------------------------------


@pytest.mark.parametrize("reset", [None, "daily", "weekly", "monthly"])
@pytest.mark.parametrize("byok_counts", [False, True])
def test_spend_on_another_key_moves_its_windows_and_remaining_as_the_watched_key_s(
    fake: FakeOpenRouter, reset: str | None, byok_counts: bool
) -> None:
    """Same counters, same limit: the other key reports what the watched key reports."""
    a = fake.account
    counters = {
        name: getattr(a, name)
        for prefix in ("usage", "byok_usage")
        for name in (prefix, f"{prefix}_daily", f"{prefix}_weekly", f"{prefix}_monthly")
    }
    fake.other_keys.append(key_row("o1", "other", **counters))
    for key_hash in (KEY_HASH, "o1"):
        send(
            fake,
            "PATCH",
            f"/keys/{key_hash}",
            {"limit": 150.0, "limit_reset": reset, "include_byok_in_limit": byok_counts},
        )
        fake.spend_key(key_hash, 2.5, byok=0.5)
    watched, other = get(fake, f"/keys/{KEY_HASH}")["data"], get(fake, "/keys/o1")["data"]
    for field in ("usage", "usage_daily", "usage_weekly", "usage_monthly", "byok_usage_daily"):
        assert other[field] == pytest.approx(watched[field]), field
    assert other["limit_remaining"] == pytest.approx(watched["limit_remaining"])
    suffix = f"_{reset}" if reset else ""
    used = other[f"usage{suffix}"] + (other[f"byok_usage{suffix}"] if byok_counts else 0.0)
    assert other["limit_remaining"] == pytest.approx(150.0 - used)


def test_spend_on_a_key_grows_every_window_and_the_account_s_usage(fake: FakeOpenRouter) -> None:
    fake.other_keys.append(key_row("o1", "other", usage=10.0, usage_daily=1.0))
    before = get(fake, "/credits")["data"]["total_usage"]
    fake.spend_key("o1", 3.0, byok=1.0)
    row = get(fake, "/keys/o1")["data"]
    assert (row["usage"], row["usage_daily"], row["usage_weekly"], row["usage_monthly"]) == (
        13.0,
        4.0,
        3.0,
        3.0,
    )
    assert row["byok_usage"] == row["byok_usage_monthly"] == 1.0
    assert row["limit_remaining"] is None  # no limit
    assert get(fake, "/credits")["data"]["total_usage"] == pytest.approx(before + 3.0)


def test_remaining_goes_below_zero_as_the_watched_key_s_does(fake: FakeOpenRouter) -> None:
    """The watched key's limit_remaining is not clamped (the parser reads a negative
    one); another key's follows the same rule."""
    fake.other_keys.append(key_row("o1", "other"))
    send(fake, "PATCH", "/keys/o1", {"limit": 1.0, "limit_reset": "daily"})
    fake.spend_key("o1", 1.5)
    fake.account.limit, fake.account.limit_reset = 1.0, "daily"
    fake.account.usage_daily = 1.5
    assert get(fake, "/keys/o1")["data"]["limit_remaining"] == pytest.approx(-0.5)
    assert get(fake, f"/keys/{KEY_HASH}")["data"]["limit_remaining"] == pytest.approx(-0.5)


def test_spend_on_an_unknown_key_is_a_test_bug(fake: FakeOpenRouter) -> None:
    with pytest.raises(KeyError):
        fake.spend_key("nope", 1.0)


# -- deleted and renamed keys -----------------------------------------------------------------


def test_a_deleted_key_is_gone_from_every_listing(fake: FakeOpenRouter) -> None:
    fake.other_keys.append(key_row("o1", "other"))
    fake.delete_key("o1")
    assert hashes(get(fake, "/keys", include_disabled="true")) == [KEY_HASH]
    assert get(fake, "/keys/o1") == 404
    with pytest.raises(KeyError):
        fake.delete_key("o1")


def test_a_deleted_watched_key_is_refused_and_unlisted(fake: FakeOpenRouter) -> None:
    fake.delete_key(KEY_HASH)
    assert get(fake, "/key", API_KEY) == 401
    assert hashes(get(fake, "/keys", include_disabled="true")) == []
    assert get(fake, f"/keys/{KEY_HASH}") == 404
    assert send(fake, "PATCH", f"/keys/{KEY_HASH}", {"disabled": True}) == 404


def test_a_renamed_key_keeps_its_hash(fake: FakeOpenRouter) -> None:
    fake.other_keys.append(key_row("o1", "other"))
    fake.rename_key("o1", "renamed")
    fake.rename_key(KEY_HASH, "watched, renamed")
    names = {row["hash"]: row["name"] for row in get(fake, "/keys")["data"]}
    assert names == {KEY_HASH: "watched, renamed", "o1": "renamed"}
    assert get(fake, "/keys/o1")["data"]["updated_at"] is not None
    with pytest.raises(KeyError):
        fake.rename_key("nope", "x")


# -- limits set by PATCH ----------------------------------------------------------------------


def test_a_patched_limit_is_what_the_next_get_shows(fake: FakeOpenRouter) -> None:
    fake.other_keys.append(key_row("o1", "other", usage=9.0, usage_weekly=4.0))
    answer = send(fake, "PATCH", "/keys/o1", {"limit": 10, "limit_reset": "weekly"})
    assert answer["data"]["limit_remaining"] == 6.0
    row = get(fake, "/keys/o1")["data"]
    assert (row["limit"], row["limit_reset"], row["limit_remaining"]) == (10, "weekly", 6.0)
    send(fake, "PATCH", "/keys/o1", {"limit_reset": None})
    assert get(fake, "/keys/o1")["data"]["limit_remaining"] == 1.0  # lifetime: 10 - 9
    assert fake.patches[-1] == ("o1", {"limit_reset": None})


def test_a_limit_set_in_the_row_is_served_as_set(fake: FakeOpenRouter) -> None:
    """Rows built with an explicit limit_remaining keep it until something changes."""
    fake.other_keys.append(key_row("o1", "other", limit=10.0, limit_remaining=3.0))
    assert get(fake, "/keys/o1")["data"]["limit_remaining"] == 3.0


# -- activity ---------------------------------------------------------------------------------


def rows_for_three_keys(fake: FakeOpenRouter) -> None:
    fake.add_workspace(TEAM, "team", "Team")
    fake.other_keys += [key_row("d1", "default key"), key_row("t1", "team", workspace_id=TEAM)]
    fake.activity = [
        activity_row(DAY, "a/m", "P", 1.0, 1, 10, 1),  # the watched key's
        dict(activity_row(DAY, "a/m", "P", 2.0, 2, 20, 2), api_key_hash="d1"),
        dict(activity_row(DAY, "a/m", "P", 4.0, 4, 40, 4), api_key_hash="t1"),
        dict(activity_row(date(2026, 11, 3), "b/n", "Q", 8.0, 8, 80, 8), api_key_hash="t1"),
        # A row marked with its workspace, whatever its key's is now.
        dict(activity_row(DAY, "c/o", "R", 16.0, 1, 1, 1), workspace_id=TEAM),
    ]


def usages(body: Any) -> list[float]:
    return [row["usage"] for row in body["data"]]


def test_activity_without_filters_is_summed_by_day_model_and_endpoint(
    fake: FakeOpenRouter,
) -> None:
    rows_for_three_keys(fake)
    body = get(fake, "/activity")
    assert usages(body) == [7.0, 8.0, 16.0]
    assert body["data"][0]["requests"] == 7
    served = {name for row in body["data"] for name in row}
    assert "api_key_hash" not in served and "workspace_id" not in served


def test_activity_of_one_key(fake: FakeOpenRouter) -> None:
    rows_for_three_keys(fake)
    assert usages(get(fake, "/activity", api_key_hash="t1")) == [4.0, 8.0]
    assert usages(get(fake, "/activity", api_key_hash=KEY_HASH)) == [1.0, 16.0]
    assert usages(get(fake, "/activity", api_key_hash="d1", date="2026-11-03")) == []


def test_activity_of_one_day(fake: FakeOpenRouter) -> None:
    rows_for_three_keys(fake)
    assert usages(get(fake, "/activity", date="2026-11-03")) == [8.0]
    assert get(fake, "/activity", date="3 Nov") == 400


def test_activity_of_one_workspace_and_split_by_workspace(fake: FakeOpenRouter) -> None:
    rows_for_three_keys(fake)
    assert usages(get(fake, "/activity", workspace_id=TEAM)) == [4.0, 8.0, 16.0]
    assert usages(get(fake, "/activity", workspace_id=DEFAULT_WORKSPACE_ID)) == [3.0]
    split = get(fake, "/activity", group_by="workspace")["data"]
    assert [(r["workspace_id"], r["usage"]) for r in split] == [
        (DEFAULT_WORKSPACE_ID, 3.0),
        (TEAM, 4.0),
        (TEAM, 8.0),
        (TEAM, 16.0),
    ]
    assert get(fake, "/activity", group_by="key") == 400
    assert get(fake, "/activity", workspace_id="00000000-0000-4000-8000-00000000dead") == 404


def test_a_deleted_key_s_activity_stays(fake: FakeOpenRouter) -> None:
    rows_for_three_keys(fake)
    fake.delete_key("t1")
    assert usages(get(fake, "/activity", api_key_hash="t1")) == [4.0, 8.0]
    assert usages(get(fake, "/activity", workspace_id=TEAM)) == [4.0, 8.0, 16.0]


# -- workspace budgets ------------------------------------------------------------------------


def test_a_budget_is_put_recorded_and_read_by_id_or_slug(fake: FakeOpenRouter) -> None:
    fake.add_workspace(TEAM, "team", "Team")
    assert get(fake, f"/workspaces/{TEAM}/budgets/monthly") == 404
    put = send(fake, "PUT", "/workspaces/team/budgets/monthly", {"limit_usd": 120})
    assert put["data"]["workspace_id"] == TEAM and put["data"]["limit_usd"] == 120
    assert put["include_byok_in_budgets"] is False
    assert fake.budget_puts == [("team", "monthly", {"limit_usd": 120})]
    read = get(fake, f"/workspaces/{TEAM}/budgets/monthly")["data"]
    assert (read["limit_usd"], read["reset_interval"]) == (120, "monthly")
    assert get(fake, "/workspaces/team/budgets/daily") == 404


def test_budgets_must_shrink_as_the_interval_narrows(fake: FakeOpenRouter) -> None:
    send(fake, "PUT", "/workspaces/default/budgets/weekly", {"limit_usd": 50})
    assert send(fake, "PUT", "/workspaces/default/budgets/daily", {"limit_usd": 50}) == 400
    assert send(fake, "PUT", "/workspaces/default/budgets/monthly", {"limit_usd": 40}) == 400
    assert send(fake, "PUT", "/workspaces/default/budgets/lifetime", {"limit_usd": 500}) != 400
    assert [interval for _, interval, _ in fake.budget_puts] == ["weekly", "lifetime"]
    listed = get(fake, "/workspaces/default/budgets")["data"]
    assert [(b["reset_interval"], b["limit_usd"]) for b in listed] == [(None, 500), ("weekly", 50)]


def test_include_byok_in_budgets_is_workspace_wide(fake: FakeOpenRouter) -> None:
    fake.set_budget(DEFAULT_WORKSPACE_ID, "monthly", 100.0)
    body = {"limit_usd": 10, "include_byok_in_budgets": True}
    assert send(fake, "PUT", "/workspaces/default/budgets/daily", body)["include_byok_in_budgets"]
    monthly = get(fake, "/workspaces/default/budgets/monthly")
    assert monthly["include_byok_in_budgets"] is True
    assert get(fake, "/workspaces")["data"][0]["include_byok_in_budgets"] is True


@pytest.mark.parametrize(
    "body", [{}, {"limit_usd": "10"}, {"limit_usd": -1}, {"limit_usd": True}, [10]]
)
def test_a_budget_body_the_spec_refuses_is_a_400(fake: FakeOpenRouter, body: Any) -> None:
    assert send(fake, "PUT", "/workspaces/default/budgets/daily", body) == 400
    assert fake.budget_puts == []


def test_a_budget_of_an_unknown_interval_or_workspace(fake: FakeOpenRouter) -> None:
    assert get(fake, "/workspaces/default/budgets/hourly") == 400
    assert get(fake, "/workspaces/nowhere/budgets/daily") == 404
    assert send(fake, "PUT", "/workspaces/nowhere/budgets/daily", {"limit_usd": 1}) == 404


# -- faults on the new paths ------------------------------------------------------------------


def test_faults_can_target_the_new_paths_alone(fake: FakeOpenRouter) -> None:
    fake.fault(Fault(503, paths=("/workspaces",), count=1))
    fake.fault(Fault(500, paths=("/budgets/monthly",), count=1))
    assert get(fake, "/keys") != 503  # not a listing of workspaces
    assert get(fake, "/workspaces/default/budgets/daily") == 404  # nor this budget
    assert get(fake, "/workspaces") == 503
    assert get(fake, "/workspaces/default/budgets/monthly") == 500
    assert get(fake, "/workspaces")["total_count"] == 1  # each fault once
