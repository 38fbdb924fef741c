"""Prices for the audit: parsed from the price list, cached in the state at most an hour."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.fake_openrouter import endpoint_row, model_row, per_token
from watchdog.core.audit import Endpoint, ModelPrices, Price
from watchdog.pricing import StoreCache, current_prices, fresh
from watchdog.providers.base import BadResponse, TransientError
from watchdog.providers.openrouter import parse_endpoint, parse_price
from watchdog.store import MIGRATIONS, Store

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
A = Price(1e-6, 2e-6, 1e-7)


class Source:
    """A price list that counts what it is asked."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.fail = fail
        self.lists = 0
        self.endpoint_calls: list[str] = []

    def list_models(self) -> dict[str, Price | None]:
        if self.fail:
            raise self.fail
        self.lists += 1
        return {"a/one": A, "b/two": None}

    def model_endpoints(self, model: str) -> list[Endpoint] | None:
        self.endpoint_calls.append(model)
        if model == "x/unknown":
            return None
        return [Endpoint("P", A, "p")]


class Memory:
    def __init__(self, prices: dict[str, ModelPrices] | None = None) -> None:
        self.saved: dict[str, ModelPrices] = dict(prices or {})

    def prices(self) -> dict[str, ModelPrices]:
        return dict(self.saved)

    def save(self, prices: Sequence[ModelPrices]) -> None:
        self.saved.update({p.model: p for p in prices})


# -- parsing -------------------------------------------------------------------------------


def test_prices_are_read_from_the_spec_s_strings_per_token() -> None:
    assert parse_price({"prompt": "0.000003", "completion": "0.000015"}) == Price(3e-6, 15e-6)
    cached = parse_price(
        {"prompt": "0.000003", "completion": "0.000015", "input_cache_read": "3e-7"}
    )
    assert cached == Price(3e-6, 15e-6, 3e-7)
    assert parse_price({"prompt": "0", "completion": "0"}) == Price(0.0, 0.0)


@pytest.mark.parametrize(
    "pricing",
    [
        {"prompt": "-1", "completion": "-1"},  # a router's variable price
        {"prompt": "0.1"},
        {"prompt": "abc", "completion": "0.1"},
        {"prompt": True, "completion": "0.1"},
        {"prompt": "nan", "completion": "0.1"},
        {"prompt": 10**400, "completion": "0.1"},
        None,
        "0.1",
    ],
)
def test_what_is_not_a_price_is_no_price(pricing: Any) -> None:
    assert parse_price(pricing) is None


def test_a_bad_cache_price_is_just_no_cache_price() -> None:
    price = parse_price({"prompt": "0.1", "completion": "0.1", "input_cache_read": "-1"})
    assert price == Price(0.1, 0.1, None)


def test_the_fake_s_rows_parse_to_their_prices() -> None:
    assert per_token(3.0) == "0.000003" and per_token(0.13) == "0.00000013"
    assert parse_price(model_row("a/b", 3.0, 15.0, 0.3)["pricing"]) == pytest.approx(
        Price(3e-6, 15e-6, 3e-7)
    )
    endpoint = parse_endpoint(endpoint_row("a/b", "Amazon Bedrock", 3.0, 15.0))
    assert endpoint is not None
    assert (endpoint.provider, endpoint.tag) == ("Amazon Bedrock", "amazon-bedrock")
    assert parse_endpoint({"provider_name": "P", "pricing": {"prompt": "-1"}}) is None
    assert parse_endpoint({"pricing": {"prompt": "0", "completion": "0"}}) is None


# -- the hourly cache ----------------------------------------------------------------------


