"""The kill switch through the tick: revoke, re-arm, latch, trips across restarts, key disable."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from tests.fake_openrouter import DEFAULT_WORKSPACE_ID, key_row, workspace_row
from tests.fakes import Clock, ScriptedProvider, build_tick
from watchdog import gate
from watchdog.config import Settings, load
from watchdog.core.model import KeyUsage, Override, PermitChange, Snapshot, Trip
from watchdog.providers.openrouter import OpenRouterProvider
from watchdog.store import Store
from watchdog.tick import Tick

T0 = datetime(2026, 11, 27, 9, tzinfo=UTC)
BASE = "https://openrouter.test/api/v1"


def settings_for(tmp_path: Path, **killswitch: Any) -> Settings:
    return load(
        None,
        require_key=False,
        overrides={
            "budget": {"daily_limit": 20.0},
            "state": {"path": str(tmp_path / "state.db")},
            "killswitch": {"path": str(tmp_path / "run" / "permit"), **killswitch},
        },
    ).settings


def snap(clock: Clock, daily: float) -> Snapshot:
    return Snapshot(clock(), key=KeyUsage(usage=100 + daily, usage_daily=daily, label="batch"))


class Account:
    """A provider whose spend today the test sets before each tick."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.daily = 1.0

    def fetch(self) -> Snapshot:
        return snap(self.clock, self.daily)

    def admin(self) -> None:
        return None

    def close(self) -> None:
        return None


def tick(settings: Settings, provider: Any, clock: Clock) -> Tick:
    return build_tick(settings, provider, clock)


def record(store: Store, override: Override, change: PermitChange) -> None:
    """What `trip` and `arm` write: the override and its audit line, in one unit."""
    with store.unit() as unit:
        unit.set_override(override)
        unit.audit(change)


def go(settings: Settings, clock: Clock) -> bool:
    return gate.check(permit=str(settings.killswitch.path), now=clock().timestamp()).go


def test_permit_is_refreshed_revoked_and_rearmed(tmp_path: Path) -> None:
    clock, settings = Clock(T0), settings_for(tmp_path)
    account = Account(clock)
    t = tick(settings, account, clock)
    t.run()
    first = json.loads(settings.killswitch.path.read_text())
    clock.advance(minutes=1)
    t.run()
    second = json.loads(settings.killswitch.path.read_text())
    assert second["expires_at"] > first["expires_at"]  # a lease, refreshed every tick
    assert second["headroom_usd"] == pytest.approx(19.0)
    account.daily = 21.0
    clock.advance(minutes=1)
    result = t.run()
    assert not result.decision.armed
    assert not settings.killswitch.path.exists() and not go(settings, clock)
    account.daily = 0.5  # a new day: the provider's daily counter starts again
    clock.advance(days=1)
    assert t.run().decision.armed
    assert go(settings, clock)
    audit = [(c.state, c.reason) for c in t.store.audit_log()]
    assert audit == [("armed", "no finding demands a stop"), ("revoked", "daily_limit critical")]
    shown = t.view.to_json(clock())["permit_history"]
    assert [(h["state"], h["by"]) for h in shown] == [("armed", "rules"), ("revoked", "rules")]


def test_the_lease_expires_when_nobody_refreshes_it(tmp_path: Path) -> None:
    clock, settings = Clock(T0), settings_for(tmp_path, ttl="5m")
    tick(settings, Account(clock), clock).run()
    assert go(settings, clock)
    clock.advance(minutes=5, seconds=1)  # the daemon died: no more ticks
    assert not go(settings, clock)


def test_latch_holds_until_arm(tmp_path: Path) -> None:
    clock, settings = Clock(T0), settings_for(tmp_path, latch=True)
    account = Account(clock)
    t = tick(settings, account, clock)
    account.daily = 25.0
    t.run()
    account.daily = 0.5
    clock.advance(days=1)  # the next day: nothing over any limit, but the latch holds
    result = t.run()
    assert not result.decision.armed
    assert "latched" in result.decision.reason
    record(
        t.store, Override(armed_at=clock()), PermitChange(clock(), "arm requested", "bob", "arm")
    )
    clock.advance(minutes=1)
    assert t.run().decision.armed


