"""The config contract: sources, precedence, validation messages, masking, the sample."""

from __future__ import annotations

import os
import re
import tomllib
from datetime import timedelta
from pathlib import Path

import pytest

from watchdog import config
from watchdog.cli import main
from watchdog.core import words

ROOT = Path(__file__).resolve().parents[2]
SECRET = "sk-or-v1-0123456789abcdef-do-not-print"


def write(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "watchdog.toml"
    path.write_text(text)
    path.chmod(mode)
    return path


def problems(exc: pytest.ExceptionInfo[config.ConfigError]) -> dict[str, str]:
    return {p.path: p.message for p in exc.value.problems}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("5m", 300),
        ("4h", 14400),
        ("7d", 604800),
        ("1h30m", 5400),
        ("60", 60),
        (45, 45),
        (1.5, 1.5),
        ("0.5s", 0.5),
    ],
)
def test_durations_accept_units_and_seconds(text: object, seconds: float) -> None:
    assert words.parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "5 minutes", "m5", "-5s", "5w", True, None])
def test_durations_reject_other_forms(text: object) -> None:
    with pytest.raises(ValueError):
        words.parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "shown"), [(60, "1m"), (90, "90s"), (86400, "1d"), (0.5, "0.5s")]
)
def test_durations_print_in_their_shortest_exact_form(seconds: float, shown: str) -> None:
    assert words.format_duration(timedelta(seconds=seconds)) == shown


def test_file_values_are_loaded(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""
        [provider]
        api_key = "{SECRET}"
        poll_interval = "90s"
        [budget]
        daily_limit = 20
        timezone = "Europe/Berlin"
        """,
    )
    settings = config.load(path).settings
    assert settings.provider.poll_interval == timedelta(seconds=90)
    assert settings.budget.daily_limit == 20.0
    assert settings.budget.tz.key == "Europe/Berlin"
    assert settings.provider.api_key is not None
    assert settings.provider.api_key.get_secret_value() == SECRET


def test_environment_beats_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, '[budget]\ndaily_limit = 20\n[provider]\napi_key = "a-file-key"\n')
    monkeypatch.setenv("WATCHDOG_BUDGET__DAILY_LIMIT", "35.5")
    monkeypatch.setenv("OPENROUTER_API_KEY", "an-env-key")
    settings = config.load(path).settings
    assert settings.budget.daily_limit == 35.5
    assert settings.provider.api_key is not None
    assert settings.provider.api_key.get_secret_value() == "an-env-key"


def test_watchdog_config_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "[budget]\nmonthly_limit = 99\n")
    monkeypatch.setenv("WATCHDOG_CONFIG", str(path))
    assert config.config_path(None) == path
    assert config.config_path("other.toml") == Path("other.toml")


def test_key_file_is_read_and_stripped(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(SECRET + "\n")
    path = write(tmp_path, f'[provider]\napi_key_file = "{key_file}"\n')
    key = config.load(path).settings.provider.api_key
    assert key is not None
    assert key.get_secret_value() == SECRET


def test_relative_key_file_resolves_in_the_credentials_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "mgmt").write_text("management-secret")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    path = write(tmp_path, '[provider]\nmanagement_key_file = "mgmt"\n')
    key = config.load(path).settings.provider.management_key
    assert key is not None
    assert key.get_secret_value() == "management-secret"


def test_systemd_credentials_are_found_by_their_conventional_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "openrouter_api_key").write_text(SECRET)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    key = config.load(None).settings.provider.api_key
    assert key is not None
    assert key.get_secret_value() == SECRET


def test_every_error_is_listed_with_its_path(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [provider]
        poll_intervall = "60s"
        timeout = "soon"
        [budget]
        daily_limit = -5
        warn_ratio = "high"
        [killswitch]
        on_stale = "panic"
        """,
    )
    with pytest.raises(config.ConfigError) as exc:
        config.load(path)
    found = problems(exc)
    assert found["provider.poll_intervall"] == "unknown key"
    assert "duration" in found["provider.timeout"]
    assert "greater than 0" in found["budget.daily_limit"]
    assert "budget.warn_ratio" in found
    assert "killswitch.on_stale" in found
    assert len(found) == 5


def test_warning_threshold_beyond_critical_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "[budget]\nbuffer_days_warning = 2\nbuffer_days_critical = 3\n")
    with pytest.raises(config.ConfigError) as exc:
        config.load(path, require_key=False)
    assert "after the critical" in problems(exc)["budget.buffer_days_warning"]


def test_a_missing_key_is_an_error_that_says_how_to_give_one(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError) as exc:
        config.load(write(tmp_path, "[budget]\ndaily_limit = 5\n"))
    assert "OPENROUTER_API_KEY" in problems(exc)["provider.api_key"]


