"""`budget-watchdog caps` and the daemon's caps chore against the loopback fake provider
and a real state file: what is proposed, what is sent (PATCH and PUT bodies), what is
recorded in the cap audit, and what is refused."""

from __future__ import annotations

import argparse
import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

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
from tests.fakes import management_config as config
from watchdog import caps, cli
from watchdog.core.model import CapsPolicy, Policy
from watchdog.providers.openrouter import OpenRouterProvider
from watchdog.store import Store

WEEKLY = "b" * 64  # $40 one day a week, $1 the others
QUIET = "c" * 64  # no spend; a hand-set $0.50 daily limit
HOT = "d" * 64  # $2 a day, but $9 already today
OLD = "e" * 64  # disabled
MONTHLY = "f" * 64  # a hand-set $100 monthly limit
TODAY = datetime.now(UTC).date()


def spend(fake: FakeOpenRouter, key_hash: str, days_ago: int, amount: float) -> None:
    row = activity_row(
        TODAY - timedelta(days=days_ago), "openai/gpt-4.1", "OpenAI", amount, 1, 1, 1
    )
    row["api_key_hash"] = key_hash
    fake.activity.append(row)


@pytest.fixture
def fake() -> Iterator[FakeOpenRouter]:
    server = FakeOpenRouter().start()
    server.account.usage_daily = 0.5  # the watched key "batch": $3 a day
    server.account.usage_monthly = 60.0
    server.activity = []
    server.other_keys += [
        key_row(WEEKLY, "weekly", usage_monthly=100.0),
        key_row(QUIET, "quiet", limit=0.5, limit_reset="daily", limit_remaining=0.5),
        key_row(HOT, "hot", usage_daily=9.0, usage_monthly=30.0),
        key_row(OLD, "old", disabled=True, usage_monthly=5.0),
        key_row(MONTHLY, "monthly", limit=100.0, limit_reset="monthly"),
    ]
    for back in range(1, 31):
        spend(server, KEY_HASH, back, 3.0)
        spend(server, WEEKLY, back, 40.0 if back % 7 == 0 else 1.0)
        spend(server, HOT, back, 2.0)
    yield server
    server.stop()


def _wired() -> bool:
    parser = cli._parser()
    return any(
        isinstance(action, argparse._SubParsersAction) and "caps" in action.choices
        for action in parser._actions
    )


def run_caps(*args: str) -> int:
    """`budget-watchdog caps ARGS` through `watchdog.cli.main` once the CLI has it; until
    then through `watchdog.caps.add_parser` and `command` alone."""
    if _wired():
        return cli.main(["caps", *args])
    parser = argparse.ArgumentParser(prog="budget-watchdog")
    caps.add_parser(parser.add_subparsers(dest="command"))
    ns = parser.parse_args(["caps", *args])
    code: int = ns.func(ns)
    return code


