"""Every workspace's keys, per-key activity, key limits and workspace budgets, through the
client against the loopback fake (tests/fake_openrouter.py) and, for the shapes the fake
cannot give (one key in two listings, a row without its workspace), respx.

GET /keys lists only the default workspace unless `workspace_id` names another: an
account-wide sum read from it alone would miss every other workspace's spend. So the
client lists the workspaces first, and fails the whole poll when any listing fails."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import httpx
import pytest
import respx

from tests.fake_openrouter import (
    API_KEY,
    DEFAULT_WORKSPACE_ID,
    KEY_HASH,
    MANAGEMENT_KEY,
    FakeOpenRouter,
    Fault,
    activity_row,
    key_row,
    workspace_row,
)
from tests.unit.test_openrouter_parse import KEYS_EXAMPLE
from watchdog.providers.base import (
    AuthError,
    BadResponse,
    TransientError,
    Workspace,
    WorkspaceBudget,
)
from watchdog.providers.openrouter import OpenRouterProvider

TEAM = "5a1e0000-0000-4000-8000-00000000000b"
LAB = "1ab00000-0000-4000-8000-00000000000c"


@pytest.fixture
def fake() -> Iterator[FakeOpenRouter]:
    server = FakeOpenRouter().start()
    yield server
    server.stop()


def client(fake: FakeOpenRouter, **kwargs: Any) -> OpenRouterProvider:
    return OpenRouterProvider(
        fake.base_url, API_KEY, MANAGEMENT_KEY, attempts=1, sleep=lambda s: None, **kwargs
    )


def three_workspaces(fake: FakeOpenRouter) -> None:
    """130 keys: the watched one and 104 more in the default workspace (two pages), 15 in
    "team", 10 in "lab"."""
    fake.add_workspace(TEAM, "team", "Team")
    fake.add_workspace(LAB, "lab", "Lab")
    fake.other_keys.extend(key_row(f"d{i:03}", f"default {i}", usage=1.0) for i in range(104))
    fake.other_keys.extend(
        key_row(f"t{i:03}", f"team {i}", workspace_id=TEAM, usage=2.0) for i in range(15)
    )
    fake.other_keys.extend(
        key_row(f"l{i:03}", f"lab {i}", workspace_id=LAB, usage=3.0, disabled=i == 0)
        for i in range(10)
    )


def keys_queries(fake: FakeOpenRouter) -> list[tuple[str, str]]:
    """(workspace_id, offset) of every GET /keys, in order."""
    return [
        (q["workspace_id"][0], q["offset"][0])
        for m, p, q in fake.queries
        if m == "GET" and p.endswith("/keys")
    ]


# -- every workspace --------------------------------------------------------------------------


def test_every_key_of_every_workspace_is_listed_page_by_page(fake: FakeOpenRouter) -> None:
    three_workspaces(fake)
    keys = client(fake).list_keys()
    assert len(keys) == 130 and len({k.hash for k in keys}) == 130
    assert keys_queries(fake) == [
        (DEFAULT_WORKSPACE_ID, "0"),
        (DEFAULT_WORKSPACE_ID, "100"),
        (TEAM, "0"),
        (LAB, "0"),
    ]
    by_workspace = {k.hash: k.workspace_id for k in keys}
    assert by_workspace[KEY_HASH] == by_workspace["d103"] == DEFAULT_WORKSPACE_ID
    assert by_workspace["t014"] == TEAM and by_workspace["l009"] == LAB
    assert next(k for k in keys if k.hash == "l000").disabled  # disabled keys too


def test_the_account_s_keys_in_a_poll_are_every_workspace_s(fake: FakeOpenRouter) -> None:
    three_workspaces(fake)
    snapshot = client(fake).fetch()
    assert len(snapshot.keys) == 130
    others = sum(k.usage for k in snapshot.keys if k.hash != KEY_HASH)
    assert others == pytest.approx(104 * 1.0 + 15 * 2.0 + 10 * 3.0)
    assert snapshot.key is not None and snapshot.key.hash == KEY_HASH


def test_the_workspaces_are_listed_100_at_a_time_until_the_total(fake: FakeOpenRouter) -> None:
    for i in range(1, 120):
        fake.add_workspace(f"00000000-0000-4000-8000-{i:012}", f"ws-{i}", f"Workspace {i}")
    listed = client(fake).workspaces()
    assert len(listed) == 120
    assert listed[0] == Workspace(DEFAULT_WORKSPACE_ID, "default", "Default Workspace")
    pages = [
        (q["offset"][0], q["limit"][0]) for m, p, q in fake.queries if p.endswith("/workspaces")
    ]
    assert pages == [("0", "100"), ("100", "100")]


def test_a_full_last_page_ends_the_listing_at_the_total(fake: FakeOpenRouter) -> None:
    for i in range(1, 100):
        fake.add_workspace(f"00000000-0000-4000-8000-{i:012}", f"ws-{i}", f"Workspace {i}")
    assert len(client(fake).workspaces()) == 100
    assert len([p for _, p, _ in fake.queries if p.endswith("/workspaces")]) == 1


def test_named_workspaces_by_slug_list_only_theirs(fake: FakeOpenRouter) -> None:
    three_workspaces(fake)
    keys = client(fake, workspaces=("team", LAB)).list_keys()
    assert {k.workspace_id for k in keys} == {TEAM, LAB}
    assert len(keys) == 25
    assert keys_queries(fake) == [(TEAM, "0"), (LAB, "0")]


def test_a_workspace_named_twice_is_listed_once(fake: FakeOpenRouter) -> None:
    three_workspaces(fake)
    keys = client(fake, workspaces=("team", TEAM)).list_keys()
    assert len(keys) == 15
    assert keys_queries(fake) == [(TEAM, "0")]


def test_a_named_workspace_the_account_lacks_fails_the_poll(fake: FakeOpenRouter) -> None:
    three_workspaces(fake)
    with pytest.raises(BadResponse) as exc:
        client(fake, workspaces=("team", "staging")).fetch()
    assert "'staging'" in str(exc.value) and "provider.workspaces" in str(exc.value)
    assert keys_queries(fake) == []  # nothing partial was read


def test_no_workspace_at_all_is_refused() -> None:
    with pytest.raises(ValueError):
        OpenRouterProvider("http://127.0.0.1:9", None, MANAGEMENT_KEY, workspaces=())


def test_a_failing_workspace_listing_fails_the_poll(fake: FakeOpenRouter) -> None:
    """No partial sum: without the workspaces, no key is read and the poll fails."""
    three_workspaces(fake)
    fake.fault(Fault(503, paths=("/workspaces",), count=1))
    with pytest.raises(TransientError):
        client(fake).fetch()
    assert keys_queries(fake) == []
    assert len(client(fake).fetch().keys) == 130  # healed


def test_a_failing_key_listing_of_one_workspace_fails_the_poll(fake: FakeOpenRouter) -> None:
    three_workspaces(fake)
    provider = client(fake)
    provider.list_keys()
    fake.fault(Fault(500, paths=("/keys",), count=1))
    with pytest.raises(TransientError):
        provider.fetch()


def test_the_watched_key_in_another_workspace_is_found_in_the_listing(
    fake: FakeOpenRouter,
) -> None:
    three_workspaces(fake)
    fake.account.workspace_id = TEAM
    provider = client(fake, key_hash=KEY_HASH)
    snapshot = provider.fetch()
    assert snapshot.key is not None and snapshot.key.workspace_id == TEAM
    assert provider.watched_key_identity().can_disable
    asked = [p for m, p, _ in fake.queries if m == "GET"]
    assert not any(p.endswith(f"/keys/{KEY_HASH}") for p in asked)  # no lookup needed


def test_workspaces_need_a_management_key(fake: FakeOpenRouter) -> None:
    alone = OpenRouterProvider(fake.base_url, API_KEY, None, attempts=1)
    with pytest.raises(AuthError):
        alone.workspaces()
    with pytest.raises(AuthError):
        alone.list_keys()


# -- shapes only respx gives -----------------------------------------------------------------

BASE = "https://openrouter.test/api/v1"
MGMT = "sk-or-v1-workspaces-management-key"
ROW = KEYS_EXAMPLE["data"][0]


def workspaces_body(*ids: str) -> dict[str, Any]:
    rows = [workspace_row(i, f"ws{n}", f"Workspace {n}") for n, i in enumerate(ids)]
    return {"data": rows, "total_count": len(rows)}


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


def admin() -> OpenRouterProvider:
    return OpenRouterProvider(BASE, None, MGMT, attempts=1, sleep=lambda s: None)


def test_a_key_in_two_listings_counts_once(mock: respx.MockRouter) -> None:
    mock.get("/workspaces").respond(200, json=workspaces_body(DEFAULT_WORKSPACE_ID, TEAM))
    shared = dict(ROW, hash="shared", usage=7.0)
    mock.get("/keys").mock(
        side_effect=lambda request: httpx.Response(
            200,
            json={
                "data": [shared, dict(ROW, hash=request.url.params["workspace_id"][:8])],
            },
        )
    )
    keys = admin().list_keys()
    assert [k.hash for k in keys] == ["shared", DEFAULT_WORKSPACE_ID[:8], TEAM[:8]]


def test_a_key_row_without_its_workspace_gets_the_one_asked_for(mock: respx.MockRouter) -> None:
    mock.get("/workspaces").respond(200, json=workspaces_body(TEAM))
    row = {k: v for k, v in ROW.items() if k != "workspace_id"}
    mock.get("/keys").respond(200, json={"data": [row]})
    assert [k.workspace_id for k in admin().list_keys()] == [TEAM]


def test_a_failing_second_workspace_fails_the_listing(mock: respx.MockRouter) -> None:
    """The first workspace's keys were read; the sum without the second would be low."""
    mock.get("/workspaces").respond(200, json=workspaces_body(DEFAULT_WORKSPACE_ID, TEAM))

    def keys(request: httpx.Request) -> httpx.Response:
        if request.url.params["workspace_id"] == TEAM:
            return httpx.Response(
                500, json={"error": {"code": 500, "message": "Internal Server Error"}}
            )
        return httpx.Response(200, json={"data": [ROW]})

    route = mock.get("/keys").mock(side_effect=keys)
    with pytest.raises(TransientError):
        admin().list_keys()
    assert route.call_count == 2


