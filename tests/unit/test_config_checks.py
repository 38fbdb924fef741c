"""Cross-field checks and how problems are reported: path, source, formatted message."""

from __future__ import annotations

from pathlib import Path

import pytest

from watchdog import config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "watchdog.toml"
    path.write_text(text)
    path.chmod(0o600)
    return path


def refused(path: Path | None) -> config.ConfigError:
    with pytest.raises(config.ConfigError) as exc:
        config.load(path, require_key=False)
    return exc.value


def test_the_permit_ttl_must_cover_two_polls(tmp_path: Path) -> None:
    path = write(tmp_path, '[provider]\npoll_interval = "2m"\n[killswitch]\nttl = "3m"\n')
    (problem,) = refused(path).problems
    assert problem.path == "killswitch.ttl"
    assert problem.message.startswith("3m is less than twice provider.poll_interval (2m)")
    assert "flicker" in problem.message
    ok = write(tmp_path, '[provider]\npoll_interval = "2m"\n[killswitch]\nttl = "4m"\n')
    assert config.load(ok, require_key=False).settings.killswitch.ttl.total_seconds() == 240


def test_stale_after_must_cover_two_polls(tmp_path: Path) -> None:
    path = write(tmp_path, '[provider]\npoll_interval = "6m"\n[killswitch]\nttl = "12m"\n')
    (problem,) = refused(path).problems
    assert problem.path == "budget.stale_after"
    assert "10m is less than twice provider.poll_interval (6m)" in problem.message


def test_the_default_stale_after_fits_a_five_minute_poll(tmp_path: Path) -> None:
    path = write(tmp_path, '[provider]\npoll_interval = "5m"\n[killswitch]\nttl = "10m"\n')
    assert config.load(path, require_key=False).settings.budget.stale_after.total_seconds() == 600


def test_both_two_poll_checks_are_reported_together(tmp_path: Path) -> None:
    path = write(tmp_path, '[provider]\npoll_interval = "1h"\n')
    assert {p.path for p in refused(path).problems} == {"killswitch.ttl", "budget.stale_after"}


def test_a_cross_field_check_names_the_environment_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WATCHDOG_KILLSWITCH__TTL", "90s")
    (problem,) = refused(None).problems
    assert str(problem).startswith("At 'killswitch.ttl' (from WATCHDOG_KILLSWITCH__TTL): 90s")


def test_daily_above_monthly_shows_both_numbers(tmp_path: Path) -> None:
    path = write(tmp_path, "[budget]\ndaily_limit = 50.5\nmonthly_limit = 10\n")
    (problem,) = refused(path).problems
    assert str(problem) == "At 'budget.daily_limit': daily_limit (50.5) is above monthly_limit (10)"


def test_warning_after_critical_shows_both_numbers(tmp_path: Path) -> None:
    path = write(tmp_path, "[budget]\nbuffer_days_warning = 1.5\nbuffer_days_critical = 3\n")
    (problem,) = refused(path).problems
    assert problem.path == "budget.buffer_days_warning"
    assert problem.message.startswith("buffer_days_warning (1.5) is below buffer_days_critical (3)")


def test_both_budget_order_problems_are_reported_together(tmp_path: Path) -> None:
    path = write(
        tmp_path, "[budget]\nbuffer_days_warning = 1\ndaily_limit = 50\nmonthly_limit = 10\n"
    )
    found = {p.path for p in refused(path).problems}
    assert found == {"budget.buffer_days_warning", "budget.daily_limit"}


def test_no_message_shows_a_template_placeholder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(
        tmp_path,
        """
        [provider]
        poll_interval = "10m"
        [budget]
        daily_limit = 50
        monthly_limit = 10
        [server]
        listen = "0.0.0.0:8787"
        """,
    )
    text = refused(path).report()
    assert "{" not in text and "}" not in text
    path = write(tmp_path, '[provider]\npoll_interval = "10m"\n')
    text = refused(path).report()
    assert "{" not in text and "}" not in text


def test_a_bad_environment_value_is_reported_as_coming_from_its_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_BUDGET__DAILY_LIMIT", "abc")
    path = write(tmp_path, "[budget]\ndaily_limit = 20\nmonthly_limit = -1\n")
    found = {p.path: p for p in refused(path).problems}
    assert found["budget.daily_limit"].origin == "WATCHDOG_BUDGET__DAILY_LIMIT"
    assert str(found["budget.daily_limit"]).startswith(
        "At 'budget.daily_limit' (from WATCHDOG_BUDGET__DAILY_LIMIT): "
    )
    assert found["budget.monthly_limit"].origin is None  # from the file


def test_the_variable_is_named_as_it_was_spelled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("watchdog_budget__warn_ratio", "2")
    (problem,) = refused(None).problems
    assert problem.origin == "watchdog_budget__warn_ratio"


def test_a_bad_item_of_an_environment_list_names_the_list_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WATCHDOG_NOTIFY__TARGETS", '[{"url": "json://h/x", "severities": ["x"]}]')
    (problem,) = refused(None).problems
    assert problem.path == "notify.targets[0].severities[0]"
    assert problem.origin == "WATCHDOG_NOTIFY__TARGETS"


def test_an_unknown_environment_key_names_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_BUDGET__DAILYLIMIT", "5")
    (problem,) = refused(None).problems
    assert str(problem) == "At 'budget.dailylimit' (from WATCHDOG_BUDGET__DAILYLIMIT): unknown key"


def test_the_report_lists_every_problem_under_one_heading(tmp_path: Path) -> None:
    path = write(tmp_path, '[budget]\nbogus = 1\n[killswitch]\nlatch = "yes"\n')
    assert refused(path).report() == (
        f"Invalid configuration ({path}): 2 errors\n"
        "  At 'budget.bogus': unknown key\n"
        "  At 'killswitch.latch': must be true or false"
    )


def test_pydantic_settings_options_are_not_config_keys(tmp_path: Path) -> None:
    """The file's tables become Settings() keyword arguments; `_env_file` there would be an
    option of pydantic-settings, not a key."""
    (tmp_path / "dotenv").write_text("WATCHDOG_BUDGET__DAILY_LIMIT=1\n")
    path = write(tmp_path, f'_env_file = "{tmp_path}/dotenv"\n_secrets_dir = "/"\n')
    found = {p.path: p.message for p in refused(path).problems}
    assert found == {"_env_file": "unknown key", "_secrets_dir": "unknown key"}


def test_the_file_is_the_weaker_layer_of_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keyword arguments of Settings() are where load() puts the file: env wins over them."""
    monkeypatch.setenv("WATCHDOG_BUDGET__DAILY_LIMIT", "7")
    settings = config.Settings(budget={"daily_limit": 3, "monthly_limit": 30})
    assert (settings.budget.daily_limit, settings.budget.monthly_limit) == (7.0, 30.0)