def caps_json(path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert run_caps("--config", str(path), "--json", *args) == 0
    data: dict[str, Any] = json.loads(capsys.readouterr().out)
    return data


def by_name(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k["name"]: k for k in data["keys"]}


def cap_log(tmp_path: Path) -> list[Any]:
    with Store(tmp_path / "state.db") as store:
        return store.cap_log()


# -- the plan -----------------------------------------------------------------------------


def test_a_dry_run_changes_nothing_and_says_so(
    tmp_path: Path, fake: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_caps("--config", str(config(tmp_path, fake))) == 0
    out = capsys.readouterr().out
    assert "dry run: nothing changed" in out
    assert "Dry run: nothing was changed; --apply makes the 2 changes" in out
    assert "95th percentile" in out
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert rows["weekly"].split()[1:4] == ["$40.00", "$52.00", "p95"]
    assert rows["weekly"].split()[-3:] == ["none", "$0.00", "set"]
    assert rows["batch"].split()[1:3] == ["$3.00", "$3.90"]
    assert "refused: $2.60 is not above today's spend $9.00" in rows["hot"]
    assert "refused: hand-set limit $0.50 is lower; --raise raises it" in rows["quiet"]
    assert "refused: hand-set monthly limit $100.00" in rows["monthly"]
    assert rows["old"].endswith("none (disabled: left alone)")
    assert fake.patches == [] and fake.budget_puts == []
    assert cap_log(tmp_path) == []


def test_the_json_gives_every_key_with_the_contract_fields(
    tmp_path: Path, fake: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    data = caps_json(config(tmp_path, fake), capsys)
    keys = by_name(data)
    assert set(keys) == {"batch", "weekly", "quiet", "hot", "old", "monthly"}
    assert {f: keys["weekly"][f] for f in caps_fields()} == {
        "name": "weekly",
        "hash": WEEKLY,
        "expected_daily": 40.0,
        "proposed_limit": 52.0,
        "current_limit": None,
        "current_reset": None,
        "change": "set",
    }
    assert keys["quiet"]["current_limit"] == 0.5 and keys["quiet"]["current_reset"] == "daily"
    assert keys["quiet"]["expected_daily"] == 0.0 and keys["quiet"]["proposed_limit"] == 1.0
    assert keys["old"]["change"] == "none" and keys["old"]["reason"] == "disabled: left alone"
    assert keys["hot"]["spent_today"] == 9.0
    assert data["dry_run"] is True and data["estimator"]["name"] == "p95"
    assert data["workspaces"][0]["id"] == DEFAULT_WORKSPACE_ID


def caps_fields() -> tuple[str, ...]:
    return (
        "name",
        "hash",
        "expected_daily",
        "proposed_limit",
        "current_limit",
        "current_reset",
        "change",
    )


def test_a_disabled_key_s_activity_is_not_even_read(
    tmp_path: Path, fake: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    caps_json(config(tmp_path, fake), capsys)
    asked = [q.get("api_key_hash", [""])[0] for _, p, q in fake.queries if p.endswith("/activity")]
    assert OLD not in asked and WEEKLY in asked


def test_factor_overrides_the_config(
    tmp_path: Path, fake: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    data = caps_json(
        config(tmp_path, fake, extra="[caps]\nfactor = 1.5\n"), capsys, "--factor", "2"
    )
    assert by_name(data)["weekly"]["proposed_limit"] == 80.0
    assert data["factor"] == 2.0


def test_a_factor_below_one_is_a_usage_error(
    tmp_path: Path, fake: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        run_caps("--config", str(config(tmp_path, fake)), "--factor", "0.5")
    assert exit_.value.code == 2
    assert "must be from 1 to 100" in capsys.readouterr().err


def test_a_budget_keys_daily_limit_is_proposed_exactly(
    tmp_path: Path, fake: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = '[[budget.keys]]\nmatch = "week*"\ndaily_limit = 45.5\n'
    data = caps_json(config(tmp_path, fake, extra=extra), capsys)
    weekly = by_name(data)["weekly"]
    assert (weekly["proposed_limit"], weekly["basis"]) == (45.5, "[[budget.keys]] week*")


# -- apply --------------------------------------------------------------------------------


def test_apply_sends_exactly_limit_and_daily_reset(
    tmp_path: Path, fake: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_caps("--config", str(config(tmp_path, fake)), "--apply") == 0
    assert sorted(fake.patches) == sorted(
        [
            (KEY_HASH, {"limit": 3.9, "limit_reset": "daily"}),
            (WEEKLY, {"limit": 52.0, "limit_reset": "daily"}),
        ]
    )
    out = capsys.readouterr().out
    assert "applied" in out and "Applied 2 of 2 changes" in out


def test_apply_records_every_change_in_the_cap_audit(
    tmp_path: Path, fake: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    run_caps("--config", str(config(tmp_path, fake)), "--apply")
    rows = {c.hash: c for c in cap_log(tmp_path)}
    assert set(rows) == {KEY_HASH, WEEKLY}
    weekly = rows[WEEKLY]
    assert (weekly.name, weekly.old_limit, weekly.old_reset) == ("weekly", None, None)
    assert (weekly.new_limit, weekly.new_reset) == (52.0, "daily")
    assert weekly.actor.endswith(" (cli)")
    assert weekly.reason == "caps: p95 of 30 days $40.00 × 1.3"


def test_refused_keys_are_not_touched_and_raise_lifts_the_hand_set_rule(
    tmp_path: Path, fake: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config(tmp_path, fake)
    run_caps("--config", str(path), "--apply")
    assert {h for h, _ in fake.patches}.isdisjoint({QUIET, HOT, MONTHLY, OLD})
    fake.patches.clear()
    assert run_caps("--config", str(path), "--apply", "--raise") == 0
    assert sorted(fake.patches) == sorted(
        [
            (QUIET, {"limit": 1.0, "limit_reset": "daily"}),
            (MONTHLY, {"limit": 1.0, "limit_reset": "daily"}),
        ]
    )  # HOT stays refused: $2.60 would stop it at once, --raise or not
    rows = {c.hash: c for c in cap_log(tmp_path)}
    assert (rows[MONTHLY].old_limit, rows[MONTHLY].old_reset) == (100.0, "monthly")


def test_the_next_run_knows_its_own_caps_and_a_hand_change_since(
    tmp_path: Path, fake: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config(tmp_path, fake)
    run_caps("--config", str(path), "--apply")
    capsys.readouterr()
    assert by_name(caps_json(path, capsys))["weekly"]["change"] == "none"
    fake._other(WEEKLY).update(limit=30.0)  # lowered by hand in the dashboard
    weekly = by_name(caps_json(path, capsys))["weekly"]
    assert weekly["change"] == "refused: hand-set limit $30.00 is lower; --raise raises it"
    assert weekly["hand_set"] is True


def test_a_patch_the_provider_refuses_fails_that_key_only(
    tmp_path: Path, fake: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.fault(
        Fault(400, '{"error": {"code": 400, "message": "nope"}}', paths=(f"/keys/{WEEKLY}",))
    )
    assert run_caps("--config", str(config(tmp_path, fake)), "--apply") == 1
    assert [h for h, _ in fake.patches] == [KEY_HASH]
    assert [c.hash for c in cap_log(tmp_path)] == [KEY_HASH]
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("  weekly"))
    assert "set: FAILED: PATCH /keys/" in line and "HTTP 400: nope" in line


def test_apply_without_a_state_file_refuses(
    tmp_path: Path, fake: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_caps("--config", str(config(tmp_path, fake, state=False)), "--apply") == 1
    assert "no state at" in capsys.readouterr().err
    assert fake.patches == [] and not (tmp_path / "state.db").exists()


def test_a_dry_run_without_a_state_file_treats_limits_as_hand_set(
    tmp_path: Path, fake: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_caps("--config", str(config(tmp_path, fake, state=False))) == 0
    assert "every existing limit counts as hand-set" in capsys.readouterr().err
    assert not (tmp_path / "state.db").exists()


# -- workspace budgets --------------------------------------------------------------------


def test_monthly_limit_becomes_each_workspace_s_monthly_budget(
    tmp_path: Path, fake: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    other = "22222222-2222-2222-2222-222222222222"
    fake.add_workspace(other, "research", "Research")
    fake.other_keys.append(key_row("9" * 64, "lab", workspace_id=other, usage_monthly=450.0))
    path = config(tmp_path, fake, extra="[budget]\nmonthly_limit = 400.0\n")
    assert run_caps("--config", str(path), "--apply") == 0
    capsys.readouterr()
    assert fake.budget_puts == [(DEFAULT_WORKSPACE_ID, "monthly", {"limit_usd": 400.0})]
    (row,) = [c for c in cap_log(tmp_path) if c.hash.startswith("workspace:")]
    assert (row.hash, row.new_limit, row.new_reset) == (
        f"workspace:{DEFAULT_WORKSPACE_ID}",
        400.0,
        "monthly",
    )
    data = caps_json(path, capsys)
    spaces = {w["slug"]: w for w in data["workspaces"]}
    assert spaces["default"]["change"] == "none"
    assert spaces["default"]["spent_month"] == 60.0 + 100.0 + 30.0 + 5.0
    assert spaces["research"]["change"] == (
        "refused: $400.00 is not above this month's spend $450.00"
    )


def test_a_hand_set_lower_workspace_budget_is_kept(
    tmp_path: Path, fake: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.set_budget(DEFAULT_WORKSPACE_ID, "monthly", 300.0)
    path = config(tmp_path, fake, extra="[budget]\nmonthly_limit = 400.0\n")
    (space,) = caps_json(path, capsys, "--apply")["workspaces"]
    assert space["change"] == "refused: hand-set limit $300.00 is lower; --raise raises it"
    assert fake.budget_puts == []


def test_without_monthly_limit_budgets_are_only_reported(
    tmp_path: Path, fake: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.set_budget(DEFAULT_WORKSPACE_ID, "monthly", 300.0)
    fake.set_budget(DEFAULT_WORKSPACE_ID, "daily", 20.0)
    (space,) = caps_json(config(tmp_path, fake), capsys, "--apply")["workspaces"]
    assert space["budgets"] == {"monthly": 300.0, "daily": 20.0}
    assert (space["proposed_limit"], space["change"]) == (None, "none")
    assert fake.budget_puts == []


# -- failures -----------------------------------------------------------------------------


def test_no_management_key_is_a_clear_usage_error(
    tmp_path: Path, fake: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "watchdog.toml"
    path.write_text(f'[provider]\nbase_url = "{fake.base_url}"\napi_key = "{API_KEY}"\n')
    path.chmod(0o600)
    assert run_caps("--config", str(path)) == 2
    captured = capsys.readouterr()
    assert "needs a management key" in captured.err
    assert "Traceback" not in captured.err and captured.out == ""


def test_provider_down_is_exit_1_with_one_clear_line(
    tmp_path: Path, fake: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.fault(Fault(503, '{"error": {"code": 503, "message": "Service Unavailable"}}'))
    assert run_caps("--config", str(config(tmp_path, fake)), "--apply") == 1
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines() == [
        "error: cannot list the account's keys: GET /workspaces: HTTP 503: Service Unavailable"
    ]
    assert captured.out == "" and fake.patches == []


def test_a_key_whose_activity_fails_is_an_error_row_and_exit_1(
    tmp_path: Path, fake: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.fault(Fault(401, '{"error": {"code": 401, "message": "expired"}}', paths=("/activity",)))
    assert run_caps("--config", str(config(tmp_path, fake))) == 1
    out = capsys.readouterr().out
    assert "error: activity unavailable: GET /activity: HTTP 401: expired" in out


class UnwritableStore:
    """A state file whose units fail (a full disk): enough of Store for `apply`."""

    def unit(self) -> UnwritableStore:
        return self

    def __enter__(self) -> Any:
        raise sqlite3.OperationalError("database or disk is full")

    def __exit__(self, *exc: object) -> None:
        return None


def test_a_change_that_cannot_be_recorded_stops_the_rest(fake: FakeOpenRouter) -> None:
    provider = OpenRouterProvider(fake.base_url, None, MANAGEMENT_KEY)
    try:
        now = datetime.now(UTC)
        planned = caps.survey(provider, Policy(), [], now)
        done = caps.apply(planned, provider, UnwritableStore(), "daemon", now)  # type: ignore[arg-type]
    finally:
        provider.close()
    first, second = [k for k in done.keys if k.applies]
    assert first.applied and first.error == (
        "applied, but not recorded in the cap audit: database or disk is full"
    )
    assert not second.applied
    assert second.error == "not applied: the cap audit could not be written"
    assert len(fake.patches) == 1 and done.failed


# -- the daemon's chore -------------------------------------------------------------------


class Log:
    """A hand-written structlog stand-in: records (level, event, fields)."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def info(self, event: str, **fields: Any) -> None:
        self.lines.append(("info", event, fields))

    def warning(self, event: str, **fields: Any) -> None:
        self.lines.append(("warning", event, fields))


def chore(fake: FakeOpenRouter, tmp_path: Path, manage: bool = True) -> tuple[caps.CapsRun, Log]:
    provider = OpenRouterProvider(fake.base_url, None, MANAGEMENT_KEY, backoff=0.01)
    log = Log()
    try:
        with Store(tmp_path / "state.db") as store:
            run = caps.manage(
                Policy(caps=CapsPolicy(manage=manage)),
                provider,
                store,
                lambda: datetime.now(UTC),
                log,
            )
    finally:
        provider.close()
    return run, log


def test_the_chore_applies_as_the_daemon_without_raise(
    tmp_path: Path, fake: FakeOpenRouter
) -> None:
    run, log = chore(fake, tmp_path)
    assert sorted(run.changes) == [
        "batch: none → $3.90 daily (set)",
        "weekly: none → $52.00 daily (set)",
    ]
    assert {line.split(":")[0] for line in run.refusals} == {"quiet", "hot", "monthly"}
    assert run.errors == ()
    assert {c.actor for c in cap_log(tmp_path)} == {"daemon"}
    assert [e for _, e, _ in log.lines].count("cap_changed") == 2
    assert QUIET not in {h for h, _ in fake.patches}


def test_the_chore_returns_provider_errors_instead_of_raising(
    tmp_path: Path, fake: FakeOpenRouter
) -> None:
    fake.fault(Fault(503, '{"error": {"code": 503, "message": "Service Unavailable"}}'))
    run, log = chore(fake, tmp_path)
    assert run.errors == (
        "cannot list the account's keys: GET /workspaces: HTTP 503: Service Unavailable",
    )
    assert run.changes == () and log.lines[0][:2] == ("warning", "caps_failed")


def test_the_chore_does_nothing_when_caps_manage_is_off(
    tmp_path: Path, fake: FakeOpenRouter
) -> None:
    run, _ = chore(fake, tmp_path, manage=False)
    assert run.skipped == "caps.manage is off"
    assert fake.requests == []
