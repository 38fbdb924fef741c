"""The stdlib-only gate: the permit reader and the command jobs run before they launch.

Permits are built here as the daemon writes them (json.dumps of a flat object), so these
tests do not depend on how the daemon's permit module is organised.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchdog import gate, permit_json

T = TypeVar("T")
NOW = datetime(2026, 11, 27, 14, tzinfo=UTC)
TTL = timedelta(minutes=5)


def body(issued: datetime = NOW, lease: timedelta = TTL, **overrides: object) -> dict[str, object]:
    """A permit as the daemon writes it: issued at `issued`, expiring `lease` later."""
    data: dict[str, object] = {
        "state": "armed",
        "issued_at": issued.isoformat(),
        "expires_at": (issued + lease).isoformat(),
        "balance": 80.0,
        "runway_days": 6.0,
        "headroom_usd": 12.0,
    }
    data.update(overrides)
    return data


def write_permit(
    tmp_path: Path, data: dict[str, object] | None = None, name: str = "permit"
) -> str:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(body() if data is None else data))
    return str(path)


def write_text(tmp_path: Path, text: str) -> str:
    path = tmp_path / "permit"
    path.write_text(text)
    return str(path)


def at(when: datetime = NOW) -> float:
    return when.timestamp()


def within(seconds: float, call: Callable[[], T]) -> T:
    """call(), failing the test (instead of hanging it) when it takes longer than `seconds`."""
    out: list[T] = []
    worker = threading.Thread(target=lambda: out.append(call()), daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"still running after {seconds} s: it hangs"
    return out[0]


# -- the verdict on a well-formed permit --------------------------------------------------------


def test_a_fresh_permit_is_go(tmp_path: Path) -> None:
    verdict = gate.check(cost=3.0, permit=write_permit(tmp_path), now=at())
    assert verdict.go and verdict.reasons == []
    assert verdict.permit is not None and verdict.permit["headroom_usd"] == 12.0


def test_check_keeps_its_positional_and_keyword_forms(tmp_path: Path) -> None:
    path = write_permit(tmp_path)
    assert gate.check(3.0, path, 1.0, at()).go
    assert gate.check(permit=path, now=at()).go


def test_an_expired_permit_is_no_go(tmp_path: Path) -> None:
    verdict = gate.check(permit=write_permit(tmp_path), now=at(NOW + timedelta(minutes=7)))
    assert not verdict.go
    assert verdict.reasons == [
        "the permit expired 2 min ago: the watchdog is not refreshing it (stopped or stuck)"
    ]


def test_a_missing_permit_is_no_go(tmp_path: Path) -> None:
    verdict = gate.check(permit=str(tmp_path / "none"))
    assert not verdict.go and "no permit at" in verdict.reasons[0]


def test_cost_beyond_headroom_and_runway_floor_are_no_go(tmp_path: Path) -> None:
    path = write_permit(tmp_path)
    verdict = gate.check(cost=12.5, permit=path, min_runway_days=7, now=at())
    assert not verdict.go
    assert verdict.reasons == [
        "a $12.50 job exceeds the $12.00 of headroom left",
        "credit lasts 6.0 days, under the 7 asked for",
    ]


def test_null_numbers_are_unknown_not_limits(tmp_path: Path) -> None:
    data = body(balance=None, runway_days=None, headroom_usd=None)
    assert gate.check(cost=1e6, permit=write_permit(tmp_path, data), now=at()).go


def test_an_unknown_runway_is_no_go_under_a_runway_floor(tmp_path: Path) -> None:
    path = write_permit(tmp_path, body(balance=None, runway_days=None, headroom_usd=None))
    verdict = gate.check(permit=path, min_runway_days=9, now=at())
    assert not verdict.go
    assert verdict.reasons == [
        "runway unknown (no balance known: a management key or a key limit that never "
        "resets gives one), so at least 9 days cannot be promised"
    ]
    assert not gate.check(permit=path, min_runway_days=0, now=at()).go


def test_an_unknown_runway_is_no_go_on_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = fresh_permit(tmp_path, runway_days=None)
    assert gate.main(["--permit", path]) == 0
    assert gate.main(["--permit", path, "--min-runway-days", "1"]) == 1
    assert "no-go: runway unknown (no balance known" in capsys.readouterr().err


@pytest.mark.parametrize("headroom", [-100.0, -0.01, -(10**20)])
def test_a_negative_headroom_is_no_go_even_without_a_cost(tmp_path: Path, headroom: float) -> None:
    verdict = gate.check(permit=write_permit(tmp_path, body(headroom_usd=headroom)), now=at())
    assert not verdict.go
    assert len(verdict.reasons) == 1
    assert verdict.reasons[0].startswith("the permit's headroom_usd is negative (-$")
    assert len(verdict.reasons[0]) < 150


def test_a_negative_balance_and_a_zero_headroom_are_not_tampering(tmp_path: Path) -> None:
    path = write_permit(tmp_path, body(balance=-3.0, headroom_usd=-0.0))
    assert gate.check(cost=0, permit=path, now=at()).go


def test_integer_numbers_are_numbers(tmp_path: Path) -> None:
    path = write_permit(tmp_path, body(balance=80, runway_days=6, headroom_usd=12))
    assert gate.check(cost=12, permit=path, now=at()).go
    assert not gate.check(cost=13, permit=path, now=at()).go


@pytest.mark.parametrize("state", ["revoked", "ARMED", True, None, 1])
def test_a_state_other_than_armed_is_no_go(tmp_path: Path, state: object) -> None:
    verdict = gate.check(permit=write_permit(tmp_path, body(state=state)), now=at())
    assert not verdict.go and "state" in verdict.reasons[0]


# -- anything odd is no-go, never a hang --------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '{"state": "armed", "expires_at": "2026-11-27T14:05:00+00:00"',
        "",
        "null",
        '{"state": "armed",}',
        "[1]",
        '{"state": "armed", "nested": {"a": 1}}',
        '{"state": "revoked", "state": "armed"}',
        '{"headroom_usd": .5}',
        '{"headroom_usd": NaN}',
    ],
)
def test_bad_json_is_no_go(tmp_path: Path, text: str) -> None:
    verdict = gate.check(permit=write_text(tmp_path, text), now=at())
    assert not verdict.go and "not valid JSON" in verdict.reasons[0]


def test_a_fifo_at_the_permit_path_is_no_go_without_hanging(tmp_path: Path) -> None:
    fifo = tmp_path / "permit"
    os.mkfifo(fifo)
    verdict = within(5, lambda: gate.check(permit=str(fifo), now=at()))
    assert not verdict.go
    assert verdict.reasons == [f"the permit {fifo} is a FIFO, not a regular file"]


def test_a_directory_at_the_permit_path_is_no_go(tmp_path: Path) -> None:
    verdict = gate.check(permit=str(tmp_path), now=at())
    assert verdict.reasons == [f"the permit {tmp_path} is a directory, not a regular file"]


def test_a_device_at_the_permit_path_is_no_go_without_reading_forever() -> None:
    for device in ("/dev/zero", "/dev/null"):
        verdict = within(5, lambda d=device: gate.check(permit=d, now=at()))  # type: ignore[misc]
        assert verdict.reasons == [f"the permit {device} is a character device, not a regular file"]


def test_a_permit_larger_than_64_kib_is_no_go(tmp_path: Path) -> None:
    data = body(padding="x" * 65536)
    verdict = gate.check(permit=write_permit(tmp_path, data), now=at())
    assert not verdict.go and "larger than 64 KiB" in verdict.reasons[0]


def test_a_permit_that_is_not_utf8_is_no_go(tmp_path: Path) -> None:
    path = tmp_path / "permit"
    path.write_bytes(b'{"state": "\xff"}')
    verdict = gate.check(permit=str(path), now=at())
    assert not verdict.go and "not UTF-8" in verdict.reasons[0]


def test_an_unreadable_permit_is_no_go(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads every file")
    path = write_permit(tmp_path)
    os.chmod(path, 0)
    verdict = gate.check(permit=path, now=at())
    assert not verdict.go and "cannot be opened: Permission denied" in verdict.reasons[0]


def test_a_permit_path_through_a_file_is_no_go(tmp_path: Path) -> None:
    path = write_permit(tmp_path)
    verdict = gate.check(permit=f"{path}/permit", now=at())
    assert verdict.reasons == [f"the permit {path}/permit cannot be opened: Not a directory"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("headroom_usd", "0"),
        ("headroom_usd", True),
        ("headroom_usd", False),
        ("balance", "80"),
        ("runway_days", True),
        ("runway_days", "6"),
    ],
)
def test_numeric_fields_must_be_numbers(tmp_path: Path, field: str, value: object) -> None:
    verdict = gate.check(cost=100, permit=write_permit(tmp_path, body() | {field: value}), now=at())
    assert not verdict.go
    assert verdict.reasons == [f"the permit's {field} is {value!r}, not a number"]


@pytest.mark.parametrize("field", ["headroom_usd", "balance", "runway_days"])
@pytest.mark.parametrize("number", ["1e999", "-1e999", "1" * 400])
def test_numbers_must_be_finite(tmp_path: Path, field: str, number: str) -> None:
    text = json.dumps(body() | {field: "N"}).replace('"N"', number)
    verdict = gate.check(cost=1, permit=write_text(tmp_path, text), now=at())
    assert not verdict.go and f"the permit's {field} is" in verdict.reasons[0]


@pytest.mark.parametrize("field", ["headroom_usd", "balance", "runway_days"])
def test_a_missing_number_field_is_no_go(tmp_path: Path, field: str) -> None:
    data = body()
    del data[field]
    verdict = gate.check(permit=write_permit(tmp_path, data), now=at())
    assert verdict.reasons == [f"the permit has no {field} (a number or null)"]


@pytest.mark.parametrize("field", ["issued_at", "expires_at"])
@pytest.mark.parametrize(
    "value", [None, 1796392800, "tomorrow", "2026-02-30T14:00:00+00:00", "2026-11-27"]
)
def test_times_must_be_iso_8601(tmp_path: Path, field: str, value: object) -> None:
    data = body() | {field: value}
    if value is None:
        del data[field]
    verdict = gate.check(permit=write_permit(tmp_path, data), now=at())
    assert not verdict.go
    assert verdict.reasons[0].startswith(f"the permit has no {field}") or verdict.reasons[
        0
    ].startswith(f"the permit's {field} is {value!r}, not an ISO-8601 time")


# -- time: the lease, and clocks that disagree --------------------------------------------------


def test_a_permit_issued_in_the_future_is_no_go(tmp_path: Path) -> None:
    path = write_permit(tmp_path, body(issued=NOW + timedelta(minutes=2)))
    verdict = gate.check(permit=path, now=at(), ttl_s=300)
    assert verdict.reasons == [
        "the permit was issued 2 min in the future: the writer's clock runs ahead of this one"
    ]


def test_a_permit_issued_within_the_clock_slack_is_go(tmp_path: Path) -> None:
    path = write_permit(tmp_path, body(issued=NOW + timedelta(seconds=4)))
    assert gate.check(permit=path, now=at(), ttl_s=300).go


def test_a_lease_longer_than_the_ttl_is_no_go(tmp_path: Path) -> None:
    path = write_permit(tmp_path, body(lease=timedelta(minutes=10)))
    verdict = gate.check(permit=path, now=at(), ttl_s=300)
    assert verdict.reasons == ["the permit's lease of 10 min is longer than the ttl (5 min)"]
    assert gate.check(permit=path, now=at(), ttl_s=600).go


def test_an_expiry_further_out_than_the_ttl_is_no_go(tmp_path: Path) -> None:
    # Issued 4 s ahead (within the slack) with a lease 4 s over (within the slack): together
    # the permit still runs 8 s past what the daemon could have written now.
    issued = NOW + timedelta(seconds=4)
    path = write_permit(tmp_path, body(issued=issued, lease=TTL + timedelta(seconds=4)))
    verdict = gate.check(permit=path, now=at(), ttl_s=300)
    assert verdict.reasons == [
        "the permit expires in 5 min, beyond the ttl (5 min): a clock is wrong"
    ]


def test_without_a_ttl_the_lease_is_bounded_by_a_day(tmp_path: Path) -> None:
    assert gate.check(permit=write_permit(tmp_path, body(lease=timedelta(hours=23))), now=at()).go
    far = gate.check(permit=write_permit(tmp_path, body(lease=timedelta(days=400))), now=at())
    assert not far.go and "longer than the ttl (24 h)" in far.reasons[0]


def test_the_ttl_comes_from_the_config_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "watchdog.toml"
    config.write_text('[killswitch]\nttl = "90s"\n')
    assert gate.killswitch_settings(str(config)) == (gate.DEFAULT_PERMIT, 90.0)
    config.write_text("[killswitch]\nttl = 3600\n")
    assert gate.killswitch_settings(str(config))[1] == 3600.0
    config.write_text("[budget]\ndaily_limit = 5.0\n")  # the daemon's default ttl: 5 min
    assert gate.killswitch_settings(str(config))[1] == 300.0
    assert gate.killswitch_settings(None) == (gate.DEFAULT_PERMIT, None)
    monkeypatch.setenv("WATCHDOG_KILLSWITCH__TTL", "4h")
    assert gate.killswitch_settings(str(config))[1] == 4 * 3600.0


def test_check_without_a_path_takes_path_and_ttl_from_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_permit(tmp_path, body(lease=timedelta(minutes=10)))
    config = tmp_path / "watchdog.toml"
    config.write_text(f'[killswitch]\npath = "{path}"\nttl = "10m"\n')
    monkeypatch.setenv("WATCHDOG_CONFIG", str(config))
    assert gate.check(now=at()).go
    config.write_text(f'[killswitch]\npath = "{path}"\nttl = "5m"\n')
    assert not gate.check(now=at()).go


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("5m", 300),
        ("4h", 14400),
        ("7d", 604800),
        ("1h30m", 5400),
        ("1h 30m", 5400),
        (" 2M ", 120),
        ("120", 120),
        ("1.5m", 90),
        (120, 120),
        (2.5, 2.5),
    ],
)
def test_durations_read_as_the_daemon_reads_them(text: object, seconds: float) -> None:
    assert gate._duration(text) == seconds


@pytest.mark.parametrize(
    "text", ["", "5x", "m", "-5s", "1.s", ".5m", "5m3", True, 0, 0.5, "0.5s", [1], "nan", 1e999]
)
def test_bad_durations_are_rejected(text: object) -> None:
    with pytest.raises(ValueError):
        gate._duration(text)


# -- the command --------------------------------------------------------------------------------


def fresh_permit(tmp_path: Path, lease: timedelta = TTL, **overrides: object) -> str:
    """A permit issued now, for the command (which reads the real clock)."""
    return write_permit(tmp_path, body(issued=datetime.now(UTC), lease=lease, **overrides))


def test_gate_command_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = fresh_permit(tmp_path)
    assert gate.main(["--permit", path, "--cost", "2"]) == 0
    assert capsys.readouterr().err == "go\n"
    assert gate.main(["--permit", path, "--cost", "2", "--quiet"]) == 0
    assert capsys.readouterr().err == ""
    assert gate.main(["--permit", str(tmp_path / "none")]) == 1
    assert "no-go: no permit at" in capsys.readouterr().err
    assert gate.main(["--permit", path, "--min-runway-days", "7"]) == 1
    assert "credit lasts 6.0 days" in capsys.readouterr().err
    assert gate.main(["--cost", "lots"]) == 2
    assert gate.main(["--bogus"]) == 2
    assert gate.main(["--quiet=yes"]) == 2
    assert gate.main(["--permit", path, "--url", "http://127.0.0.1:1"]) == 2
    assert gate.main(["--permit", path, "--permit", path]) == 2
    assert gate.main(["--permit"]) == 2
    assert gate.main(["--permit="]) == 2
    assert gate.main(["positional"]) == 2
    capsys.readouterr()
    assert gate.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "usage: budget-watchdog gate" in out and "--key NAME" in out


@pytest.mark.parametrize("cost", ["nan", "inf", "-inf", "1e999", "-1", "1000000001", "0x10"])
def test_cost_must_be_a_finite_number_from_0_to_1e9(
    tmp_path: Path, cost: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert gate.main(["--permit", fresh_permit(tmp_path), "--cost", cost]) == 2
    assert "--cost must be" in capsys.readouterr().err


def test_cost_of_0_and_1e9_are_accepted(tmp_path: Path) -> None:
    path = fresh_permit(tmp_path, headroom_usd=2e9)
    assert gate.main(["--permit", path, "--cost", "0"]) == 0
    assert gate.main(["--permit", path, "--cost=1000000000"]) == 0
    assert gate.main(["--permit", path, "--cost", "1000000000.00"]) == 0


@pytest.mark.parametrize("cost", ["3", "2.50", ".5", "0.0", "007"])
def test_cost_in_plain_decimal_digits_is_accepted(tmp_path: Path, cost: str) -> None:
    assert gate.main(["--permit", fresh_permit(tmp_path), "--cost", cost]) == 0


@pytest.mark.parametrize(
    "cost",
    ["1_0", "\u0663", "\uff11", "+1", " 1 ", "1 ", "1e3", "1E3", "1.", ".", "", "1.2.3", "1,5"],
)
def test_cost_must_be_plain_ascii_decimal_digits(
    tmp_path: Path, cost: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert gate.main(["--permit", fresh_permit(tmp_path), "--cost", cost]) == 2
    err = capsys.readouterr().err
    assert f"--cost must be a plain decimal number like 3, 2.50 or .5, not {cost!r}" in err


def test_a_bad_cost_is_named_but_cut_short(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert gate.main(["--permit", fresh_permit(tmp_path), "--cost", "9" * 500 + "x"]) == 2
    first = capsys.readouterr().err.splitlines()[0]
    assert "'99999" in first and "…" in first and len(first) < 160


@pytest.mark.parametrize("runway", ["1_0", "\u0663", " 1", "+1"])
def test_min_runway_days_must_be_ascii_digits_too(tmp_path: Path, runway: str) -> None:
    assert gate.main(["--permit", fresh_permit(tmp_path), "--min-runway-days", runway]) == 2


@pytest.mark.parametrize(
    ("field", "text"),
    [
        ("headroom_usd", "1" * 400),
        ("headroom_usd", "-" + "1" * 400),
        ("balance", '"' + "x" * 5000 + '"'),
        ("state", '"' + "y" * 5000 + '"'),
        ("issued_at", '"' + "z" * 5000 + '"'),
        ("headroom_usd", "-1e300"),
    ],
)
def test_no_value_of_the_permit_is_echoed_beyond_60_characters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], field: str, text: str
) -> None:
    data = json.dumps(body(issued=datetime.now(UTC)) | {field: "N"}).replace('"N"', text)
    path = write_text(tmp_path, data)
    assert gate.main(["--permit", path, "--cost", "1"]) == 1
    err = capsys.readouterr().err
    runs = re.findall(r"[0-9xyz]{61,}", err)
    assert runs == [], err[:300]
    assert len(err) < 600


def test_a_duplicate_key_of_any_length_is_named_briefly(tmp_path: Path) -> None:
    key = "k" * 5000
    path = write_text(tmp_path, f'{{"{key}": 1, "{key}": 2}}')
    [reason] = gate.check(permit=path, now=at()).reasons
    assert "duplicate key" in reason and len(reason) < 200 + len(path)


@pytest.mark.parametrize("runway", ["nan", "inf", "-1", "soon"])
def test_min_runway_days_must_be_a_finite_number(tmp_path: Path, runway: str) -> None:
    assert gate.main(["--permit", fresh_permit(tmp_path), "--min-runway-days", runway]) == 2


def test_check_refuses_a_nan_cost_rather_than_passing_it(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="finite"):
        gate.check(cost=float("nan"), permit=write_permit(tmp_path), now=at())


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


def test_gate_honours_the_configured_ttl(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = fresh_permit(tmp_path, lease=timedelta(minutes=10))
    config = tmp_path / "watchdog.toml"
    config.write_text('[killswitch]\nttl = "10m"\n')
    assert gate.main(["--permit", path, "--config", str(config)]) == 0
    config.write_text('[killswitch]\nttl = "5m"\n')
    assert gate.main(["--permit", path, "--config", str(config)]) == 1
    assert "longer than the ttl (5 min)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("config_text", "message"),
    [
        (None, "cannot read the config"),
        ("[killswitch\n", "is not valid TOML"),
        ("killswitch = 5\n", "[killswitch] must be a table"),
        ("[killswitch]\npath = 5\n", "[killswitch] path must be a non-empty string"),
        ('[killswitch]\nttl = "soon"\n', "[killswitch] ttl:"),
        ("[killswitch]\nttl = 0\n", "[killswitch] ttl:"),
        (b"\xff\xfe", "is not valid TOML"),
    ],
)
def test_a_config_that_cannot_be_used_is_exit_2_in_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    config_text: str | bytes | None,
    message: str,
) -> None:
    config = tmp_path / "watchdog.toml"
    if isinstance(config_text, bytes):
        config.write_bytes(config_text)
    elif config_text is not None:
        config.write_text(config_text)
    assert gate.main(["--permit", fresh_permit(tmp_path), "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("budget-watchdog gate: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_a_bad_ttl_in_the_environment_is_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WATCHDOG_KILLSWITCH__TTL", "forever")
    assert gate.main(["--permit", fresh_permit(tmp_path)]) == 2
    assert "WATCHDOG_KILLSWITCH__TTL='forever'" in capsys.readouterr().err


# -- --key with a permit file (the rest is in test_key_permits.py) -------------------------------


def test_an_empty_key_name_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert gate.main(["--permit", fresh_permit(tmp_path), "--key", ""]) == 2
    assert "--key must be a key's name, not ''" in capsys.readouterr().err


@pytest.mark.parametrize("key", ["", "a\0b"])
def test_check_refuses_a_name_no_key_has(tmp_path: Path, key: str) -> None:
    with pytest.raises(ValueError, match="key must be a key's name"):
        gate.check(permit=write_permit(tmp_path), now=at(), key=key)


# -- the gate path loads nothing it does not need -----------------------------------------------


def test_the_gate_path_imports_only_its_own_modules(tmp_path: Path) -> None:
    path = fresh_permit(tmp_path)
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "from watchdog.entry import main\n"
        f"assert main(['gate', '--permit', {path!r}, '--quiet']) == 0\n"
        "print(' '.join(sorted(set(sys.modules) - before)))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHDOG_")}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout.split()
    assert sorted(out) == ["watchdog", "watchdog.entry", "watchdog.gate", "watchdog.permit_json"]


# -- the strict reader ---------------------------------------------------------------------------

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
    assert permit_json.parse_object(text) == json.loads(text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_the_small_reader_never_accepts_what_json_rejects(text: str) -> None:
    try:
        ours = permit_json.parse_object(text)
    except ValueError:
        return
    assert ours == json.loads(text)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="0123456789.-+eE", min_size=1, max_size=12))
def test_numbers_follow_json_grammar_exactly(token: str) -> None:
    text = '{"n": ' + token + "}"
    try:
        theirs = json.loads(text)
    except ValueError:
        with pytest.raises(ValueError):
            permit_json.parse_object(text)
        return
    assert permit_json.parse_object(text) == theirs


def test_duplicate_keys_are_rejected() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        permit_json.parse_object('{"state": "revoked", "state": "armed"}')


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
    assert permit_json.epoch(stamp) == pytest.approx(expected, abs=1e-6)
    assert permit_json.epoch(stamp.replace("+00:00", "Z")) == pytest.approx(expected, abs=1e-6)


@settings(max_examples=500, deadline=None)
@given(
    st.from_regex(
        r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?"
        r"(Z|[+-][0-9]{2}:[0-9]{2})?\Z"
    )
)
def test_timestamps_are_dates_exactly_when_datetime_says_so(stamp: str) -> None:
    if stamp[-6:-5] in ("+", "-") and int(stamp[-2:]) >= 60:
        # datetime (3.11) reads "-00:60" as an offset of an hour; the reader refuses it.
        with pytest.raises(ValueError):
            permit_json.epoch(stamp)
        return
    try:
        when = datetime.fromisoformat(stamp)
    except ValueError:
        with pytest.raises(ValueError):
            permit_json.epoch(stamp)
        return
    expected = (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
    assert permit_json.epoch(stamp) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    "stamp",
    [
        "2026-02-29T00:00:00Z",
        "2026-04-31T00:00:00Z",
        "2026-13-01T00:00:00",
        "2026-01-01T24:00:00",
        "2026-01-01T00:00:60",
        "2026-01- 1T00:00:00",
        "+026-01-01T00:00:00",
        "2026-01-01T00:00:00+24:00",
        "2026-01-01T00:00:00-00:60",
        "2026-01-01T00:00:00.Z",
        "2026-01-01T00:00:00+0100",
        "2026-01-01t00:00:00",
        "2026-01-01",
    ],
)
def test_timestamps_that_are_not_dates_are_rejected(stamp: str) -> None:
    with pytest.raises(ValueError):
        permit_json.epoch(stamp)


def test_the_gates_default_ttl_is_the_daemons() -> None:
    """gate cannot import the config (pydantic is too slow to load), so it keeps a copy of
    the default ttl; this keeps the two equal."""
    from watchdog.config import KillswitchConfig

    assert KillswitchConfig().ttl.total_seconds() == gate.DAEMON_DEFAULT_TTL_S


def test_the_readmes_stdlib_lines_agree_with_gate(tmp_path: Path) -> None:
    """Jobs without our package copy the README's few lines: they must refuse what gate
    refuses (numbers as strings, a permit from the future) and accept what it accepts."""
    import datetime as dt

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    start = readme.index("import datetime, json, math")
    code = readme[start : readme.index("```", start)]
    namespace: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    may_launch = namespace["may_launch"]
    assert callable(may_launch)
    now = dt.datetime.now(dt.UTC)
    good = {
        "state": "armed",
        "issued_at": now.isoformat(),
        "expires_at": (now + dt.timedelta(minutes=5)).isoformat(),
        "balance": 10.0,
        "runway_days": None,
        "headroom_usd": 3.0,
    }
    cases = [
        ({}, 1.0),
        ({}, 5.0),
        ({"headroom_usd": "9"}, 1.0),
        ({"issued_at": (now + dt.timedelta(hours=1)).isoformat()}, 1.0),
        ({"expires_at": (now + dt.timedelta(days=9)).isoformat()}, 1.0),
        ({"state": "revoked"}, 1.0),
    ]
    path = tmp_path / "permit"
    for change, cost in cases:
        path.write_text(json.dumps({**good, **change}))
        ours = gate.check(cost=cost, permit=str(path), ttl_s=300).go
        assert may_launch(cost, str(path)) is ours, (change, cost)
