"""Which key the provider-side kill switch disables: the watched key found by its configured
hash or name, or by an unambiguous match, never by a guess; and the provider says when it
cannot be found (`watched_key_identity`), so the app can say so once at start.

OpenRouter's own examples give the same kind of key the label "sk-or-v1-au7...890" on
GET /key and "Production API Key" on GET /keys: a label is not an identity."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx

from tests.unit.test_openrouter_parse import (
    CREDITS_EXAMPLE,
    KEY_EXAMPLE,
    KEYS_EXAMPLE,
    WORKSPACES_EXAMPLE,
)
from watchdog.providers.base import AuthError
from watchdog.providers.openrouter import OpenRouterProvider

BASE = "https://openrouter.test/api/v1"
KEY = "sk-or-v1-identity-test-watched-key"
MGMT = "sk-or-v1-identity-test-management-key"
ROW = KEYS_EXAMPLE["data"][0]
WATCHED = dict(ROW, hash="a1" * 32, name="batch jobs", label="Batch (prod)")
OTHER = dict(ROW, hash="b2" * 32, name="notebooks", label="Notebooks")


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        router.get("/key").respond(200, json=KEY_EXAMPLE)  # label "sk-or-v1-au7...890"
        router.get("/credits").respond(200, json=CREDITS_EXAMPLE)
        router.get("/workspaces").respond(200, json=WORKSPACES_EXAMPLE)  # one: "production"
        yield router


def listing(router: respx.MockRouter, *rows: dict[str, Any]) -> respx.Route:
    return router.get("/keys").respond(200, json={"data": list(rows)})


def provider(**kwargs: Any) -> OpenRouterProvider:
    return OpenRouterProvider(BASE, KEY, MGMT, attempts=1, sleep=lambda s: None, **kwargs)


def test_the_configured_hash_finds_the_key_when_labels_differ(mock: respx.MockRouter) -> None:
    listing(mock, OTHER, WATCHED)
    client = provider(key_hash=WATCHED["hash"])
    snapshot = client.fetch()
    assert snapshot.key is not None
    assert snapshot.key.hash == WATCHED["hash"]  # was None: labels never matched
    assert snapshot.key.name == "batch jobs"
    assert snapshot.key.usage == 25.5  # the numbers stay /key's
    identity = client.watched_key_identity()
    assert identity.can_disable and identity.source == "provider.key_hash"


def test_a_configured_hash_outside_the_listing_is_read_by_its_own_endpoint(
    mock: respx.MockRouter,
) -> None:
    """Only the named workspaces are listed: a watched key of another workspace is found
    by GET /keys/{hash}, and joins the account's keys."""
    listing(mock, OTHER)
    elsewhere = dict(WATCHED, workspace_id="9c1f0000-0000-4000-8000-000000000001")
    one = mock.get(f"/keys/{WATCHED['hash']}").respond(200, json={"data": elsewhere})
    client = provider(key_hash=WATCHED["hash"], workspaces=("production",))
    snapshot = client.fetch()
    assert one.called
    assert snapshot.key is not None and snapshot.key.hash == WATCHED["hash"]
    assert snapshot.key.workspace_id == elsewhere["workspace_id"]
    assert [k.hash for k in snapshot.keys] == [OTHER["hash"], WATCHED["hash"]]


def test_an_unknown_configured_hash_is_reported_not_guessed(mock: respx.MockRouter) -> None:
    listing(mock, OTHER, dict(WATCHED, label="sk-or-v1-au7...890"))
    mock.get("/keys/ffff").respond(404, json={"error": {"code": 404, "message": "Not found"}})
    client = provider(key_hash="ffff")
    snapshot = client.fetch()
    assert snapshot.key is not None and snapshot.key.hash is None  # no fallback to a label
    identity = client.watched_key_identity()
    assert not identity.can_disable
    assert identity.problem is not None and "provider.key_hash ffff" in identity.problem


def test_a_configured_name_that_names_exactly_one_key_finds_it(mock: respx.MockRouter) -> None:
    listing(mock, OTHER, WATCHED)
    client = provider(key_name="batch jobs")
    snapshot = client.fetch()
    assert snapshot.key is not None and snapshot.key.hash == WATCHED["hash"]
    assert client.watched_key_identity().source == "provider.key_name"


def test_a_configured_name_shared_by_two_keys_identifies_none(mock: respx.MockRouter) -> None:
    listing(mock, WATCHED, dict(OTHER, name="batch jobs"))
    client = provider(key_name="batch jobs")
    snapshot = client.fetch()
    assert snapshot.key is not None and snapshot.key.hash is None
    problem = client.watched_key_identity().problem
    assert problem is not None and "names 2 of the account's 2 keys" in problem


