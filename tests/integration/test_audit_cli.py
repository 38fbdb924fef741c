"""`budget-watchdog audit` against the fake provider: activity over several models and
providers, the fake's public price list, and prices cached in the state file."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.fake_openrouter import (
    AUDIT_DAY,
    AUDIT_PRICES,
    MANAGEMENT_KEY,
    FakeOpenRouter,
    Fault,
)
from tests.fakes import management_config as config
from watchdog.cli import main

DAYS = 30


@pytest.fixture
def fake() -> Iterator[FakeOpenRouter]:
    server = FakeOpenRouter().start()
    server.audit_account()
    yield server
    server.stop()


def audit_json(path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert main(["audit", "--config", str(path), "--json", *args]) == 0
    data: dict[str, Any] = json.loads(capsys.readouterr().out)
    return data


def price_requests(fake: FakeOpenRouter) -> list[str]:
    return [path for _, path, _ in fake.requests if "/api/v1/models" in path]


def cost(prices: tuple[float, float, float | None], prompt: int, completion: int) -> float:
    return (prompt * prices[0] + completion * prices[1]) / 1_000_000


def test_the_numbers_are_the_fake_s_prices(
    tmp_path: Path, fake: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    data = audit_json(config(tmp_path, fake), capsys)
    today = datetime.now(UTC).date()
    assert data["period"] == {
        "start": (today - timedelta(days=DAYS)).isoformat(),
        "end": (today - timedelta(days=1)).isoformat(),
        "days": DAYS,
    }
    # Each (model, provider) as the fake billed it, and the cheapest current endpoint for
    # the same tokens, from the fake's own price table.
    expected: dict[tuple[str, str], dict[str, float]] = {}
    for model, provider, requests, prompt, completion, byok in AUDIT_DAY:
        prices = AUDIT_PRICES[model]
        paid = cost(prices.get(provider, prices[""]), prompt, completion) * (1.05 if byok else 1)
        cheapest = min(cost(v, prompt, completion) for p, v in prices.items() if p)
        entry = expected.setdefault((model, provider), dict.fromkeys(("spend", "cheap", "n"), 0.0))
        entry["spend"] += paid * DAYS
        entry["cheap"] += min(cheapest, paid) * DAYS
        entry["n"] += requests * DAYS
    got = {(m["model"], m["provider"]): m for m in data["models"]}
    assert set(got) == set(expected)
    for key, want in expected.items():
        line = got[key]
        assert line["spend"] == pytest.approx(want["spend"], abs=1e-3), key
        assert line["requests"] == want["n"], key
        if key != ("openai/gpt-4.1", "OpenAI"):  # BYOK: scaled from what was spent
            assert line["cheapest_spend"] == pytest.approx(want["cheap"], abs=1e-3), key
        assert line["savings"] == pytest.approx(line["spend"] - line["cheapest_spend"], abs=1e-3)
    vertex = got[("anthropic/claude-sonnet-4", "Google Vertex")]
    # 1.2M in, 24k out a day: $4.752 at Google Vertex (3.6/18), $3.96 at Anthropic or Bedrock.
    assert vertex["spend"] == pytest.approx(4.752 * DAYS)
    assert vertex["cheapest_spend"] == pytest.approx(3.96 * DAYS)
    assert vertex["cheapest_provider"] in ("Anthropic", "Amazon Bedrock")
    assert vertex["tier"] == "frontier" and vertex["output_price_per_million"] == 15.0
    assert vertex["input_cost_share"] == pytest.approx(4.32 / 4.752, abs=1e-4)
    together = got[("meta-llama/llama-3.3-70b-instruct", "Together")]
    assert (together["cheapest_provider"], together["tier"]) == ("DeepInfra", "mid")
    assert together["savings"] == pytest.approx((0.66 - 0.138) * DAYS)
    lepton = got[("meta-llama/llama-3.3-70b-instruct", "Lepton")]
    assert (lepton["priced"], lepton["savings"]) == ("gone", 0.0)
    assert got[("mistralai/mistral-small-3.1-24b-instruct", "Mistral")]["tier"] == "light"
    byok = got[("openai/gpt-4.1", "OpenAI")]
    assert byok["byok_spend"] == pytest.approx(cost((2.0, 8.0, None), 60_000, 16_000) * DAYS)
    assert data["total_spend"] == pytest.approx(sum(w["spend"] for w in expected.values()))
    assert data["savings_total"] == pytest.approx(sum(f["savings"] for f in data["findings"]))
    assert data["savings_total"] <= data["total_spend"]
    kinds = {f["kind"] for f in data["findings"]}
    assert kinds == {"overpaying_provider", "tier_down", "prompt_waste", "caching"}
    fetched = datetime.fromisoformat(data["prices_fetched_at"])
    assert abs((datetime.now(UTC) - fetched).total_seconds()) < 60
    assert data["reference_mid"]["price"]["completion_per_million"] == pytest.approx(0.4)


def test_prices_are_fetched_at_most_once_an_hour(
    tmp_path: Path, fake: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config(tmp_path, fake)
    first = audit_json(path, capsys)
    requests = price_requests(fake)
    assert requests.count("/api/v1/models") == 1
    assert len(requests) == 1 + len(AUDIT_PRICES)  # the list, and each model's endpoints
    second = audit_json(path, capsys)
    assert price_requests(fake) == requests  # nothing asked: the cache answered
    assert second["prices_fetched_at"] == first["prices_fetched_at"]
    assert second["models"] == first["models"] and second["findings"] == first["findings"]
    # An hour later the prices are fetched again.
    db = sqlite3.connect(tmp_path / "state.db")
    db.execute("UPDATE prices SET fetched_at = fetched_at - 3600 * 1000 - 1")
    db.commit()
    db.close()
    audit_json(path, capsys)
    assert price_requests(fake).count("/api/v1/models") == 2


def test_a_changed_price_shows_after_the_hour_not_before(
    tmp_path: Path, fake: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config(tmp_path, fake)
    audit_json(path, capsys)
    prices = AUDIT_PRICES["meta-llama/llama-3.3-70b-instruct"]
    fake.price(
        "meta-llama/llama-3.3-70b-instruct",
        prices[""],
        {**{p: v for p, v in prices.items() if p}, "Together": (0.13, 0.40, None)},
    )
    cached = audit_json(path, capsys)
    line = next(m for m in cached["models"] if m["provider"] == "Together")
    assert line["savings"] > 0  # still the cached prices
    db = sqlite3.connect(tmp_path / "state.db")
    db.execute("UPDATE prices SET fetched_at = fetched_at - 2 * 3600 * 1000")
    db.commit()
    db.close()
    fresh = audit_json(path, capsys)
    line = next(m for m in fresh["models"] if m["provider"] == "Together")
    assert line["savings"] == 0.0 and line["cheapest_provider"] == "Together"


def test_the_terminal_output_has_tables_bars_and_the_fetch_time(
    tmp_path: Path, fake: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["audit", "--config", str(config(tmp_path, fake))]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Spend audit ")
    assert "Prices: OpenRouter's price list, fetched " in out and "(just now)" in out
    assert "Top 4 models by spend" in out and "█" in out
    assert out.index("anthropic/claude-sonnet-4") < out.index("openai/gpt-4.1")
    assert "Lepton (gone)" in out
    assert "tier down: anthropic/claude-sonnet-4" in out
    assert "Thresholds: frontier ≥ $3.00/M output tokens" in out
    assert MANAGEMENT_KEY not in out


def test_the_days_choose_the_period(
    tmp_path: Path, fake: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    week = audit_json(config(tmp_path, fake), capsys, "--days", "7")
    month = audit_json(config(tmp_path, fake), capsys)
    assert week["period"]["days"] == 7
    assert week["total_spend"] == pytest.approx(month["total_spend"] * 7 / 30)


def test_the_config_s_thresholds_are_used(
    tmp_path: Path, fake: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config(tmp_path, fake, extra="[audit]\nfrontier_min = 20.0\nlight_max = 0.05\n")
    data = audit_json(path, capsys)
    tiers = {m["model"]: m["tier"] for m in data["by_model"]}
    assert tiers["anthropic/claude-sonnet-4"] == "mid"
    assert tiers["mistralai/mistral-small-3.1-24b-instruct"] == "mid"
    assert not any(f["kind"] == "tier_down" for f in data["findings"])


def test_without_a_state_file_prices_are_used_uncached(
    tmp_path: Path, fake: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config(tmp_path, fake, state=False)
    assert main(["audit", "--config", str(path), "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["savings_total"] > 0
    assert "prices not cached: no state at" in captured.err
    assert not (tmp_path / "state.db").exists()


def test_a_price_list_that_fails_leaves_the_audit_without_savings(
    tmp_path: Path, fake: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.fault(Fault(status=503, paths=("/models",)))
    path = config(tmp_path, fake)
    assert main(["audit", "--config", str(path), "--json"]) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert data["total_spend"] > 0 and data["savings_total"] == 0
    assert data["prices_fetched_at"] is None
    assert "prices could not be fetched" in captured.err and "no savings" in captured.err


def test_the_audit_needs_a_management_key(
    tmp_path: Path, fake: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "watchdog.toml"
    path.write_text(f'[provider]\nbase_url = "{fake.base_url}"\napi_key = "sk-or-v1-x"\n')
    assert main(["audit", "--config", str(path)]) == 2
    assert "needs a management key" in capsys.readouterr().err
    assert price_requests(fake) == []


@pytest.mark.parametrize("days", ["0", "31"])
def test_days_are_1_to_30(tmp_path: Path, fake: FakeOpenRouter, days: str) -> None:
    assert main(["audit", "--config", str(config(tmp_path, fake)), "--days", days]) == 2


def test_activity_that_fails_is_a_clear_error(
    tmp_path: Path, fake: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.fault(Fault(status=500, paths=("/activity",)))
    assert main(["audit", "--config", str(config(tmp_path, fake))]) == 1
    err = capsys.readouterr().err
    assert "activity is unavailable" in err and "Traceback" not in err