def test_a_trip_survives_a_restart_and_arm_ends_it(tmp_path: Path) -> None:
    clock, settings = Clock(T0), settings_for(tmp_path)
    t = tick(settings, Account(clock), clock)
    t.run()
    trip = Trip("audit", "alice (cli)", T0)
    record(t.store, Override(trip=trip), PermitChange(T0, "tripped", "alice (cli)", "audit"))
    clock.advance(minutes=1)
    assert not t.run().decision.armed
    t.store.close()
    restarted = tick(settings, Account(clock), clock)  # a new process: state from the store
    clock.advance(minutes=1)
    result = restarted.run()
    assert not result.decision.armed
    assert result.decision.reason == "tripped by alice (cli): audit"
    arm = PermitChange(clock(), "arm requested", "alice (cli)", "manual arm")
    record(restarted.store, Override(armed_at=clock()), arm)
    clock.advance(minutes=1)
    assert restarted.run().decision.armed
    states = [c.state for c in restarted.store.audit_log()]
    assert states[:3] == ["armed", "arm requested", "revoked"]


def test_stale_data_revokes_or_keeps_as_configured(tmp_path: Path) -> None:
    from watchdog.providers.base import TransientError

    for on_stale, armed in (("revoke", False), ("keep", True)):
        clock = Clock(T0)
        settings = settings_for(tmp_path / on_stale, on_stale=on_stale)
        provider = ScriptedProvider(clock, [1.0] + [TransientError("HTTP 502")] * 20)
        t = tick(settings, provider, clock)
        for _ in range(12):
            result = t.run()
            clock.advance(minutes=1)
        assert "stale" in [f.rule for f in result.findings]
        assert result.decision.armed is armed


# -- provider-side key disable ----------------------------------------------------------------


# Fields GET /keys has that GET /key does not.
KEYS_ONLY = ("hash", "name", "disabled", "created_at", "updated_at", "workspace_id")


class FakeAdmin:
    """A management API in respx: keys, their usage today, disable/enable by PATCH."""

    def __init__(self, router: respx.MockRouter) -> None:
        self.keys: dict[str, dict[str, Any]] = {
            "h-watched": key_row("h-watched", "batch", usage=100.0, usage_daily=1.0),
            "h-other": key_row("h-other", "other", disabled=True, usage=5.0),
        }
        # Every key lives in the default workspace: the one GET /workspaces lists.
        workspace = workspace_row(DEFAULT_WORKSPACE_ID, "default", "Default Workspace")
        router.get("/workspaces").respond(200, json={"data": [workspace], "total_count": 1})
        self.patches: list[tuple[str, bool]] = []
        self.fail_patch = False
        router.get("/key").mock(side_effect=self._key)
        router.get("/keys").mock(
            side_effect=lambda r: httpx.Response(200, json={"data": list(self.keys.values())})
        )
        router.get("/credits").respond(
            200, json={"data": {"total_credits": 500, "total_usage": 105}}
        )
        router.patch(url__regex=r".*/keys/(?P<h>[\w-]+)$").mock(side_effect=self._patch)
        router.get("/activity").respond(200, json={"data": []})

    def _key(self, request: httpx.Request) -> httpx.Response:
        key = self.keys["h-watched"]
        if key["disabled"]:
            return httpx.Response(401, json={"error": {"code": 401, "message": "Key disabled"}})
        # GET /key: the key's own view, as the spec gives it (no hash, name or workspace)
        own = {k: v for k, v in key.items() if k not in KEYS_ONLY}
        own |= {"is_free_tier": False, "is_management_key": False, "is_provisioning_key": False}
        own["rate_limit"] = {"interval": "10s", "note": "deprecated", "requests": 10}
        return httpx.Response(200, json={"data": own})

    def _patch(self, request: httpx.Request, h: str) -> httpx.Response:
        if self.fail_patch:
            return httpx.Response(500, json={"error": {"code": 500, "message": "boom"}})
        disabled = json.loads(request.content)["disabled"]
        self.patches.append((h, disabled))
        self.keys[h]["disabled"] = disabled
        return httpx.Response(200, json={"data": self.keys[h]})