def test_a_label_shared_by_two_keys_identifies_none(mock: respx.MockRouter) -> None:
    """The old matcher took the label as proof; with two keys under it there is none."""
    label = KEY_EXAMPLE["data"]["label"]
    listing(mock, dict(WATCHED, label=label), dict(OTHER, label=label))
    client = provider()
    snapshot = client.fetch()
    assert snapshot.key is not None and snapshot.key.hash is None
    problem = client.watched_key_identity().problem
    assert problem is not None and "2 keys share the label" in problem
    assert "provider.key_hash" in problem


def test_a_label_that_matches_exactly_one_key_still_identifies_it(
    mock: respx.MockRouter,
) -> None:
    listing(mock, OTHER, dict(WATCHED, label=KEY_EXAMPLE["data"]["label"]))
    client = provider()
    assert client.fetch().key.hash == WATCHED["hash"]  # type: ignore[union-attr]
    assert client.watched_key_identity().source == "its label"


def test_the_sha256_of_the_key_identifies_it_when_it_is_the_listed_hash(
    mock: respx.MockRouter,
) -> None:
    digest = hashlib.sha256(KEY.encode()).hexdigest()
    listing(mock, OTHER, dict(WATCHED, hash=digest))
    client = provider()
    assert client.fetch().key.hash == digest  # type: ignore[union-attr]
    assert client.watched_key_identity().source == "the SHA-256 of the API key"


def test_labels_that_differ_leave_the_switch_unable_to_act_and_say_so(
    mock: respx.MockRouter,
) -> None:
    listing(mock, OTHER, WATCHED)  # the spec's own case: no label in common
    client = provider()
    snapshot = client.fetch()
    assert snapshot.key is not None and snapshot.key.hash is None
    identity = client.watched_key_identity()
    assert not identity.can_disable and not identity.pending
    assert identity.problem is not None and "no listed key has the label" in identity.problem


def test_identity_before_the_first_poll_follows_the_configuration() -> None:
    pending = provider().watched_key_identity()
    assert pending.pending and pending.problem is None and pending.hash is None
    configured = provider(key_hash="abc").watched_key_identity()
    assert configured.can_disable and configured.pending
    alone = OpenRouterProvider(BASE, KEY, None).watched_key_identity()
    assert not alone.can_disable
    assert alone.problem is not None and "no management key" in alone.problem
    account = OpenRouterProvider(BASE, None, MGMT).watched_key_identity()
    assert account.problem is not None and "no watched key" in account.problem


def test_a_disabled_key_is_found_by_its_configured_hash_after_a_restart(
    mock: respx.MockRouter,
) -> None:
    """/key answers 401 once the key is disabled; the configured hash finds its usage."""
    mock.get("/key").respond(401, json={"error": {"code": 401, "message": "User not found."}})
    listing(mock, OTHER, dict(WATCHED, disabled=True))
    snapshot = provider(key_hash=WATCHED["hash"]).fetch()
    assert snapshot.key is not None and snapshot.key.disabled
    assert snapshot.key.hash == WATCHED["hash"]
    with pytest.raises(AuthError):  # nothing known about which key it is: the 401 stands
        provider().fetch()


def test_the_listing_tells_whether_byok_counts_when_key_does_not(mock: respx.MockRouter) -> None:
    """An older deployment's /auth/key leaves include_byok_in_limit out; /keys says it."""
    legacy = {"data": {"label": "l", "usage": 10.0, "byok_usage": 2.0, "limit": None}}
    mock.get("/key").respond(404, json={"error": {"code": 404, "message": "Not Found"}})
    mock.get("/auth/key").respond(200, json=legacy)
    listing(mock, dict(WATCHED, include_byok_in_limit=True))
    snapshot = provider(key_hash=WATCHED["hash"]).fetch()
    assert snapshot.usage == 12.0


def test_remembered_hash_does_not_override_the_configured_one(mock: respx.MockRouter) -> None:
    mock.get("/key").respond(401, json={"error": {"code": 401, "message": "User not found."}})
    listing(mock, dict(OTHER, disabled=True), dict(WATCHED, disabled=True))
    client = provider(key_hash=WATCHED["hash"])
    client.remember_watched_key(str(OTHER["hash"]))
    snapshot = client.fetch()
    assert snapshot.key is not None and snapshot.key.hash == WATCHED["hash"]


def test_listing_and_key_requests_are_all_that_identification_costs(
    mock: respx.MockRouter,
) -> None:
    keys = listing(mock, OTHER, WATCHED)
    client = provider(key_hash=WATCHED["hash"])
    client.fetch()
    client.fetch()
    assert keys.call_count == 2  # one listing a poll, no per-key lookups when listed
    assert all(
        isinstance(c.response, httpx.Response) and c.response.status_code == 200 for c in mock.calls
    )