def test_an_empty_workspace_listing_is_a_bad_response(mock: respx.MockRouter) -> None:
    """Every account has a default workspace: none listed would read as no spend."""
    mock.get("/workspaces").respond(200, json={"data": [], "total_count": 0})
    keys = mock.get("/keys").respond(200, json=KEYS_EXAMPLE)
    with pytest.raises(BadResponse):
        admin().list_keys()
    assert not keys.called


@pytest.mark.parametrize(
    "body",
    [
        {"data": {"id": DEFAULT_WORKSPACE_ID}, "total_count": 1},
        {"data": [{"slug": "default", "name": "Default"}], "total_count": 1},
        {"data": [workspace_row(DEFAULT_WORKSPACE_ID, "default", "D")], "total_count": "1"},
    ],
)
def test_an_unreadable_workspace_listing_is_a_bad_response(
    mock: respx.MockRouter, body: dict[str, Any]
) -> None:
    mock.get("/workspaces").respond(200, json=body)
    with pytest.raises(BadResponse):
        admin().workspaces()


def test_a_listing_past_its_total_stops_at_the_total(mock: respx.MockRouter) -> None:
    full = [workspace_row(f"{i:08}-0000-4000-8000-000000000000", f"w{i}", "W") for i in range(100)]
    route = mock.get("/workspaces").respond(200, json={"data": full, "total_count": 100})
    assert len(admin().workspaces()) == 100
    assert route.call_count == 1


