"""The permit: decisions, atomic files, and the stdlib-only gate that reads them."""

from __future__ import annotations

import json
import os
import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchdog import gate, permit
from watchdog.config import KillswitchConfig
from watchdog.rules import Finding

NOW = datetime(2026, 11, 27, 14, tzinfo=UTC)


def f(rule: str, severity: str = "critical", predicted: bool = False) -> Finding:
    return Finding(rule, severity, 1.0, 1.0, "m", predicted=predicted)  # type: ignore[arg-type]


# -- decide ------------------------------------------------------------------------------------


def test_nothing_wrong_is_armed() -> None:
    assert permit.decide([f("spike", "warning")], KillswitchConfig()).armed


def test_a_critical_finding_revokes_and_says_why() -> None:
    d = permit.decide([f("daily_limit", predicted=True), f("spike", "warning")], KillswitchConfig())
    assert not d.armed
    assert d.reason == "daily_limit critical (predicted)"
    assert d.causes == ("daily_limit",)


def test_revoke_on_can_include_warnings() -> None:
    ks = KillswitchConfig(revoke_on=["warning", "critical"])
    assert not permit.decide([f("spike", "warning")], ks).armed


@pytest.mark.parametrize(("on_stale", "armed"), [("revoke", False), ("keep", True)])
def test_stale_follows_on_stale_whatever_its_severity(on_stale: str, armed: bool) -> None:
    ks = KillswitchConfig(on_stale=on_stale)
    assert permit.decide([f("stale", "critical")], ks).armed is armed
    assert permit.decide([f("stale", "warning")], ks).armed is armed


def test_a_manual_trip_wins_and_names_who() -> None:
    trip = permit.Trip("runaway backfill", "alice (cli)", NOW)
    d = permit.decide([], KillswitchConfig(), trip=trip)
    assert not d.armed
    assert d.reason == "tripped by alice (cli): runaway backfill"
    assert d.actor == "alice (cli)"


def test_latch_keeps_it_revoked_after_the_cause_is_gone() -> None:
    ks = KillswitchConfig(latch=True)
    assert permit.decide([f("daily_limit")], ks).latched
    d = permit.decide([], ks, latched=True)
    assert not d.armed
    assert "budget-watchdog arm" in d.reason


# -- files -------------------------------------------------------------------------------------


def test_written_permit_is_world_readable_json_in_a_0755_dir(tmp_path: Path) -> None:
    path = tmp_path / "run" / "budget-watchdog" / "permit"
    old = os.umask(0o077)
    try:
        permit.write(path, permit.permit_body(NOW, timedelta(minutes=5), 42.5, 3.25, 10.0))
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o755
    body = json.loads(path.read_text())
    assert body == {
        "state": "armed",
        "issued_at": NOW.isoformat(),
        "expires_at": (NOW + timedelta(minutes=5)).isoformat(),
        "balance": 42.5,
        "runway_days": 3.25,
        "headroom_usd": 10.0,
    }
    assert [p.name for p in path.parent.iterdir()] == ["permit"]  # no temp file left


def test_revoke_removes_and_reports(tmp_path: Path) -> None:
    path = tmp_path / "permit"
    assert permit.revoke(path) is False
    permit.write(path, permit.permit_body(NOW, timedelta(minutes=5), None, None))
    assert permit.revoke(path) is True
    assert not path.exists()


def test_a_reader_never_sees_a_partial_permit(tmp_path: Path) -> None:
    """The writer arms, refreshes and revokes as fast as it can; a reader hammering the
    file sees either no file or a whole, valid permit."""
    path = tmp_path / "permit"
    stop = threading.Event()
    seen = {"valid": 0, "missing": 0, "bad": 0}

    def reader() -> None:
        while not stop.is_set():
            try:
                raw = path.read_bytes()
            except FileNotFoundError:
                seen["missing"] += 1
                continue
            try:
                body = gate._parse_object(raw.decode())
                assert body["state"] == "armed"
                seen["valid"] += 1
            except (ValueError, AssertionError):
                seen["bad"] += 1

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for i in range(600):
        body = permit.permit_body(
            NOW + timedelta(seconds=i), timedelta(minutes=5), 1000.0 - i, i / 7
        )
        permit.write(path, body)
        if i % 5 == 4:
            permit.revoke(path)
    stop.set()
    for t in threads:
        t.join()
    assert seen["bad"] == 0
    assert seen["valid"] > 100 and seen["missing"] > 0


# -- gate --------------------------------------------------------------------------------------


