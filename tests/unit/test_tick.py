"""One tick, called directly: poll, store, log; failures counted, never raised."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from tests.fakes import Clock, ScriptedProvider
from watchdog.config import Settings, load
from watchdog.log import get_logger
from watchdog.permitfile import Issuer
from watchdog.providers.base import AuthError, RateLimited, TransientError
from watchdog.store import Store
from watchdog.tick import Tick, TickResult

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load(
        None,
        require_key=False,
        overrides={
            "state": {"path": str(tmp_path / "state.db")},
            "killswitch": {"path": str(tmp_path / "permit")},
        },
    ).settings


def make_tick(settings: Settings, provider: ScriptedProvider, clock: Clock) -> Tick:
    return Tick(
        policy=settings.policy(),
        provider=provider,
        admin=None,
        store=Store(settings.state.path),
        permit=Issuer(settings.killswitch.path, clock),
        clock=clock,
        log=get_logger(),
    )


def run(tick: Tick) -> TickResult:
    result = tick.run()
    assert result.outcome is not None, result.failure
    return result


def samples(tick: Tick) -> int:
    return len(tick.store.history(T0 - timedelta(days=1)))


def test_a_successful_poll_is_stored_and_logged(settings: Settings) -> None:
    clock = Clock(T0)
    tick = make_tick(settings, ScriptedProvider(clock, [12.5]), clock)
    with capture_logs() as logs:
        result = run(tick)
    assert result.error is None
    last = tick.store.last_sample()
    assert last is not None and last.usage == 12.5 and last.ts == T0
    poll = [entry for entry in logs if entry["event"] == "poll"]
    assert len(poll) == 1
    assert poll[0]["usage"] == 12.5
    assert poll[0]["data_age_s"] == 0.0


def test_a_failed_poll_is_logged_once_counted_and_not_raised(settings: Settings) -> None:
    clock = Clock(T0)
    provider = ScriptedProvider(
        clock,
        [1.0, TransientError("GET /key: HTTP 502"), AuthError("GET /key: HTTP 401", status=401)],
    )
    tick = make_tick(settings, provider, clock)
    tick.run()
    clock.advance(minutes=1)
    with capture_logs() as logs:
        tick.run()
        clock.advance(minutes=1)
        tick.run()
    failures = [entry for entry in logs if entry["event"] == "poll_failed"]
    assert [f["kind"] for f in failures] == ["transient", "auth"]
    assert failures[1]["data_age_s"] == 120.0
    assert dict(tick.memory.poll.errors_by_kind) == {"transient": 1, "auth": 1}
    assert tick.memory.poll.consecutive_failures == 2
    assert samples(tick) == 1


def test_retry_after_defers_the_next_poll(settings: Settings) -> None:
    clock = Clock(T0)
    provider = ScriptedProvider(clock, [RateLimited("429", retry_after=150), 3.0])
    tick = make_tick(settings, provider, clock)
    tick.run()
    clock.advance(minutes=1)
    assert run(tick).skipped
    assert provider.calls == 1
    clock.advance(minutes=2)
    result = run(tick)
    assert not result.skipped
    assert result.snapshot is not None


def test_the_last_error_survives_a_restart(settings: Settings) -> None:
    clock = Clock(T0)
    tick = make_tick(
        settings, ScriptedProvider(clock, [TransientError("GET /key: HTTP 503")]), clock
    )
    tick.run()
    tick.store.close()
    again = make_tick(settings, ScriptedProvider(clock, []), clock)
    assert again.memory.poll.last_error == "GET /key: HTTP 503"


class Exploding:
    """A provider with a bug: fetch raises something that is not a ProviderError."""

    def fetch(self) -> None:
        "sk-or-v1-\ufeffkey".encode("latin-1")  # what a BOM in a key file did to httpx

    def admin(self) -> None:
        return None

    def close(self) -> None:
        return None


def test_a_tick_that_raises_is_a_recorded_failure_and_fails_closed(settings: Settings) -> None:
    clock = Clock(T0)
    good = make_tick(settings, ScriptedProvider(clock, [1.0, 1.0]), clock)
    run(good)
    clock.advance(minutes=1)
    run(good)
    assert settings.killswitch.path.exists()
    good.provider = Exploding()  # type: ignore[assignment]
    clock.advance(minutes=1)
    with capture_logs() as logs:
        result = good.run()
    assert result.outcome is None and result.failure is not None
    assert "UnicodeEncodeError" in result.failure
    poll = good.memory.poll
    assert poll.last_error_kind == "tick" and "UnicodeEncodeError" in (poll.last_error or "")
    assert dict(poll.errors_by_kind) == {"tick": 1}
    assert poll.last_success == T0 + timedelta(minutes=1)  # the failed tick's data is not fresh
    assert not settings.killswitch.path.exists()  # fail closed
    assert not good.view.armed and "the tick failed" in good.view.permit_reason
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["tick_failed"]


def test_a_workspace_budget_refusal_is_a_budget_finding_not_auth(settings: Settings) -> None:
    """A 403 for a reached workspace budget stops spending at the provider: critical
    `provider_budget` (the permit goes), not `auth` (a wrong key)."""
    from watchdog.providers.base import ProviderBudgetExceeded

    clock = Clock(T0)
    refusal = ProviderBudgetExceeded("GET /key: HTTP 403: Workspace monthly budget exceeded")
    tick = make_tick(settings, ScriptedProvider(clock, [1.0, refusal, 1.5]), clock)
    run(tick)
    clock.advance(minutes=1)
    refused = run(tick)
    rules = {f.rule: f.severity for f in refused.findings}
    assert rules.get("provider_budget") == "critical" and "auth" not in rules
    assert not refused.decision.armed
    clock.advance(minutes=1)
    assert "provider_budget" not in [f.rule for f in run(tick).findings]  # it clears


def test_a_views_decision_stands_as_long_as_the_permit_written_with_it(
    settings: Settings,
) -> None:
    clock = Clock(T0)
    tick = make_tick(settings, ScriptedProvider(clock, [12.5]), clock)
    run(tick)
    v = tick.view
    assert v.armed and v.decided_until == T0 + settings.killswitch.ttl
    assert v.at(T0 + settings.killswitch.ttl - timedelta(seconds=1)).armed
    lapsed = v.at(T0 + settings.killswitch.ttl)
    assert not lapsed.armed and "no tick has finished since" in lapsed.permit_reason
