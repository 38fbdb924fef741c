"""[audit] and [digest]: defaults, validation, and the "digest" notification severity."""

from __future__ import annotations

from pathlib import Path

import pytest

from watchdog import config


def load(tmp_path: Path, text: str) -> config.Settings:
    path = tmp_path / "watchdog.toml"
    path.write_text(text)
    return config.load(path, require_key=False).settings


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(config.ConfigError) as caught:
        load(tmp_path, text)
    return [str(p) for p in caught.value.problems]


def test_the_defaults_are_the_issue_s() -> None:
    settings = config.Settings()
    assert (settings.audit.frontier_min, settings.audit.light_max) == (3.0, 0.20)
    assert settings.audit.reference_mid == "meta-llama/llama-3.3-70b-instruct"
    digest = settings.digest
    assert (digest.schedule, digest.day, digest.at) == ("weekly", "mon", "09:00")
    assert (digest.weekday, digest.hour, digest.minute) == (0, 9, 0)


def test_the_sample_config_shows_both_sections() -> None:
    example = config.render_example()
    assert "[audit]\n" in example and "frontier_min = 3.0\n" in example
    assert "[digest]\n" in example and 'schedule = "weekly"\n' in example
    assert 'at = "09:00"\n' in example


def test_a_digest_time_is_read_as_hh_mm(tmp_path: Path) -> None:
    settings = load(tmp_path, '[digest]\nschedule = "daily"\nat = "7:05"\nday = "Fri"\n')
    assert (settings.digest.at, settings.digest.hour, settings.digest.minute) == ("07:05", 7, 5)
    assert (settings.digest.day, settings.digest.weekday) == ("fri", 4)


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ('[digest]\nat = "24:00"\n', "digest.at"),
        ('[digest]\nat = "9am"\n', "digest.at"),
        ('[digest]\nday = "monday"\n', "digest.day"),
        ('[digest]\nschedule = "hourly"\n', "digest.schedule"),
        ("[audit]\nfrontier_min = 0\n", "audit.frontier_min"),
        ("[audit]\nlight_max = -1\n", "audit.light_max"),
        ('[audit]\nreference_mid = "llama"\n', "audit.reference_mid"),
        ("[audit]\nlight_max = 5.0\n", "audit.light_max"),  # above frontier_min
        ("[audit]\nfrontier = 3.0\n", "audit.frontier"),
    ],
)
def test_bad_values_are_reported_with_their_path(tmp_path: Path, text: str, path: str) -> None:
    found = problems(tmp_path, text)
    assert len(found) == 1 and found[0].startswith(f"At '{path}'"), found


def test_every_problem_of_both_sections_is_reported_at_once(tmp_path: Path) -> None:
    found = problems(tmp_path, '[audit]\nfrontier_min = -1\n[digest]\nat = "x"\nday = "y"\n')
    assert len(found) == 3


def test_the_environment_sets_them_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_AUDIT__FRONTIER_MIN", "5")
    monkeypatch.setenv("WATCHDOG_DIGEST__SCHEDULE", "off")
    settings = load(tmp_path, "")
    assert settings.audit.frontier_min == 5.0 and settings.digest.schedule == "off"


def test_a_target_may_receive_the_digest(tmp_path: Path) -> None:
    settings = load(
        tmp_path, '[[notify.targets]]\nurl = "json://localhost/x"\nseverities = ["digest"]\n'
    )
    assert settings.notify.targets[0].severities == ["digest"]
    assert problems(tmp_path, '[[notify.targets]]\nurl = "json://h/x"\nseverities = ["weekly"]\n')