# -- per-key activity --------------------------------------------------------------------------


def test_activity_of_one_key_and_one_day(fake: FakeOpenRouter) -> None:
    three_workspaces(fake)
    day = date(2026, 11, 2)
    fake.activity += [
        dict(activity_row(day, "openai/gpt-4.1", "OpenAI", 0.25, 1, 10, 5), api_key_hash="t003"),
        dict(activity_row(day, "x/y", "Z", 0.75, 3, 30, 15), api_key_hash="t003"),
        activity_row(day, "x/y", "Z", 2.0, 9, 90, 45),  # the watched key's
    ]
    provider = client(fake)
    assert {r.usage for r in provider.activity(api_key_hash="t003")} == {0.25, 0.75}
    watched = provider.activity(api_key_hash=KEY_HASH)
    assert [(r.date, r.usage) for r in watched] == [(date(2026, 11, 1), 1.5), (day, 2.0)]
    assert [r.usage for r in provider.activity(day=date(2026, 11, 1))] == [1.5]
    everything = provider.activity()
    assert sum(r.usage for r in everything) == pytest.approx(1.5 + 0.25 + 0.75 + 2.0)


# -- key limits --------------------------------------------------------------------------------


def test_a_key_limit_set_is_what_the_next_listing_shows(fake: FakeOpenRouter) -> None:
    three_workspaces(fake)
    fake.spend_key("t002", 4.0)
    provider = client(fake)
    key = provider.update_key_limit("t002", 10.0, "daily")
    assert fake.patches == [("t002", {"limit": 10.0, "limit_reset": "daily"})]
    assert (key.limit, key.limit_reset, key.limit_remaining) == (10.0, "daily", 6.0)
    listed = next(k for k in provider.list_keys() if k.hash == "t002")
    assert (listed.limit, listed.limit_reset, listed.limit_remaining) == (10.0, "daily", 6.0)
    provider.update_key_limit("t002", None, None)
    listed = next(k for k in provider.list_keys() if k.hash == "t002")
    assert (listed.limit, listed.limit_reset, listed.limit_remaining) == (None, None, None)


