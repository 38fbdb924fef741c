"""Strict values: flags are booleans, amounts finite numbers, durations bounded."""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path

import pytest

from watchdog import config
from watchdog.core import words


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "watchdog.toml"
    path.write_text(text)
    path.chmod(0o600)
    return path


def problems_of(path: Path | None) -> dict[str, str]:
    with pytest.raises(config.ConfigError) as exc:
        config.load(path, require_key=False)
    return {p.path: p.message for p in exc.value.problems}


@pytest.mark.parametrize("value", ['"yes"', '"on"', "1", "0", '"1"', '""'])
def test_a_flag_in_the_file_must_be_true_or_false(tmp_path: Path, value: str) -> None:
    path = write(tmp_path, f"[killswitch]\nlatch = {value}\n")
    assert problems_of(path) == {"killswitch.latch": "must be true or false"}


@pytest.mark.parametrize(
    ("text", "expected"), [("true", True), ("false", False), ("True", True), ("FALSE", False)]
)
def test_a_flag_from_the_environment_reads_true_and_false(
    monkeypatch: pytest.MonkeyPatch, text: str, expected: bool
) -> None:
    monkeypatch.setenv("WATCHDOG_KILLSWITCH__LATCH", text)
    monkeypatch.setenv("WATCHDOG_NOTIFY__SEND_RESOLVED", text)
    settings = config.load(None, require_key=False).settings
    assert settings.killswitch.latch is expected
    assert settings.notify.send_resolved is expected


@pytest.mark.parametrize("text", ["yes", "no", "1", "0", "on"])
def test_a_flag_from_the_environment_refuses_other_words(
    monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    monkeypatch.setenv("WATCHDOG_KILLSWITCH__DISABLE_KEYS", text)
    assert problems_of(None) == {"killswitch.disable_keys": "must be true or false"}


@pytest.mark.parametrize("key", ["daily_limit", "monthly_limit", "min_balance", "warn_ratio"])
def test_an_amount_must_not_be_a_boolean(tmp_path: Path, key: str) -> None:
    found = problems_of(write(tmp_path, f"[budget]\n{key} = true\n"))
    assert found == {f"budget.{key}": "must be a number, not true or false"}


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "+inf"])
def test_an_amount_must_be_finite(tmp_path: Path, value: str) -> None:
    found = problems_of(write(tmp_path, f"[budget]\nmonthly_limit = {value}\n"))
    assert "finite" in found["budget.monthly_limit"]


def test_an_amount_from_the_environment_must_be_finite(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_BUDGET__DAILY_LIMIT", "inf")
    assert "finite" in problems_of(None)["budget.daily_limit"]


def test_an_amount_is_at_most_a_billion_usd(tmp_path: Path) -> None:
    found = problems_of(write(tmp_path, "[budget]\nmonthly_limit = 1e12\nmin_balance = 2e9\n"))
    assert set(found) == {"budget.monthly_limit", "budget.min_balance"}
    assert "1000000000" in found["budget.monthly_limit"]
    ok = write(tmp_path, "[budget]\nmonthly_limit = 1e9\n")
    assert config.load(ok, require_key=False).settings.budget.monthly_limit == 1e9


def test_whole_numbers_are_fine_for_amounts(tmp_path: Path) -> None:
    path = write(tmp_path, "[budget]\ndaily_limit = 20\nmonthly_limit = 400\n")
    budget = config.load(path, require_key=False).settings.budget
    assert (budget.daily_limit, budget.monthly_limit) == (20.0, 400.0)


@pytest.mark.parametrize(
    "value",
    ["9999999999d", "367d", "366d1s", 10**30, 1e300, math.inf, math.nan, timedelta(days=400)],
)
def test_a_duration_beyond_a_year_is_a_value_error(value: object) -> None:
    with pytest.raises(ValueError, match=r"at most 366d|expected a duration"):
        words.parse_duration(value)


def test_a_duration_of_366_days_is_the_longest() -> None:
    assert words.parse_duration("366d") == timedelta(days=366)


@pytest.mark.parametrize("value", ['"9999999999d"', "99999999999999", "inf", "nan"])
def test_an_overlong_duration_in_the_file_is_a_config_error(tmp_path: Path, value: str) -> None:
    found = problems_of(write(tmp_path, f"[budget]\nstale_after = {value}\n"))
    assert list(found) == ["budget.stale_after"]


def test_an_overlong_duration_from_the_environment_names_its_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WATCHDOG_NOTIFY__REPEAT_INTERVAL", "9999999999d")
    with pytest.raises(config.ConfigError) as exc:
        config.load(None, require_key=False)
    assert [str(p) for p in exc.value.problems] == [
        "At 'notify.repeat_interval' (from WATCHDOG_NOTIFY__REPEAT_INTERVAL): must be at most 366d"
    ]