def write_permit(tmp_path: Path, **overrides: object) -> str:
    body = permit.permit_body(NOW, timedelta(minutes=5), 80.0, 6.0, 12.0)
    body.update(overrides)
    path = tmp_path / "permit"
    path.write_text(json.dumps(body))
    return str(path)


def test_a_fresh_permit_is_go(tmp_path: Path) -> None:
    verdict = gate.check(cost=3.0, permit=write_permit(tmp_path), now=NOW.timestamp())
    assert verdict.go and verdict.reasons == []


def test_an_expired_permit_is_no_go(tmp_path: Path) -> None:
    later = (NOW + timedelta(minutes=7)).timestamp()
    verdict = gate.check(permit=write_permit(tmp_path), now=later)
    assert not verdict.go
    assert verdict.reasons == [
        "the permit expired 2 min ago: the watchdog is not refreshing it (stopped or stuck)"
    ]


def test_a_missing_permit_is_no_go(tmp_path: Path) -> None:
    verdict = gate.check(permit=str(tmp_path / "none"))
    assert not verdict.go and "no permit at" in verdict.reasons[0]


@pytest.mark.parametrize(
    "text",
    [
        '{"state": "armed", "expires_at": "2026-11-27T14:05:00+00:00"',
        "",
        "null",
        '{"state": "armed",}',
        "[1]",
    ],
)
def test_bad_json_is_no_go(tmp_path: Path, text: str) -> None:
    path = tmp_path / "permit"
    path.write_text(text)
    verdict = gate.check(permit=str(path), now=NOW.timestamp())
    assert not verdict.go and "not valid JSON" in verdict.reasons[0]


def test_cost_beyond_headroom_and_runway_floor_are_no_go(tmp_path: Path) -> None:
    path = write_permit(tmp_path)
    verdict = gate.check(cost=12.5, permit=path, min_runway_days=7, now=NOW.timestamp())
    assert not verdict.go
    assert verdict.reasons == [
        "a $12.50 job exceeds the $12.00 of headroom left",
        "credit lasts 6.0 days, under the 7 asked for",
    ]


def test_a_state_other_than_armed_is_no_go(tmp_path: Path) -> None:
    verdict = gate.check(permit=write_permit(tmp_path, state="revoked"), now=NOW.timestamp())
    assert not verdict.go


def test_gate_command_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_permit(tmp_path, expires_at="2999-01-01T00:00:00Z")
    assert gate.main(["--permit", path, "--cost", "2"]) == 0
    assert gate.main(["--permit", str(tmp_path / "none")]) == 1
    assert "no-go: no permit at" in capsys.readouterr().err
    assert gate.main(["--cost", "lots"]) == 2
    assert gate.main(["--bogus"]) == 2
    assert gate.main(["--permit", path, "--url", "http://127.0.0.1:1"]) == 2
    assert gate.main(["--help"]) == 0
    assert "usage: budget-watchdog gate" in capsys.readouterr().out


def test_gate_finds_the_permit_through_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "watchdog.toml"
    config.write_text(f'[killswitch]\npath = "{tmp_path}/elsewhere"\n')
    assert gate.permit_path(str(config)) == f"{tmp_path}/elsewhere"
    monkeypatch.setenv("WATCHDOG_CONFIG", str(config))
    assert gate.permit_path(None) == f"{tmp_path}/elsewhere"
    monkeypatch.setenv("WATCHDOG_KILLSWITCH__PATH", "/x/permit")
    assert gate.permit_path(None) == "/x/permit"


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=12), scalars, max_size=8), st.booleans())
def test_the_small_reader_agrees_with_json(data: dict[str, object], pretty: bool) -> None:
    text = json.dumps(data, indent=2 if pretty else None, ensure_ascii=not pretty)
    assert gate._parse_object(text) == json.loads(text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_the_small_reader_never_accepts_what_json_rejects(text: str) -> None:
    try:
        ours = gate._parse_object(text)
    except ValueError:
        return
    assert ours == json.loads(text)


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(
        min_value=datetime(1971, 1, 1),
        max_value=datetime(2999, 1, 1),
        timezones=st.sampled_from([UTC, None]),
    )
)
def test_timestamps_agree_with_datetime(when: datetime) -> None:
    stamp = when.isoformat()
    expected = (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
    assert gate._epoch(stamp) == pytest.approx(expected, abs=1e-6)
    assert gate._epoch(stamp.replace("+00:00", "Z")) == pytest.approx(expected, abs=1e-6)
