"""Today's prices for the audit: fetched from the provider's public price list at most once
an hour, cached in the state file with their fetch time.

A model's prices are its listed price (GET /models) and each provider endpoint's (GET
/models/{author}/{slug}/endpoints). Cached prices younger than an hour are used as they
are, so a second `audit` within the hour, in a fresh process, asks the provider nothing;
only models not cached (or cached over an hour ago) are fetched, with one GET /models and
one endpoints request each. When the provider cannot be asked, older cached prices are
used and the result says so; the audit is never refused for want of a price.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from watchdog.core import audit
from watchdog.core.audit import Endpoint, ModelPrices, Price
from watchdog.providers.base import ProviderError
from watchdog.store import Store

MAX_AGE = timedelta(hours=1)
# Endpoint lists are fetched this many at a time (the HTTP client keeps four connections).
PARALLEL = 4


class PriceSource(Protocol):
    """The provider's public price list (OpenRouterProvider is one)."""

    def list_models(self) -> dict[str, Price | None]: ...

    def model_endpoints(self, model: str) -> list[Endpoint] | None: ...


class PriceCache(Protocol):
    """Where prices are kept between runs (`StoreCache`: the state file)."""

    def prices(self) -> dict[str, ModelPrices]: ...

    def save(self, prices: Sequence[ModelPrices]) -> None: ...


class StoreCache:
    """Prices kept in the state file: read with `Store.prices`, written in one unit. A
    state file this user may read but not write (a CLI user beside the service) does not
    stop the audit: the prices are used uncached and `problem` says why."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.problem: str | None = None

    def prices(self) -> dict[str, ModelPrices]:
        return self._store.prices()

    def save(self, prices: Sequence[ModelPrices]) -> None:
        try:
            with self._store.unit() as unit:
                unit.save_prices(prices)
        except (sqlite3.Error, OSError) as exc:
            self.problem = f"cannot write the state ({self._store.shown}): {exc}"


@dataclass(frozen=True)
class PriceLookup:
    """Prices by model, how many models were fetched now (0: all from the cache), and a
    `problem` when fetching failed (then cached prices, however old, are used)."""

    prices: dict[str, ModelPrices]
    fetched: int = 0
    problem: str | None = None
    missing: tuple[str, ...] = field(default=())


def fresh(prices: ModelPrices, now: datetime, max_age: timedelta = MAX_AGE) -> bool:
    """Fetched less than `max_age` before `now` (and not in its future: a clock that
    stepped back does not keep old prices forever)."""
    return now - max_age < prices.fetched_at <= now + timedelta(minutes=1)


def current_prices(
    models: Iterable[str],
    source: PriceSource,
    cache: PriceCache | None,
    now: datetime,
    *,
    max_age: timedelta = MAX_AGE,
) -> PriceLookup:
    """Given the model ids the audit needs, return their prices: from `cache` when fetched
    within `max_age`, else from `source` (saved to `cache` with `now` as their fetch
    time). A ProviderError of the source becomes `problem`; the cached prices are used
    then, stale or not, and `missing` names the models without any."""
    wanted = sorted(set(models))
    cached = cache.prices() if cache is not None else {}
    stale = [m for m in wanted if m not in cached or not fresh(cached[m], now, max_age)]
    prices = {m: cached[m] for m in wanted if m in cached}
    if not stale:
        return PriceLookup(prices)
    try:
        fetched = fetch(stale, source, now)
    except ProviderError as exc:
        missing = tuple(m for m in wanted if m not in prices)
        return PriceLookup(prices, 0, f"prices could not be fetched: {exc.message}", missing)
    if cache is not None:
        cache.save(list(fetched.values()))
    prices.update(fetched)
    return PriceLookup(prices, len(fetched))


def fetch(models: Sequence[str], source: PriceSource, now: datetime) -> dict[str, ModelPrices]:
    """The prices of `models` now: one price list, one endpoints request per model (a few
    at a time). A model the provider does not know has no listed price and no endpoints."""
    listed: Mapping[str, Price | None] = source.list_models()
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        endpoints = list(pool.map(source.model_endpoints, models))
    return {
        model: ModelPrices(model, now, listed.get(model), tuple(found or ()))
        for model, found in zip(models, endpoints, strict=True)
    }


def audit_rows(
    rows: Sequence[Any],
    source: PriceSource | None,
    cache: PriceCache | None,
    policy: audit.AuditPolicy,
    now: datetime,
    days: int = 30,
) -> tuple[audit.AuditResult, PriceLookup]:
    """The audit of the last `days` completed UTC days of `rows` (the provider's activity;
    a row of today, should one come, counts), priced with `current_prices` — or, without a
    `source`, with whatever the cache holds (no network: what a tick may afford)."""
    today = now.astimezone(UTC).date()
    end = max([today - timedelta(days=1)] + [r.date for r in rows if r.date <= today])
    start = end - timedelta(days=days - 1)
    models = {r.model for r in rows if start <= r.date <= end} | {policy.reference_mid}
    if source is None:
        cached = cache.prices() if cache is not None else {}
        lookup = PriceLookup({m: cached[m] for m in models if m in cached})
    else:
        lookup = current_prices(models, source, cache, now)
    return audit.audit(rows, lookup.prices, policy, start=start, end=end), lookup
