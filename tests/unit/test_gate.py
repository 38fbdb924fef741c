"""The stdlib-only gate: the permit reader and the command jobs run before they launch."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchdog import gate, permit

NOW = datetime(2026, 11, 27, 14, tzinfo=UTC)
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