def test_an_unreadable_key_file_names_its_path(tmp_path: Path) -> None:
    path = write(tmp_path, f'[provider]\napi_key_file = "{tmp_path}/missing"\n')
    with pytest.raises(config.ConfigError) as exc:
        config.load(path)
    (problem,) = exc.value.problems
    assert problem.path == "provider.api_key_file"
    assert f"{tmp_path}/missing" in str(problem)
    assert "No such file" in str(problem)


def test_an_unknown_environment_key_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_BUDGET__DAILYLIMIT", "5")
    with pytest.raises(config.ConfigError) as exc:
        config.load(None, require_key=False)
    assert problems(exc) == {"budget.dailylimit": "unknown key"}


def test_invalid_toml_is_reported_with_its_position(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError) as exc:
        config.load(write(tmp_path, "[budget\ndaily_limit = 5\n"))
    assert "not valid TOML" in str(exc.value)
    assert "line 1" in str(exc.value)


def test_off_loopback_listen_needs_a_token(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError) as exc:
        config.load(write(tmp_path, '[server]\nlisten = "0.0.0.0:8787"\n'), require_key=False)
    assert "loopback" in problems(exc)["server.token"]
    ok = write(tmp_path, '[server]\nlisten = "0.0.0.0:8787"\ntoken = "t0ken-value"\n')
    assert config.load(ok, require_key=False).settings.server.port == 8787


def test_errors_never_echo_a_secret(tmp_path: Path) -> None:
    path = write(
        tmp_path, f'[provider]\napi_key = ["{SECRET}"]\nmanagement_key = {{x = "{SECRET}"}}\n'
    )
    with pytest.raises(config.ConfigError) as exc:
        config.load(path)
    assert SECRET not in exc.value.report()
    assert "provider.api_key" in problems(exc)


def test_a_group_readable_file_with_a_secret_gets_a_warning(tmp_path: Path) -> None:
    loud = config.load(write(tmp_path, f'[provider]\napi_key = "{SECRET}"\n', mode=0o644))
    assert len(loud.warnings) == 1
    assert "provider.api_key" in loud.warnings[0]
    assert SECRET not in loud.warnings[0]
    quiet = config.load(write(tmp_path, f'[provider]\napi_key = "{SECRET}"\n', mode=0o600))
    assert quiet.warnings == []


