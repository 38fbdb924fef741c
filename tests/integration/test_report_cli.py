"""`budget-watchdog report` against a real state file and the fake provider's activity."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.fake_openrouter import MANAGEMENT_KEY, FakeOpenRouter
from watchdog.cli import main
from watchdog.core.model import Sample
from watchdog.store import Store


@pytest.fixture
def fake() -> Iterator[FakeOpenRouter]:
    server = FakeOpenRouter().start()
    yield server
    server.stop()


def config(tmp_path: Path, fake: FakeOpenRouter, management: bool) -> Path:
    path = tmp_path / "watchdog.toml"
    key = f'management_key = "{MANAGEMENT_KEY}"\n' if management else ""
    path.write_text(
        f'[provider]\nbase_url = "{fake.base_url}"\n{key}[state]\npath = "{tmp_path}/state.db"\n'
    )
    path.chmod(0o600)
    now = datetime.now(UTC)
    with Store(tmp_path / "state.db") as store, store.unit() as unit:
        unit.add_samples([Sample(now - timedelta(hours=h), 100.0 - h * 0.5) for h in range(50)])
    return path


def test_report_shows_models_first_then_days(
    tmp_path: Path, fake: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.account.usage = 0
    assert main(["report", "--config", str(config(tmp_path, fake, True)), "--days", "30"]) == 0
    out = capsys.readouterr().out
    assert out.index("openai/gpt-4.1") < out.index("Spend by day")
    assert "$1.50" in out
    assert MANAGEMENT_KEY not in out


def test_report_json_without_a_management_key(
    tmp_path: Path, fake: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["report", "--config", str(config(tmp_path, fake, False)), "--days", "3", "--json"])
        == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert data["models"] is None
    assert len(data["days"]) == 3
    assert sum(d["spend"] or 0 for d in data["days"]) == pytest.approx(24.5, abs=0.6)


def test_report_without_state_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "watchdog.toml"
    path.write_text(f'[state]\npath = "{tmp_path}/nothing.db"\n')
    assert main(["report", "--config", str(path)]) == 1
    assert "has the daemon run" in capsys.readouterr().err
    assert not (tmp_path / "nothing.db").exists()