@pytest.fixture
def admin() -> Iterator[FakeAdmin]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield FakeAdmin(router)


def provider() -> OpenRouterProvider:
    return OpenRouterProvider(BASE, "sk-watched", "sk-mgmt", attempts=1, sleep=lambda s: None)


def test_revoking_disables_the_watched_key_and_rearming_enables_only_it(
    tmp_path: Path, admin: FakeAdmin
) -> None:
    clock, settings = Clock(T0), settings_for(tmp_path, disable_keys=True)
    t = tick(settings, provider(), clock)
    t.run()
    assert admin.patches == []
    admin.keys["h-watched"]["usage_daily"] = 22.0
    clock.advance(minutes=1)
    t.run()
    assert admin.patches == [("h-watched", True)]
    assert t.store.disabled_keys() == {"h-watched": "batch"}
    clock.advance(minutes=1)
    result = t.run()  # /key now answers 401; the key's usage comes from /keys
    assert result.error is None
    assert "auth" not in [f.rule for f in result.findings]
    assert admin.patches == [("h-watched", True)]  # not disabled twice
    admin.keys["h-watched"]["usage_daily"] = 0.2  # a new day
    clock.advance(days=1)
    assert t.run().decision.armed
    assert admin.patches == [("h-watched", True), ("h-watched", False)]
    assert admin.keys["h-other"]["disabled"] is True  # not ours: left alone
    assert t.store.disabled_keys() == {}


def test_the_record_of_disabled_keys_survives_a_restart(tmp_path: Path, admin: FakeAdmin) -> None:
    clock, settings = Clock(T0), settings_for(tmp_path, disable_keys=True)
    admin.keys["h-watched"]["usage_daily"] = 22.0
    first = tick(settings, provider(), clock)
    first.run()
    first.store.close()
    admin.keys["h-watched"]["usage_daily"] = 0.2
    clock.advance(days=1)
    second = tick(settings, provider(), clock)
    second.run()  # a new process: the key is known from /keys by the hash it stored
    clock.advance(minutes=1)
    second.run()
    assert admin.patches[-1] == ("h-watched", False)


def test_a_failed_disable_is_critical_and_retried(tmp_path: Path, admin: FakeAdmin) -> None:
    clock, settings = Clock(T0), settings_for(tmp_path, disable_keys=True)
    t = tick(settings, provider(), clock)
    admin.fail_patch = True
    admin.keys["h-watched"]["usage_daily"] = 22.0
    t.run()
    clock.advance(minutes=1)
    result = t.run()
    failing = [f for f in result.findings if f.rule == "key_disable"]
    assert failing and failing[0].severity == "critical"
    assert "HTTP 500: boom" in failing[0].message
    admin.fail_patch = False
    clock.advance(minutes=1)
    t.run()
    assert admin.patches == [("h-watched", True)]
    clock.advance(minutes=1)
    assert "key_disable" not in [f.rule for f in t.run().findings]


def test_a_key_disabled_by_someone_else_is_an_auth_finding(
    tmp_path: Path, admin: FakeAdmin
) -> None:
    clock, settings = Clock(T0), settings_for(tmp_path)
    t = tick(settings, provider(), clock)
    t.run()
    admin.keys["h-watched"]["disabled"] = True
    clock.advance(minutes=1)
    result = t.run()
    auth = [f for f in result.findings if f.rule == "auth"]
    assert auth and "disabled at the provider" in auth[0].message
    assert not result.decision.armed
    assert timedelta(0) <= (clock() - T0)