def test_a_readable_file_without_secrets_gets_no_warning(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(SECRET)
    path = write(tmp_path, f'[provider]\napi_key_file = "{key_file}"\n', mode=0o644)
    assert config.load(path).warnings == []


def test_effective_config_masks_every_secret(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""
        [provider]
        api_key = "{SECRET}"
        management_key = "{SECRET}-mgmt"
        [server]
        token = "{SECRET}-token"
        [[notify.targets]]
        url = "json://hook-user:{SECRET}@127.0.0.1:9/hook"
        """,
    )
    text = config.render_effective(config.load(path).settings)
    assert SECRET not in text
    assert 'api_key = "********"' in text
    assert 'token = "********"' in text
    assert "json://" in text
    tomllib.loads(text)  # what check-config prints is itself valid TOML


def test_example_file_is_what_the_model_generates() -> None:
    """Edit watchdog/config.py, then `make example`: the sample never drifts."""
    example = (ROOT / "watchdog.example.toml").read_text()
    assert example == config.render_example()


def test_example_holds_every_key_of_the_model() -> None:
    example = (ROOT / "watchdog.example.toml").read_text()
    uncommented = re.sub(r"(?m)^# ((?:\w+) = .*|\[\[\w+\.\w+\]\])$", r"\1", example)
    data = tomllib.loads(re.sub(r'(?m)^(\w+) = ([^#\n]*?)[ ]+# [^"\n]*$', r"\1 = \2", uncommented))
    for section, model in config._SECTIONS.items():
        assert set(data[section]) == set(model.model_fields), section
    assert set(data["notify"]["targets"][0]) == set(config.NotifyTarget.model_fields)
    assert set(data["budget"]["keys"][0]) == set(config.KeyBudgetConfig.model_fields)


def test_example_loads_to_the_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", SECRET)
    loaded = config.load(ROOT / "watchdog.example.toml").settings
    defaults = config.load(None).settings
    assert loaded.model_dump() == defaults.model_dump()


def test_check_config_prints_masked_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, f'[provider]\napi_key = "{SECRET}"\n[budget]\ndaily_limit = 12.5\n')
    assert main(["check-config", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "daily_limit = 12.5" in out
    assert SECRET not in out


def test_check_config_exits_2_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "[budget]\ndaily_limit = -1\nbogus = 2\n")
    assert main(["check-config", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "At 'budget.daily_limit'" in err
    assert "At 'budget.bogus': unknown key" in err
    assert "Traceback" not in err


def test_check_config_names_a_missing_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "--config", "/nonexistent/watchdog.toml"]) == 2
    assert "cannot read /nonexistent/watchdog.toml" in capsys.readouterr().err


def test_invalid_apprise_url_is_a_config_error_with_secrets_masked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        f'[provider]\napi_key = "{SECRET}"\n[[notify.targets]]\nurl = "nosuchscheme://{SECRET}@x"\n',
    )
    assert main(["check-config", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "notify.targets[0].url" in err
    assert SECRET not in err
    assert os.environ.get("OPENROUTER_API_KEY") is None


def test_keys_beside_the_config_are_found_by_convention(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "api_key").write_text(SECRET + "\n")
    (tmp_path / "keys" / "management_key").write_text("mgmt-" + SECRET)
    provider = config.load(write(tmp_path, "[budget]\ndaily_limit = 5\n")).settings.provider
    assert provider.api_key is not None and provider.api_key.get_secret_value() == SECRET
    assert provider.management_key is not None
    assert provider.api_key_file == tmp_path / "keys" / "api_key"


def test_an_explicit_key_wins_over_the_conventions(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "api_key").write_text("from-convention")
    path = write(tmp_path, '[provider]\napi_key = "explicit-key"\n')
    key = config.load(path).settings.provider.api_key
    assert key is not None and key.get_secret_value() == "explicit-key"


def test_an_environment_list_that_is_not_json_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WATCHDOG_NOTIFY__TARGETS", f'[{{"url": "json://u:{SECRET}@h/x"')
    with pytest.raises(config.ConfigError) as exc:
        config.load(None, require_key=False)
    assert "WATCHDOG_NOTIFY__* environment variable is not valid" in problems(exc)["notify"]
    assert main(["check-config"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and SECRET not in err


# -- a password in provider.base_url, an empty revoke_on ------------------------------------

BASE_PASSWORD = "BASEURLsecretAB-9f8e7d"


def test_check_config_masks_the_password_in_provider_base_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        f'[provider]\napi_key = "{SECRET}"\n'
        f'base_url = "https://user:{BASE_PASSWORD}@openrouter.ai/api/v1"\n',
    )
    assert main(["check-config", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert 'base_url = "https://user:********@openrouter.ai/api/v1"' in out
    assert BASE_PASSWORD not in out


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://openrouter.ai/api/v1", "https://openrouter.ai/api/v1"),
        ("https://u:p%40ss-word@h:8443/v1", "https://u:********@h:8443/v1"),
        ("https://u:a@b?c/d@h/v1", "https://u:********@h/v1"),
        ("https://tokenonly-0123456789@h/v1", "https://********@h/v1"),
    ],
)
def test_the_userinfo_of_a_url_is_masked(url: str, shown: str) -> None:
    assert config.mask_userinfo(url) == shown


def test_a_base_url_password_is_one_of_the_secrets(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f'[provider]\napi_key = "{SECRET}"\n'
        'base_url = "https://user:p%40ss-w0rd-secret@openrouter.ai/api/v1"\n',
    )
    secrets = config.load(path).settings.secrets()
    assert "p%40ss-w0rd-secret" in secrets and "p@ss-w0rd-secret" in secrets
    plain = write(tmp_path, f'[provider]\napi_key = "{SECRET}"\n')
    assert config.load(plain).settings.secrets() == [SECRET]


def test_an_empty_revoke_on_is_a_warning(tmp_path: Path) -> None:
    path = write(tmp_path, f'[provider]\napi_key = "{SECRET}"\n[killswitch]\nrevoke_on = []\n')
    warnings = config.load(path).warnings
    assert warnings == [
        "killswitch.revoke_on is empty: only stale data (with on_stale = revoke) or a manual "
        "trip revokes the permit"
    ]
    default = write(tmp_path, f'[provider]\napi_key = "{SECRET}"\n')
    assert config.load(default).warnings == []


def test_an_invalid_notification_url_is_shown_with_the_targets_masker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        f'[provider]\napi_key = "{SECRET}"\n[[notify.targets]]\n'
        'url = "nosuchscheme://127.0.0.1:9/mytopicsecret?pw=verysecretpassword"\n',
    )
    assert main(["check-config", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "nosuchscheme://127.0.0.1:9/****?pw=****" in err
    assert "verysecret" not in err and "mytopicsecret" not in err