def test_prices_are_fetched_once_then_read_from_the_cache_within_the_hour() -> None:
    source, cache = Source(), Memory()
    first = current_prices(["a/one", "b/two"], source, cache, NOW)
    assert first.fetched == 2 and source.lists == 1
    assert sorted(source.endpoint_calls) == ["a/one", "b/two"]
    assert first.prices["a/one"] == ModelPrices("a/one", NOW, A, (Endpoint("P", A, "p"),))
    assert first.prices["b/two"].listed is None  # listed without a price
    again = current_prices(["a/one", "b/two"], source, cache, NOW + timedelta(minutes=59))
    assert again.fetched == 0 and source.lists == 1 and len(source.endpoint_calls) == 2
    assert again.prices == first.prices
    later = current_prices(["a/one"], source, cache, NOW + timedelta(minutes=61))
    assert later.fetched == 1 and source.lists == 2
    assert later.prices["a/one"].fetched_at == NOW + timedelta(minutes=61)


def test_only_models_not_cached_are_fetched() -> None:
    source = Source()
    cache = Memory({"a/one": ModelPrices("a/one", NOW - timedelta(minutes=5), A)})
    lookup = current_prices(["a/one", "b/two"], source, cache, NOW)
    assert source.endpoint_calls == ["b/two"]
    assert lookup.prices["a/one"].fetched_at == NOW - timedelta(minutes=5)


def test_a_model_the_provider_does_not_know_has_no_prices() -> None:
    lookup = current_prices(["x/unknown"], Source(), Memory(), NOW)
    assert lookup.prices["x/unknown"] == ModelPrices("x/unknown", NOW)


def test_a_failed_fetch_falls_back_to_the_cache_however_old() -> None:
    old = ModelPrices("a/one", NOW - timedelta(days=2), A)
    lookup = current_prices(
        ["a/one", "b/two"],
        Source(TransientError("GET /models: HTTP 503")),
        Memory({"a/one": old}),
        NOW,
    )
    assert lookup.prices == {"a/one": old}
    assert lookup.problem == "prices could not be fetched: GET /models: HTTP 503"
    assert lookup.missing == ("b/two",)


def test_a_bad_price_list_is_a_problem_not_a_crash() -> None:
    lookup = current_prices(["a/one"], Source(BadResponse("/models: no data")), None, NOW)
    assert lookup.prices == {} and lookup.problem and lookup.fetched == 0


def test_prices_from_a_clock_ahead_are_not_fresh() -> None:
    assert fresh(ModelPrices("a", NOW), NOW)
    assert not fresh(ModelPrices("a", NOW - timedelta(hours=1)), NOW)
    assert not fresh(ModelPrices("a", NOW + timedelta(hours=2)), NOW)


# -- in the state file ---------------------------------------------------------------------


def test_the_state_keeps_prices_with_their_fetch_time(tmp_path: Path) -> None:
    with Store(tmp_path / "state.db") as store:
        assert store.schema_version == len(MIGRATIONS)
        cache = StoreCache(store)
        prices = [
            ModelPrices(
                "a/one",
                NOW,
                A,
                (Endpoint("P", A, "p"), Endpoint("Q", Price(2e-6, 3e-6), "q/fp8")),
            ),
            ModelPrices("x/unlisted", NOW),
        ]
        cache.save(prices)
        assert store.prices() == {p.model: p for p in prices}
        cache.save([ModelPrices("a/one", NOW + timedelta(hours=2), None, ())])
        assert store.prices()["a/one"] == ModelPrices("a/one", NOW + timedelta(hours=2))
        assert "x/unlisted" in store.prices()


def test_a_state_file_that_cannot_be_written_leaves_the_prices_uncached(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    Store(path).close()
    with Store(path) as store:
        cache = StoreCache(store)
        blocker = sqlite3.connect(path, timeout=0)
        blocker.execute("BEGIN IMMEDIATE")  # another writer holds the file
        try:
            store._db.execute("PRAGMA busy_timeout = 100")
            cache.save([ModelPrices("a/one", NOW, A)])
        finally:
            blocker.rollback()
            blocker.close()
        assert cache.problem and "cannot write the state (" in cache.problem
        assert store.prices() == {}
