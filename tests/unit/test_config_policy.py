"""Settings.policy(): the config handed to the core as its frozen dataclasses."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel

from watchdog import config
from watchdog.core.model import BudgetPolicy, KillswitchPolicy, NotifyPolicy, Policy


def test_default_budget_policy_is_the_cores_default() -> None:
    """The core's defaults and the config's never drift (tz: the core uses datetime.UTC)."""
    assert config.Settings().policy().budget == BudgetPolicy(tz=ZoneInfo("UTC"))
    assert config.Settings().policy().budget.timezone == BudgetPolicy().timezone


def test_default_killswitch_policy_is_the_cores_default() -> None:
    assert config.Settings().policy().killswitch == KillswitchPolicy()


def test_default_notify_policy_is_the_cores_default() -> None:
    assert config.Settings().policy().notify == NotifyPolicy()


def test_default_poll_interval_is_the_cores_default() -> None:
    assert config.Settings().policy().poll_interval == Policy().poll_interval


def test_every_policy_field_has_a_config_key() -> None:
    pairs: list[tuple[Any, type[BaseModel]]] = [
        (BudgetPolicy, config.BudgetConfig),
        (KillswitchPolicy, config.KillswitchConfig),
        (NotifyPolicy, config.NotifyConfig),
    ]
    for policy, section in pairs:
        missing = {f.name for f in dataclasses.fields(policy)} - set(section.model_fields)
        assert missing <= {"tz"}, policy.__name__  # tz is derived from timezone


def test_the_policy_carries_the_configured_values(tmp_path: Path) -> None:
    path = tmp_path / "watchdog.toml"
    path.write_text(
        """
        [provider]
        poll_interval = "30s"
        [budget]
        timezone = "Europe/Berlin"
        daily_limit = 20
        monthly_limit = 400
        stale_after = "2m"
        [killswitch]
        revoke_on = ["warning", "critical"]
        ttl = "1m"
        latch = true
        on_stale = "keep"
        [notify]
        repeat_interval = "1h"
        send_resolved = false
        """
    )
    policy = config.load(path, require_key=False).settings.policy()
    assert policy.poll_interval == timedelta(seconds=30)
    assert policy.budget.tz == ZoneInfo("Europe/Berlin")
    assert policy.budget.timezone == "Europe/Berlin"
    assert (policy.budget.daily_limit, policy.budget.monthly_limit) == (20.0, 400.0)
    assert policy.budget.stale_after == timedelta(minutes=2)
    assert policy.killswitch == KillswitchPolicy(
        revoke_on=("warning", "critical"),
        ttl=timedelta(minutes=1),
        latch=True,
        on_stale="keep",
        disable_keys=False,
    )
    assert policy.notify == NotifyPolicy(repeat_interval=timedelta(hours=1), send_resolved=False)
    hash(policy)  # frozen all the way down: revoke_on is a tuple, not the config's list