def test_the_watched_key_s_limit_is_set_too(fake: FakeOpenRouter) -> None:
    key = client(fake).update_key_limit(KEY_HASH, 80.0, "monthly")
    assert key.limit_remaining == pytest.approx(80.0 - fake.account.usage_monthly)
    assert (fake.account.limit, fake.account.limit_reset) == (80.0, "monthly")


# -- workspace budgets -------------------------------------------------------------------------


def test_a_workspace_budget_is_put_then_read(fake: FakeOpenRouter) -> None:
    three_workspaces(fake)
    provider = client(fake)
    assert provider.workspace_budget("team", "monthly") is None
    put = provider.set_workspace_budget("team", "monthly", 300.0)
    assert put == WorkspaceBudget(TEAM, "monthly", 300.0, "monthly")
    assert fake.budget_puts == [("team", "monthly", {"limit_usd": 300.0})]
    assert provider.workspace_budget(TEAM, "monthly") == put
    lifetime = provider.set_workspace_budget(TEAM, "lifetime", 5000)
    assert lifetime == WorkspaceBudget(TEAM, "lifetime", 5000.0, None)
    assert provider.workspace_budgets("team") == [lifetime, put]


def test_a_budget_the_provider_refuses_is_a_typed_error(fake: FakeOpenRouter) -> None:
    """Limits must shrink with the interval: a daily budget above the monthly is a 400."""
    fake.set_budget(DEFAULT_WORKSPACE_ID, "monthly", 100.0)
    with pytest.raises(BadResponse) as exc:
        client(fake).set_workspace_budget("default", "daily", 150.0)
    assert exc.value.status == 400
    assert fake.budget_puts == []


def test_a_budget_of_an_unknown_workspace_is_none(fake: FakeOpenRouter) -> None:
    """The spec answers 404 for both; only reading tells them apart, by listing."""
    assert client(fake).workspace_budget("nowhere", "daily") is None


def test_a_failing_budget_read_is_an_error_not_none(fake: FakeOpenRouter) -> None:
    fake.set_budget(DEFAULT_WORKSPACE_ID, "weekly", 50.0)
    fake.fault(Fault(502, paths=("/budgets/weekly",), count=1))
    with pytest.raises(TransientError):
        client(fake).workspace_budget("default", "weekly")
    assert client(fake).workspace_budget("default", "weekly") == WorkspaceBudget(
        DEFAULT_WORKSPACE_ID, "weekly", 50.0, "weekly"
    )
