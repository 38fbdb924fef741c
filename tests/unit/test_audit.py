"""The audit's arithmetic (watchdog.core.audit) on hand-computed cases, and its invariants."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchdog.core.audit import (
    AuditPolicy,
    AuditResult,
    Endpoint,
    LineAudit,
    ModelPrices,
    Price,
    as_json,
    audit,
    markdown,
    tier,
)
from watchdog.providers.base import ActivityRow

FETCHED = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
START, END = date(2026, 11, 1), date(2026, 11, 10)  # ten days
POLICY = AuditPolicy()
REF = POLICY.reference_mid
M = 1_000_000


def per_m(prompt: float, completion: float, cache_read: float | None = None) -> Price:
    """A price given in USD per million tokens."""
    return Price(prompt / M, completion / M, None if cache_read is None else cache_read / M)


def row(
    model: str,
    provider: str,
    spend: float,
    prompt: int,
    completion: int,
    requests: int = 10,
    *,
    day: int = 5,
    byok: float = 0.0,
) -> ActivityRow:
    return ActivityRow(
        date(2026, 11, day), model, provider, spend, requests, prompt, completion, byok
    )


def book(
    *entries: tuple[str, Price | None, dict[str, Price]],
) -> dict[str, ModelPrices]:
    return {
        model: ModelPrices(
            model,
            FETCHED,
            listed,
            tuple(Endpoint(p, price, p.lower()) for p, price in ends.items()),
        )
        for model, listed, ends in entries
    }


def run(rows: list[ActivityRow], prices: dict[str, ModelPrices], **policy: float) -> AuditResult:
    return audit(rows, prices, AuditPolicy(**policy), start=START, end=END)  # type: ignore[arg-type]


def line(result: AuditResult, model: str, provider: str) -> LineAudit:
    return next(x for x in result.lines if (x.model, x.provider) == (model, provider))


def kinds(result: AuditResult) -> list[tuple[str, str, str | None, float]]:
    return [(f.kind, f.model, f.provider, round(f.savings, 6)) for f in result.findings]


# -- tiers ---------------------------------------------------------------------------------


def test_tiers_follow_the_output_price_with_the_edges_as_stated() -> None:
    assert tier(3.0, POLICY) == "frontier"  # at frontier_min: frontier
    assert tier(2.9999, POLICY) == "mid"
    assert tier(0.20, POLICY) == "mid"  # at light_max: not light
    assert tier(0.1999, POLICY) == "light"
    assert tier(0.0, POLICY) == "light"
    assert tier(None, POLICY) == "unknown"
    assert tier(5.0, AuditPolicy(frontier_min=10.0, light_max=1.0)) == "mid"


def test_a_model_s_tier_comes_from_its_listed_output_price() -> None:
    prices = book(
        ("a/frontier", per_m(1, 3), {}),
        ("b/mid", per_m(1, 2.99), {}),
        ("c/light", per_m(0.1, 0.19), {}),
        ("d/edge", per_m(0.1, 0.2), {}),
    )
    rows = [row(m, "P", 1.0, 1000, 100) for m in prices]
    tiers = {m.model: m.tier for m in run(rows, prices).models}
    assert tiers == {"a/frontier": "frontier", "b/mid": "mid", "c/light": "light", "d/edge": "mid"}


# -- the provider step ---------------------------------------------------------------------


def test_overpaying_provider_hand_computed() -> None:
    """1M input + 100k output at Dear (2/10 per M) cost $3.00; at Cheap (1/5) $1.50."""
    prices = book(("a/m", per_m(1, 5), {"Dear": per_m(2, 10), "Cheap": per_m(1, 5)}))
    result = run([row("a/m", "Dear", 3.0, 1_000_000, 100_000)], prices)
    got = result.lines[0]
    assert (got.cheapest_provider, got.priced) == ("Cheap", "endpoint")
    assert got.cheapest_spend == pytest.approx(1.5)
    assert got.savings == pytest.approx(1.5)
    assert got.input_cost_share == pytest.approx(2 / 3)
    assert got.input_output_ratio == pytest.approx(10)
    assert kinds(result) == [("overpaying_provider", "a/m", "Dear", 1.5)]
    assert "same tokens, at today's prices" in result.findings[0].message
    assert result.savings_total == pytest.approx(1.5)


def test_the_saving_scales_the_actual_spend_by_the_price_ratio() -> None:
    """Spend below list price (a discount, cached input) is scaled, not compared directly:
    $2.40 paid for what lists at $3.00 at Dear would have been $1.20 at Cheap."""
    prices = book(("a/m", None, {"Dear": per_m(2, 10), "Cheap": per_m(1, 5)}))
    got = run([row("a/m", "Dear", 2.4, 1_000_000, 100_000)], prices).lines[0]
    assert got.cheapest_spend == pytest.approx(1.2)
    assert got.savings == pytest.approx(1.2)


def test_the_cheapest_depends_on_the_token_mix() -> None:
    """Input-heavy work is cheapest where input is cheap, output-heavy where output is."""
    ends = {"InCheap": per_m(1, 20), "OutCheap": per_m(4, 4)}
    prices = book(("a/m", None, ends))
    result = run(
        [
            row("a/m", "OutCheap", 4.08, 1_000_000, 20_000),  # InCheap: 1.0 + 0.4 = 1.4
            row("a/m", "InCheap", 2.1, 100_000, 100_000),  # OutCheap: 0.4 + 0.4 = 0.8
        ],
        prices,
    )
    assert line(result, "a/m", "OutCheap").cheapest_provider == "InCheap"
    assert line(result, "a/m", "InCheap").cheapest_provider == "OutCheap"
    assert line(result, "a/m", "InCheap").cheapest_spend == pytest.approx(0.8)


def test_the_provider_used_wins_a_tie_and_saves_nothing() -> None:
    prices = book(("a/m", None, {"A": per_m(1, 2), "B": per_m(1, 2)}))
    got = run([row("a/m", "B", 1.2, 1_000_000, 100_000)], prices).lines[0]
    assert (got.cheapest_provider, got.cheapest_spend, got.savings) == ("B", 1.2, 0.0)


def test_provider_names_match_whatever_their_case() -> None:
    prices = book(("a/m", None, {"DeepInfra": per_m(1, 2)}))
    got = run([row("a/m", "deepinfra", 1.2, 1_000_000, 100_000)], prices).lines[0]
    assert got.priced == "endpoint" and got.savings == 0.0


def test_free_endpoints_are_not_where_paid_work_is_moved() -> None:
    prices = book(("a/m", None, {"A": per_m(1, 2), "Free": per_m(0, 0)}))
    got = run([row("a/m", "A", 1.2, 1_000_000, 100_000)], prices).lines[0]
    assert got.cheapest_provider == "A" and got.savings == 0.0


def test_a_model_with_no_endpoints_data_keeps_its_tier_and_claims_no_provider_saving() -> None:
    prices = book(("a/m", per_m(3, 15), {}))
    result = run([row("a/m", "Somewhere", 4.5, 1_000_000, 100_000)], prices)
    got = result.lines[0]
    assert (got.priced, got.tier, got.cheapest_provider, got.cheapest_spend) == (
        "listed",
        "frontier",
        None,
        None,
    )
    assert got.savings == 0.0
    assert got.input_cost_share == pytest.approx(3 / 4.5)
    assert result.findings == ()


def test_a_model_without_any_price_is_listed_and_said_so() -> None:
    result = run([row("x/unknown", "P", 2.0, 1000, 100)], {})
    assert result.models[0].tier == "unknown"
    assert result.lines[0].priced == "none"
    assert result.findings == () and result.savings_total == 0.0
    assert any("x/unknown: no price known" in n for n in result.notes)
    assert result.prices_fetched_at is None


def test_a_provider_that_vanished_is_compared_with_what_was_spent() -> None:
    """Gone no longer serves the model: $3.00 spent, the same tokens at Cheap list $1.50."""
    prices = book(("a/m", per_m(2, 10), {"Cheap": per_m(1, 5)}))
    result = run([row("a/m", "Gone", 3.0, 1_000_000, 100_000)], prices)
    got = result.lines[0]
    assert (got.priced, got.cheapest_provider) == ("gone", "Cheap")
    assert got.cheapest_spend == pytest.approx(1.5) and got.savings == pytest.approx(1.5)
    assert got.input_cost_share == pytest.approx(2 / 3)  # at the listed price
    assert "no longer lists" in result.findings[0].message


def test_a_vanished_provider_cheaper_than_today_s_prices_saves_nothing() -> None:
    prices = book(("a/m", None, {"Dear": per_m(10, 50)}))
    got = run([row("a/m", "Gone", 3.0, 1_000_000, 100_000)], prices).lines[0]
    assert got.cheapest_spend == pytest.approx(3.0) and got.savings == 0.0


def test_zero_tokens_give_no_ratio_no_share_and_no_saving() -> None:
    """Spend without tokens (request fees): nothing to price the same tokens at."""
    prices = book(("a/m", per_m(3, 15), {"Dear": per_m(5, 25), "Cheap": per_m(1, 2)}))
    result = run([row("a/m", "Dear", 1.0, 0, 0, requests=5000)], prices)
    got = result.lines[0]
    assert got.input_output_ratio is None and got.input_cost_share is None
    assert got.cheapest_provider is None and got.cheapest_spend is None
    assert got.savings == 0.0
    assert result.findings == ()
    assert result.models[0].tier == "frontier"


def test_zero_output_tokens_leave_the_ratio_unknown() -> None:
    prices = book(("a/m", per_m(1, 1), {}))
    got = run([row("a/m", "P", 1.0, 1_000_000, 0)], prices).lines[0]
    assert got.input_output_ratio is None and got.input_cost_share == 1.0


def test_byok_rows_count_as_spend() -> None:
    """A BYOK row: OpenRouter's 5% fee in `usage`, the provider's bill in byok_usage."""
    prices = book(("a/m", None, {"A": per_m(1, 2)}))
    rows = [
        row("a/m", "A", 0.06, 1_000_000, 100_000, byok=1.2),
        row("a/m", "A", 1.2, 1_000_000, 100_000, day=6),
    ]
    result = run(rows, prices)
    assert result.total_spend == pytest.approx(2.46)
    assert result.byok_spend == pytest.approx(1.2)
    assert result.lines[0].spend == pytest.approx(2.46)
    assert result.lines[0].byok_spend == pytest.approx(1.2)
    assert as_json(result)["byok_spend"] == pytest.approx(1.2)


def test_rows_outside_the_period_are_left_out() -> None:
    rows = [row("a/m", "A", 1.0, 10, 10, day=d) for d in (1, 10, 11, 30)]
    result = run(rows, {})
    assert result.total_spend == 2.0 and result.days == 10


# -- the later steps, each on what the one before left -------------------------------------


def frontier_book() -> dict[str, ModelPrices]:
    return book(
        ("a/frontier", per_m(3, 15), {"Dear": per_m(3.6, 18), "Fair": per_m(3, 15)}),
        (REF, per_m(0.1, 0.4), {"Cheap": per_m(0.1, 0.4)}),
    )


def test_tier_down_is_priced_at_the_reference_after_the_provider_saving() -> None:
    """2,000 requests of 50 output tokens at Dear: 1M in, 100k out cost 3.6 + 1.8 = $5.40.
    At Fair: $4.50 (saves 0.90). The $4.50 left, at the reference (0.1/0.4): 0.1 + 0.04 =
    $0.14, saves 4.50 - 0.14 = 4.36. Input is 3.6/5.4 = 67% of the cost: no prompt waste."""
    result = run(
        [row("a/frontier", "Dear", 5.4, 1_000_000, 100_000, requests=2000)], frontier_book()
    )
    assert kinds(result) == [
        ("tier_down", "a/frontier", None, 4.36),
        ("overpaying_provider", "a/frontier", "Dear", 0.9),
    ]
    assert result.savings_total == pytest.approx(5.26)
    assert result.models[0].savings == pytest.approx(5.26)
    message = result.findings[0].message
    assert REF in message and "2,000 requests averaging 50 output tokens" in message
    assert "$4.50 left" in message


@pytest.mark.parametrize(
    ("requests", "completion", "found"),
    [
        (1000, 300_000, True),  # exactly at both thresholds
        (999, 100_000, False),  # too few requests
        (1000, 301_000, False),  # outputs too long
    ],
)
def test_tier_down_thresholds(requests: int, completion: int, found: bool) -> None:
    spend = per_m(3, 15).cost(1_000_000, completion)
    result = run(
        [row("a/frontier", "Fair", spend, 1_000_000, completion, requests)], frontier_book()
    )
    assert any(f.kind == "tier_down" for f in result.findings) is found


def test_no_tier_down_below_frontier_or_without_a_reference_price() -> None:
    mid = book(("a/mid", per_m(1, 2.5), {}), (REF, per_m(0.1, 0.4), {}))
    result = run([row("a/mid", "P", 3.5, 1_000_000, 100_000, 5000)], mid)
    assert not any(f.kind == "tier_down" for f in result.findings)
    prices = frontier_book()
    del prices[REF]
    result = run([row("a/frontier", "Fair", 4.5, 1_000_000, 100_000, 5000)], prices)
    assert not any(f.kind == "tier_down" for f in result.findings)
    assert any("has no known price" in n for n in result.notes)


def test_prompt_waste_hand_computed() -> None:
    """10M in, 100k out at 1/2 per M: $10.20, input 98% of it, $1.00 a day over ten days.
    Half the prompt: 5.0 + 0.2 = $5.20, saving $5.00 ($0.50 a day)."""
    prices = book(("a/m", per_m(1, 2), {}))
    result = run([row("a/m", "P", 10.2, 10_000_000, 100_000)], prices)
    assert kinds(result) == [("prompt_waste", "a/m", None, 5.0)]
    message = result.findings[0].message
    assert "98% of its cost" in message and "100:1" in message
    assert (
        "$1.00 a day" in message
        and "$0.50 a day" in message
        and "$5.00 over the 10 days" in message
    )


def test_no_prompt_waste_under_the_threshold() -> None:
    """Input 74% of the cost: 740k at 1/M against 130k at 2/M."""
    prices = book(("a/m", per_m(1, 2), {}))
    result = run([row("a/m", "P", 1.0, 740_000, 130_000)], prices)
    assert result.models[0].input_cost_share == pytest.approx(0.74)
    assert result.findings == ()


def test_caching_is_estimated_on_what_the_prompt_trim_left() -> None:
    """As above with cache reads at 0.1/M: after the trim $5.20 is left for 5M in; half of
    those from cache: 2.5 + 0.25 + 0.2 = $2.95, saving $2.25. Total 5.00 + 2.25."""
    prices = book(("a/m", per_m(1, 2, 0.1), {}))
    result = run([row("a/m", "P", 10.2, 10_000_000, 100_000)], prices)
    assert kinds(result) == [("prompt_waste", "a/m", None, 5.0), ("caching", "a/m", None, 2.25)]
    assert result.savings_total == pytest.approx(7.25)
    message = result.findings[1].message
    assert "no cached-token counts" in message and "inferred" in message


def test_caching_already_visible_in_the_spend_claims_nothing() -> None:
    """Spend 80% of the list price of its tokens: cached input (or a discount) in use."""
    prices = book(("a/m", per_m(1, 2, 0.1), {}))
    result = run([row("a/m", "P", 0.8, 500_000, 250_000)], prices)
    assert kinds(result) == [("caching", "a/m", None, 0.0)]
    assert "likely in use already" in result.findings[0].message


def test_no_caching_finding_without_cache_prices() -> None:
    prices = book(("a/m", per_m(1, 2), {"A": per_m(1, 2, 1.0)}))  # a "cache" no cheaper
    result = run([row("a/m", "A", 1.0, 500_000, 250_000)], prices)
    assert not any(f.kind == "caching" for f in result.findings)


def test_top_five_models_with_their_share() -> None:
    rows = [row(f"m/{i}", "P", float(i), 100, 100) for i in range(1, 8)]
    result = run(rows, {})
    assert [m.model for m in result.top] == ["m/7", "m/6", "m/5", "m/4", "m/3"]
    assert result.top[0].share == pytest.approx(7 / 28)
    assert [t["model"] for t in as_json(result)["top"]] == ["m/7", "m/6", "m/5", "m/4", "m/3"]


# -- renderings ----------------------------------------------------------------------------


def test_json_has_the_contract_s_fields() -> None:
    result = run(
        [row("a/frontier", "Dear", 5.4, 1_000_000, 100_000, requests=2000)], frontier_book()
    )
    data = json.loads(json.dumps(as_json(result)))
    assert data["period"] == {"start": "2026-11-01", "end": "2026-11-10", "days": 10}
    assert data["total_spend"] == 5.4
    assert set(data["models"][0]) >= {
        "model", "provider", "spend", "share", "requests", "prompt_tokens",
        "completion_tokens", "tier", "input_cost_share", "cheapest_provider",
        "cheapest_spend", "savings",
    }  # fmt: skip
    assert data["savings_total"] == pytest.approx(5.26)
    assert {f["kind"] for f in data["findings"]} == {"tier_down", "overpaying_provider"}
    assert set(data["findings"][0]) == {"kind", "model", "provider", "savings", "message"}
    assert data["prices_fetched_at"] == "2026-11-27T09:00:00+00:00"


def test_markdown_shows_the_period_the_top_models_the_savings_and_the_fetch_time() -> None:
    result = run(
        [row("a/frontier", "Dear", 5.4, 1_000_000, 100_000, requests=2000)], frontier_book()
    )
    text = markdown(result)
    assert "**Spend audit 2026-11-01 – 2026-11-10** (10 days, UTC): $5.40 spent" in text
    assert "| a/frontier | frontier | $5.40 | 100% | 67% |" in text
    assert "1. **$4.36** tier down, a/frontier:" in text
    assert "2. **$0.90** overpaying provider, a/frontier at Dear:" in text
    assert "_Prices fetched 2026-11-27 09:00 UTC._" in text
    assert "2. … 1 more" in markdown(result, findings=1)


def test_markdown_of_an_empty_period() -> None:
    text = markdown(run([], {}))
    assert "No activity in this period." in text and "No prices known" in text


# -- invariants ----------------------------------------------------------------------------

MODELS = ["a/one", "b/two", "c/three", REF]
PROVIDERS = ["P1", "P2", "P3", "Gone"]
prices_st = st.builds(
    Price,
    st.floats(0, 50e-6),
    st.floats(0, 100e-6),
    st.none() | st.floats(0, 50e-6),
)
rows_st = st.lists(
    st.builds(
        ActivityRow,
        st.dates(START, END),
        st.sampled_from(MODELS),
        st.sampled_from(PROVIDERS),
        st.floats(0, 1000),
        st.integers(0, 100_000),
        st.integers(0, 10**9),
        st.integers(0, 10**5) | st.integers(0, 10**8),  # short outputs too: tier-down
        st.floats(0, 100),
    ),
    max_size=30,
)
book_st = st.dictionaries(
    st.sampled_from(MODELS),
    st.tuples(
        st.none() | prices_st,
        st.dictionaries(st.sampled_from(PROVIDERS[:3]), prices_st, max_size=3),
    ),
).map(lambda d: book(*((m, listed, ends) for m, (listed, ends) in d.items())))
policy_st = st.builds(
    AuditPolicy,
    frontier_min=st.floats(0.5, 20),
    light_max=st.floats(0.01, 0.5),
    tier_down_min_requests=st.integers(0, 5000),
    tier_down_max_output=st.floats(0, 5000),
    prompt_waste_min_share=st.floats(0, 1),
)


@settings(max_examples=300, deadline=None)
@given(rows=rows_st, prices=book_st, policy=policy_st)
def test_savings_are_never_negative_nor_more_than_what_was_spent(
    rows: list[ActivityRow], prices: dict[str, ModelPrices], policy: AuditPolicy
) -> None:
    result = audit(rows, prices, policy, start=START, end=END)
    tolerance = 1e-9 * (1 + result.total_spend)
    spend = {m.model: m.spend for m in result.models}
    per_model: dict[str, float] = {}
    for f in result.findings:
        assert f.savings >= 0
        per_model[f.model] = per_model.get(f.model, 0.0) + f.savings
    for model, saved in per_model.items():
        assert saved <= spend[model] + tolerance, model
    for got in result.lines:
        assert 0 <= got.savings <= got.spend + tolerance
        if got.cheapest_spend is not None:
            assert 0 <= got.cheapest_spend <= got.spend + tolerance
    assert result.savings_total == pytest.approx(sum(f.savings for f in result.findings))
    assert result.savings_total <= sum(spend.values()) + tolerance
    assert result.total_spend == pytest.approx(sum(spend.values()))
    json.dumps(as_json(result))  # every value serialises
    markdown(result)
