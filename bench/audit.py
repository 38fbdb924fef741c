"""The spend audit on a large account: 30 days of activity for 200 models, each at two
providers, priced against five endpoints a model — the audit, its JSON, its Markdown and
its terminal table, as `budget-watchdog audit` computes them once the data is fetched."""

from __future__ import annotations

import random
import statistics
import time
from datetime import UTC, date, datetime, timedelta

from bench.common import Result, say
from watchdog import report
from watchdog.core.audit import AuditPolicy, Endpoint, ModelPrices, Price, as_json, audit, markdown
from watchdog.providers.base import ActivityRow

DAYS = 30
MODELS = 200
PROVIDERS = ("Alpha", "Beta", "Gamma", "Delta", "Epsilon")
END = date(2026, 11, 26)
TARGET_S = 1.0


def account(seed: int = 7) -> tuple[list[ActivityRow], dict[str, ModelPrices]]:
    """Activity rows (one per day, model and provider used) and the price book."""
    rng = random.Random(seed)
    now = datetime(2026, 11, 27, 9, tzinfo=UTC)
    policy = AuditPolicy()
    prices: dict[str, ModelPrices] = {}
    rows: list[ActivityRow] = []
    for index in range(MODELS):
        model = f"author{index % 17}/model-{index}"
        base = rng.choice((0.05, 0.3, 1.0, 3.0, 15.0)) / 1e6
        listed = Price(base, base * rng.choice((2, 4, 5)), base / 10 if index % 3 else None)
        endpoints = tuple(
            Endpoint(p, Price(listed.prompt * f, listed.completion * f, listed.cache_read), p)
            for p, f in zip(PROVIDERS, (1.0, 1.1, 1.25, 0.95, 1.5), strict=True)
        )
        prices[model] = ModelPrices(model, now, listed, endpoints)
        used = rng.sample(PROVIDERS, 2)
        for back in range(DAYS):
            for provider in used:
                requests = rng.randint(10, 5000)
                prompt = requests * rng.randint(50, 4000)
                completion = requests * rng.randint(5, 800)
                price = next(e.price for e in endpoints if e.provider == provider)
                spend = price.cost(prompt, completion)
                byok = spend if index % 11 == 0 else 0.0
                rows.append(
                    ActivityRow(
                        END - timedelta(days=back),
                        model,
                        provider,
                        spend * 0.05 if byok else spend,
                        requests,
                        prompt,
                        completion,
                        byok,
                    )
                )
    prices[policy.reference_mid] = ModelPrices(
        policy.reference_mid, now, Price(0.13e-6, 0.40e-6), ()
    )
    return rows, prices


def run() -> list[Result]:
    rows, prices = account()
    policy = AuditPolicy()
    start = END - timedelta(days=DAYS - 1)
    now = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)
    times = []
    for _ in range(5):
        began = time.perf_counter()
        result = audit(rows, prices, policy, start=start, end=END)
        as_json(result)
        markdown(result)
        report.render_audit(result, now=now)
        times.append(time.perf_counter() - began)
    seconds = statistics.median(times)
    say(
        f"  audit of {len(rows):,} activity rows ({DAYS} days x {MODELS} models x 2 providers): "
        f"{seconds * 1000:.0f} ms (median of 5), {len(result.findings)} findings, "
        f"${result.savings_total:,.0f} of ${result.total_spend:,.0f} in savings"
    )
    return [
        Result(
            f"audit over {DAYS} days x {MODELS} models (audit, JSON, Markdown, table)",
            seconds,
            "s",
            TARGET_S,
            note=f"{len(rows):,} activity rows, {len(PROVIDERS)} endpoints a model",
        )
    ]


if __name__ == "__main__":
    for r in run():
        print(r)
