"""The spend audit: where the money went over a period, and what the same work would have
cost done right — at the cheapest provider, on a mid-tier model, with a shorter prompt,
with cached input. Pure: activity rows and today's prices in, an `AuditResult` out, and
its JSON and Markdown forms (the digest reuses `markdown`; the terminal table is in
`watchdog.report`).

Every saving is an estimate for the same tokens at today's prices. The four kinds are
applied one after another to what each (model, provider) still costs — the provider
first, then the tier, then the prompt, then caching — each on what the ones before left,
so no dollar is saved twice and the total is their plain sum. Savings are scaled from the
actual spend by price ratios ("the same tokens at B's price cost 40% less than at A's"),
so per-request fees, discounts and BYOK estimates in the spend are neither counted as
savings nor lost; only where the provider used no longer lists the model is the spend
compared with the cheapest price directly.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

from watchdog.core.words import money, rounded, usd

Tier = Literal["frontier", "mid", "light", "unknown"]
FindingKind = Literal["overpaying_provider", "tier_down", "prompt_waste", "caching"]
KINDS: tuple[FindingKind, ...] = ("overpaying_provider", "tier_down", "prompt_waste", "caching")
PER_MILLION = 1_000_000
BASIS = "same tokens, at today's prices"


# -- inputs --------------------------------------------------------------------------------


class UsageRow(Protocol):
    """One day of one model at one provider, as the provider's activity reports it
    (`watchdog.providers.base.ActivityRow` is one). `spend` includes BYOK spend."""

    @property
    def date(self) -> dt.date: ...

    @property
    def model(self) -> str: ...

    @property
    def provider_name(self) -> str: ...

    @property
    def spend(self) -> float: ...

    @property
    def byok_usage(self) -> float: ...

    @property
    def requests(self) -> int: ...

    @property
    def prompt_tokens(self) -> int: ...

    @property
    def completion_tokens(self) -> int: ...


@dataclass(frozen=True)
class Price:
    """A price in USD per token: input (`prompt`), output (`completion`), and a cached
    input token read (`cache_read`) where the provider offers caching."""

    prompt: float
    completion: float
    cache_read: float | None = None

    def cost(self, prompt_tokens: float, completion_tokens: float) -> float:
        return prompt_tokens * self.prompt + completion_tokens * self.completion

    @property
    def output_per_million(self) -> float:
        return self.completion * PER_MILLION

    @property
    def free(self) -> bool:
        return self.prompt == 0 and self.completion == 0

    @property
    def offers_cache(self) -> bool:
        """A cache read costs less than a fresh input token."""
        return self.cache_read is not None and self.cache_read < self.prompt


@dataclass(frozen=True)
class Endpoint:
    """One provider's endpoint for a model and its price (`tag` tells apart several
    endpoints of one provider)."""

    provider: str
    price: Price
    tag: str = ""


@dataclass(frozen=True)
class ModelPrices:
    """What the price list says about a model when it was fetched: its listed price (GET
    /models; None when not listed or not priced) and each provider's endpoint (GET
    /models/{author}/{slug}/endpoints; empty when none are known)."""

    model: str
    fetched_at: dt.datetime
    listed: Price | None = None
    endpoints: tuple[Endpoint, ...] = ()


@dataclass(frozen=True)
class AuditPolicy:
    """The thresholds the audit judges by. The first three come from [audit]; the rest
    are the audit's stated rules (README, "Audit")."""

    frontier_min: float = 3.0  # USD per million output tokens: at or above, "frontier"
    light_max: float = 0.20  # below, "light"; between, "mid"
    reference_mid: str = "meta-llama/llama-3.3-70b-instruct"
    # Tier-down candidates: frontier models with many short outputs (classification,
    # extraction, formatting): at least this many requests in the period, averaging at
    # most this many output tokens each.
    tier_down_min_requests: int = 1000
    tier_down_max_output: float = 300.0
    # Prompt waste: input tokens cost at least this share of a model's spend.
    prompt_waste_min_share: float = 0.75
    prompt_trim: float = 0.5  # what trimming the prompt is priced at: half of it
    # Caching: spend under this share of the list price of its tokens shows that cached
    # input (or a discount) is already in use; otherwise a saving is estimated as if this
    # share of the input still paid were read from cache.
    cache_seen_below: float = 0.9
    cache_assumed: float = 0.5
    top: int = 5
    min_saving: float = 0.005  # findings under half a cent are left out


# -- results -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LineAudit:
    """One (model, provider) over the period. `savings` is what the cheapest current
    endpoint would have saved on the same tokens (`cheapest_spend` is what they would
    have cost there; None when it cannot be said). `priced` says how the line was priced:
    "endpoint" (the provider's own price), "gone" (the provider no longer lists the
    model: its listed price stands in), "listed" (no endpoints known), "none"."""

    model: str
    provider: str
    spend: float
    byok_spend: float
    share: float
    requests: int
    prompt_tokens: int
    completion_tokens: int
    tier: Tier
    output_price: float | None  # the model's, USD per million output tokens
    input_output_ratio: float | None
    input_cost_share: float | None
    cheapest_provider: str | None
    cheapest_spend: float | None
    savings: float
    priced: str


@dataclass(frozen=True)
class ModelAudit:
    """One model over all its providers; `savings` is every kind found for it."""

    model: str
    spend: float
    share: float
    requests: int
    prompt_tokens: int
    completion_tokens: int
    tier: Tier
    output_price: float | None
    input_output_ratio: float | None
    input_cost_share: float | None
    providers: tuple[str, ...]
    savings: float


@dataclass(frozen=True)
class AuditFinding:
    kind: FindingKind
    model: str
    provider: str | None
    savings: float
    message: str


@dataclass(frozen=True)
class AuditResult:
    start: dt.date
    end: dt.date
    total_spend: float
    byok_spend: float
    lines: tuple[LineAudit, ...]  # by spend, largest first
    models: tuple[ModelAudit, ...]  # by spend, largest first
    findings: tuple[AuditFinding, ...]  # by savings, largest first
    savings_total: float
    prices_fetched_at: dt.datetime | None
    reference_mid: str
    reference_price: Price | None
    notes: tuple[str, ...] = ()
    policy: AuditPolicy = field(default_factory=AuditPolicy)

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def top(self) -> tuple[ModelAudit, ...]:
        return self.models[: self.policy.top]


# -- the arithmetic ------------------------------------------------------------------------


def tier(output_per_million: float | None, policy: AuditPolicy) -> Tier:
    """Given a model's output price in USD per million tokens, its tier: "frontier" at or
    above `frontier_min`, "light" below `light_max`, "mid" between, "unknown" for None."""
    if output_per_million is None or not math.isfinite(output_per_million):
        return "unknown"
    if output_per_million >= policy.frontier_min:
        return "frontier"
    if output_per_million < policy.light_max:
        return "light"
    return "mid"


@dataclass
class _Totals:
    spend: float = 0.0
    byok: float = 0.0
    requests: int = 0
    prompt: int = 0
    completion: int = 0

    def add(self, row: UsageRow) -> None:
        self.spend += max(0.0, row.spend)
        self.byok += max(0.0, row.byok_usage)
        self.requests += max(0, row.requests)
        self.prompt += max(0, row.prompt_tokens)
        self.completion += max(0, row.completion_tokens)


@dataclass
class _Line:
    """A (model, provider) while the savings are applied: what it still costs
    (`remaining`), for how many input tokens, at which price (`price`, the basis of the
    next step's ratio)."""

    model: str
    provider: str
    totals: _Totals
    paid: Price | None  # what these tokens were paid at: the provider's price or the listed
    priced: str
    remaining: float
    prompt: float
    price: Price | None
    cheapest: Endpoint | None = None
    cheapest_spend: float | None = None
    provider_saving: float = 0.0

    @property
    def completion(self) -> int:
        return self.totals.completion

    def apply(
        self, new_price: Price | None = None, prompt: float | None = None, cached: float = 0.0
    ) -> float:
        """Move what is left to `new_price` (default: the same price), with `prompt` input
        tokens (default: the same), `cached` of them read from cache; return the saving:
        what is left, scaled by how much less the same tokens cost. Never negative, never
        more than what is left; nothing moves when it would not be cheaper."""
        new_price = new_price or self.price
        if self.price is None or new_price is None:
            return 0.0
        before = self.price.cost(self.prompt, self.completion)
        tokens = self.prompt if prompt is None else prompt
        after = new_price.cost(tokens - cached, self.completion)
        if cached:
            after += cached * (new_price.cache_read or new_price.prompt)
        if before <= 0 or not math.isfinite(before) or not math.isfinite(after):
            return 0.0
        if after >= before:
            return 0.0  # not cheaper: nothing moves, the basis stays
        saving = self.remaining * max(0.0, 1.0 - after / before)
        saving = min(saving, self.remaining)
        self.remaining -= saving
        self.price = new_price
        self.prompt = tokens
        return saving


def _matches(endpoint: Endpoint, provider: str) -> bool:
    return endpoint.provider.casefold() == provider.casefold()


def _price_line(line: _Line, prices: ModelPrices | None) -> None:
    """The provider step: the line's own price, the cheapest current endpoint for the same
    tokens, and the saving of moving there."""
    t = line.totals
    listed = prices.listed if prices else None
    endpoints = prices.endpoints if prices else ()
    own = [e for e in endpoints if _matches(e, line.provider)]
    own_price = min(
        (e.price for e in own), key=lambda p: p.cost(t.prompt, t.completion), default=None
    )
    if own_price is not None:
        line.paid, line.priced = own_price, "endpoint"
    elif endpoints:
        line.paid, line.priced = listed, "gone"
    elif listed is not None:
        line.paid, line.priced = listed, "listed"
    line.price = line.paid
    # Free endpoints are rate-limited stand-ins, not a place to move paid work to.
    candidates = [e for e in endpoints if not e.price.free]
    if not candidates or t.prompt + t.completion == 0:
        return  # nothing to compare: no endpoints, or no tokens to price (fees only)
    cheapest = min(
        candidates,
        key=lambda e: (
            e.price.cost(t.prompt, t.completion),
            not _matches(e, line.provider),  # a tie keeps the provider used
            e.provider.casefold(),
            e.tag,
        ),
    )
    line.cheapest = cheapest
    cheapest_cost = cheapest.price.cost(t.prompt, t.completion)
    if own_price is not None:
        own_cost = own_price.cost(t.prompt, t.completion)
        if own_cost <= 0 or _matches(cheapest, line.provider) or cheapest_cost >= own_cost:
            line.cheapest_spend = t.spend
            if own_cost > 0 and cheapest_cost >= own_cost:
                line.cheapest = next(e for e in own if e.price == own_price)
            return
        line.cheapest_spend = t.spend * cheapest_cost / own_cost
    else:
        # The provider used no longer serves the model: compare what was spent with the
        # cheapest price today directly (never more than was spent).
        line.cheapest_spend = min(t.spend, cheapest_cost)
    line.provider_saving = min(t.spend, max(0.0, t.spend - line.cheapest_spend))
    line.remaining -= line.provider_saving
    line.price = cheapest.price


def _model_output_price(prices: ModelPrices | None) -> float | None:
    if prices is None:
        return None
    if prices.listed is not None:
        return prices.listed.output_per_million
    paid = [e.price for e in prices.endpoints if not e.price.free]
    return min((p.output_per_million for p in paid), default=None)


def _reference(prices: Mapping[str, ModelPrices], model: str) -> Price | None:
    found = prices.get(model)
    if found is None:
        return None
    if found.listed is not None:
        return found.listed
    paid = [e.price for e in found.endpoints if not e.price.free]
    return min(paid, key=lambda p: p.cost(1, 1), default=None)


def _per_m(price: float) -> str:
    return f"${price * PER_MILLION:,.2f}/M"


def audit(
    rows: Iterable[UsageRow],
    prices: Mapping[str, ModelPrices],
    policy: AuditPolicy,
    *,
    start: dt.date,
    end: dt.date,
) -> AuditResult:
    """Given activity rows, today's prices by model id and the policy, return the audit of
    the rows dated `start` to `end` (inclusive). Rows outside the period are ignored;
    negative amounts count as 0. Models without prices are listed with tier "unknown" and
    no savings, and said so in `notes`."""
    days = max(1, (end - start).days + 1)
    by_line: dict[tuple[str, str], _Totals] = {}
    for row in rows:
        if start <= row.date <= end:
            by_line.setdefault((row.model, row.provider_name), _Totals()).add(row)
    total = sum(t.spend for t in by_line.values())

    def share(value: float) -> float:
        return value / total if total > 0 else 0.0

    lines: dict[str, list[_Line]] = {}
    for (model, provider), totals in by_line.items():
        line = _Line(model, provider, totals, None, "none", totals.spend, totals.prompt, None)
        _price_line(line, prices.get(model))
        lines.setdefault(model, []).append(line)

    reference = _reference(prices, policy.reference_mid)
    findings: list[AuditFinding] = []
    notes: list[str] = []
    model_audits: list[ModelAudit] = []
    line_audits: list[LineAudit] = []
    used_fetches: list[dt.datetime] = []
    for model, group in lines.items():
        known = prices.get(model)
        if known is not None:
            used_fetches.append(known.fetched_at)
        output_price = _model_output_price(known)
        model_tier = tier(output_price, policy)
        spend = sum(line.totals.spend for line in group)
        requests = sum(line.totals.requests for line in group)
        prompt = sum(line.totals.prompt for line in group)
        completion = sum(line.totals.completion for line in group)
        input_cost = sum(
            line.paid.prompt * line.totals.prompt for line in group if line.paid is not None
        )
        paid_cost = sum(
            line.paid.cost(line.totals.prompt, line.totals.completion)
            for line in group
            if line.paid is not None
        )
        input_share = input_cost / paid_cost if paid_cost > 0 else None
        if all(line.paid is None for line in group) and spend > 0:
            notes.append(
                f"{model}: no price known (not in the price list, no endpoints): no tier, "
                "no savings estimated"
            )
        for line in group:
            if line.provider_saving >= policy.min_saving and line.cheapest is not None:
                findings.append(_overpaying(line))
        _tier_down(group, model, model_tier, output_price, reference, policy, findings)
        _prompt_waste(group, model, input_share, days, policy, findings)
        _caching(group, model, known, policy, findings)
        model_audits.append(
            ModelAudit(
                model=model,
                spend=spend,
                share=share(spend),
                requests=requests,
                prompt_tokens=prompt,
                completion_tokens=completion,
                tier=model_tier,
                output_price=output_price,
                input_output_ratio=prompt / completion if completion else None,
                input_cost_share=input_share,
                providers=tuple(sorted(line.provider for line in group)),
                savings=0.0,  # the findings kept, below
            )
        )
        for line in group:
            t = line.totals
            cost = line.paid.cost(t.prompt, t.completion) if line.paid else 0.0
            line_audits.append(
                LineAudit(
                    model=model,
                    provider=line.provider,
                    spend=t.spend,
                    byok_spend=t.byok,
                    share=share(t.spend),
                    requests=t.requests,
                    prompt_tokens=t.prompt,
                    completion_tokens=t.completion,
                    tier=model_tier,
                    output_price=output_price,
                    input_output_ratio=t.prompt / t.completion if t.completion else None,
                    input_cost_share=(
                        line.paid.prompt * t.prompt / cost if line.paid and cost > 0 else None
                    ),
                    cheapest_provider=line.cheapest.provider if line.cheapest else None,
                    cheapest_spend=line.cheapest_spend,
                    savings=line.provider_saving,
                    priced=line.priced,
                )
            )
    if reference is None and any(m.tier == "frontier" for m in model_audits):
        notes.append(
            f"the reference model {policy.reference_mid} (audit.reference_mid) has no known "
            "price: no tier-down estimates"
        )
    kept = [f for f in findings if f.savings >= policy.min_saving or f.kind == "caching"]
    kept.sort(key=lambda f: (-f.savings, KINDS.index(f.kind), f.model, f.provider or ""))
    saved: dict[str, float] = {}
    for finding in kept:
        saved[finding.model] = saved.get(finding.model, 0.0) + finding.savings
    model_audits = [replace(m, savings=saved.get(m.model, 0.0)) for m in model_audits]
    return AuditResult(
        start=start,
        end=end,
        total_spend=total,
        byok_spend=sum(t.byok for t in by_line.values()),
        lines=tuple(sorted(line_audits, key=lambda a: (-a.spend, a.model, a.provider))),
        models=tuple(sorted(model_audits, key=lambda m: (-m.spend, m.model))),
        findings=tuple(kept),
        savings_total=sum(f.savings for f in kept),
        prices_fetched_at=min(used_fetches, default=None),
        reference_mid=policy.reference_mid,
        reference_price=reference,
        notes=tuple(notes),
        policy=policy,
    )


def _overpaying(line: _Line) -> AuditFinding:
    assert line.cheapest is not None and line.cheapest_spend is not None
    t = line.totals
    if line.priced == "endpoint":
        how = (
            f"{line.provider} served {line.model} for {usd(t.spend)}; at "
            f"{line.cheapest.provider}'s price the same tokens would have cost "
            f"{usd(line.cheapest_spend)}"
        )
    else:
        how = (
            f"{line.provider} no longer lists {line.model} (spent there: {usd(t.spend)}); "
            f"the same tokens at {line.cheapest.provider}'s price cost "
            f"{usd(line.cheapest_spend)}"
        )
    byok = " (BYOK spend included: with your own key that provider's bill is yours)"
    return AuditFinding(
        "overpaying_provider",
        line.model,
        line.provider,
        line.provider_saving,
        f'{how}: {usd(line.provider_saving)} less ({BASIS}; `provider.sort = "price"` '
        f"routes there){byok if t.byok > 0 else ''}.",
    )


def _tier_down(
    group: list[_Line],
    model: str,
    model_tier: Tier,
    output_price: float | None,
    reference: Price | None,
    policy: AuditPolicy,
    findings: list[AuditFinding],
) -> float:
    if model_tier != "frontier" or reference is None or model == policy.reference_mid:
        return 0.0
    requests = sum(line.totals.requests for line in group)
    completion = sum(line.totals.completion for line in group)
    if requests < policy.tier_down_min_requests or requests == 0:
        return 0.0
    per_request = completion / requests
    if per_request > policy.tier_down_max_output:
        return 0.0
    left = sum(line.remaining for line in group)
    saving = sum(line.apply(reference) for line in group)
    if saving <= 0:
        return 0.0
    price = f"${output_price:,.2f}/M output" if output_price is not None else "frontier"
    findings.append(
        AuditFinding(
            "tier_down",
            model,
            None,
            saving,
            f"{model} ({price}) ran {requests:,} requests averaging {per_request:,.0f} output "
            "tokens: short outputs (classification, extraction, formatting) that a mid-tier "
            f"model may handle. At {policy.reference_mid}'s price ({_per_m(reference.prompt)} "
            f"in, {_per_m(reference.completion)} out) the same tokens would save "
            f"{usd(saving)} of the {usd(left)} left after any provider saving ({BASIS}; "
            "check the quality on a sample first).",
        )
    )
    return saving


def _prompt_waste(
    group: list[_Line],
    model: str,
    input_share: float | None,
    days: int,
    policy: AuditPolicy,
    findings: list[AuditFinding],
) -> float:
    if input_share is None or input_share < policy.prompt_waste_min_share:
        return 0.0
    keep = 1.0 - policy.prompt_trim
    saving = sum(line.apply(prompt=line.prompt * keep) for line in group)
    if saving <= 0:
        return 0.0
    spend = sum(line.totals.spend for line in group)
    prompt = sum(line.totals.prompt for line in group)
    completion = sum(line.totals.completion for line in group)
    ratio = f"{prompt / completion:,.0f}:1" if completion else "all input"
    findings.append(
        AuditFinding(
            "prompt_waste",
            model,
            None,
            saving,
            f"{model}: input tokens are {input_share:.0%} of its cost ({ratio} input:output), "
            f"{usd(spend * input_share / days)} a day. Trimming {policy.prompt_trim:.0%} of "
            f"the prompt (system prompt, examples, history) would save about "
            f"{usd(saving / days)} a day, {usd(saving)} over the {days} days (the same "
            "requests with that much less input, at today's prices, after the savings above).",
        )
    )
    return saving


def _caching(
    group: list[_Line],
    model: str,
    known: ModelPrices | None,
    policy: AuditPolicy,
    findings: list[AuditFinding],
) -> float:
    if known is None:
        return 0.0
    offered = [p for p in (known.listed, *(e.price for e in known.endpoints)) if p is not None]
    cached = [p for p in offered if p.offers_cache]
    if not cached or sum(line.totals.spend for line in group) <= 0:
        return 0.0
    listed_cost = sum(
        line.paid.cost(line.totals.prompt, line.totals.completion)
        for line in group
        if line.paid is not None
    )
    spent = sum(line.totals.spend for line in group if line.paid is not None)
    cheapest_read = min(cached, key=lambda p: (p.cache_read or 0) / p.prompt)
    offer = (
        f"{model}'s pricing offers cache reads ({_per_m(cheapest_read.cache_read or 0)} "
        f"instead of {_per_m(cheapest_read.prompt)} per input token)"
    )
    unseen = "activity reports no cached-token counts"
    if listed_cost <= 0:
        findings.append(
            AuditFinding(
                "caching",
                model,
                None,
                0.0,
                f"{offer}; {unseen} and its tokens cannot be priced, so the data cannot tell "
                "whether any input was read from cache: no saving estimated.",
            )
        )
        return 0.0
    paid_share = spent / listed_cost
    if paid_share < policy.cache_seen_below:
        findings.append(
            AuditFinding(
                "caching",
                model,
                None,
                0.0,
                f"{offer}. Its spend is {1 - paid_share:.0%} below the list price of its tokens, "
                f"so cached input (or a discount) is likely in use already; {unseen}, so it "
                "cannot say how much: no saving estimated.",
            )
        )
        return 0.0
    share = policy.cache_assumed
    seen = (
        f"{offer}. Its spend is {paid_share:.0%} of the list price of its tokens, so little or "
        f"no input was read from cache ({unseen}, so this is inferred)"
    )
    caching = [line for line in group if line.price is not None and line.price.offers_cache]
    if not caching:
        findings.append(
            AuditFinding(
                "caching",
                model,
                None,
                0.0,
                f"{seen}. What is left after the savings above is priced where no cache "
                "reads are offered (the cheaper provider or model), so no further saving is "
                "estimated.",
            )
        )
        return 0.0
    saving = sum(line.apply(cached=line.prompt * share) for line in caching)
    findings.append(
        AuditFinding(
            "caching",
            model,
            None,
            saving,
            f"{seen}. If {share:.0%} of the input still paid for were read from cache, it "
            f"would save about {usd(saving)} ({BASIS}, an assumption about how much of the "
            "prompt repeats, after the savings above).",
        )
    )
    return saving


# -- renderings ----------------------------------------------------------------------------


def _price_json(price: Price | None) -> dict[str, float | None] | None:
    if price is None:
        return None
    return {
        "prompt_per_million": rounded(price.prompt * PER_MILLION, 6),
        "completion_per_million": rounded(price.completion * PER_MILLION, 6),
        "cache_read_per_million": (
            None if price.cache_read is None else rounded(price.cache_read * PER_MILLION, 6)
        ),
    }


def as_json(result: AuditResult) -> dict[str, Any]:
    """The audit for `audit --json`: amounts in USD (4 decimals), shares 0..1, prices per
    million tokens. `models` is one entry per (model, provider); `by_model` sums them."""
    p = result.policy
    return {
        "period": {
            "start": result.start.isoformat(),
            "end": result.end.isoformat(),
            "days": result.days,
        },
        "total_spend": money(result.total_spend),
        "byok_spend": money(result.byok_spend),
        "models": [
            {
                "model": line.model,
                "provider": line.provider,
                "spend": money(line.spend),
                "byok_spend": money(line.byok_spend),
                "share": rounded(line.share, 4),
                "requests": line.requests,
                "prompt_tokens": line.prompt_tokens,
                "completion_tokens": line.completion_tokens,
                "tier": line.tier,
                "output_price_per_million": rounded(line.output_price, 6),
                "input_output_ratio": rounded(line.input_output_ratio, 2),
                "input_cost_share": rounded(line.input_cost_share, 4),
                "cheapest_provider": line.cheapest_provider,
                "cheapest_spend": money(line.cheapest_spend),
                "savings": money(line.savings),
                "priced": line.priced,
            }
            for line in result.lines
        ],
        "by_model": [
            {
                "model": m.model,
                "spend": money(m.spend),
                "share": rounded(m.share, 4),
                "requests": m.requests,
                "prompt_tokens": m.prompt_tokens,
                "completion_tokens": m.completion_tokens,
                "tier": m.tier,
                "output_price_per_million": rounded(m.output_price, 6),
                "input_output_ratio": rounded(m.input_output_ratio, 2),
                "input_cost_share": rounded(m.input_cost_share, 4),
                "providers": list(m.providers),
                "savings": money(m.savings),
            }
            for m in result.models
        ],
        "top": [
            {"model": m.model, "spend": money(m.spend), "share": rounded(m.share, 4)}
            for m in result.top
        ],
        "savings_total": money(result.savings_total),
        "findings": [
            {
                "kind": f.kind,
                "model": f.model,
                "provider": f.provider,
                "savings": money(f.savings),
                "message": f.message,
            }
            for f in result.findings
        ],
        "prices_fetched_at": (
            result.prices_fetched_at.isoformat(timespec="seconds")
            if result.prices_fetched_at
            else None
        ),
        "reference_mid": {
            "model": result.reference_mid,
            "price": _price_json(result.reference_price),
        },
        "thresholds": {
            "frontier_min": p.frontier_min,
            "light_max": p.light_max,
            "tier_down_min_requests": p.tier_down_min_requests,
            "tier_down_max_output_per_request": p.tier_down_max_output,
            "prompt_waste_min_input_share": p.prompt_waste_min_share,
            "prompt_trim": p.prompt_trim,
            "cache_seen_below": p.cache_seen_below,
            "cache_assumed": p.cache_assumed,
        },
        "notes": list(result.notes),
    }


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown(result: AuditResult, *, findings: int | None = None) -> str:
    """The audit as Markdown (the digest embeds it): the period's spend, the top models
    with their share, tier and input share, the savings found (the first `findings`,
    largest first, or all), and when the prices were fetched."""
    lines = [
        f"**Spend audit {result.start:%Y-%m-%d} – {result.end:%Y-%m-%d}** "
        f"({result.days} days, UTC): {usd(result.total_spend)} spent"
        + (f", {usd(result.byok_spend)} of it BYOK" if result.byok_spend > 0 else "")
        + f"; possible savings **{usd(result.savings_total)}** (estimates, {BASIS}).",
        "",
    ]
    if result.models:
        lines += [
            "| model | tier | spend | share | input share of cost |",
            "|---|---|---:|---:|---:|",
        ]
        for m in result.top:
            input_share = "–" if m.input_cost_share is None else f"{m.input_cost_share:.0%}"
            lines.append(
                f"| {_cell(m.model)} | {m.tier} | {usd(m.spend)} | {m.share:.0%} | {input_share} |"
            )
        if len(result.models) > len(result.top):
            rest = sum(m.spend for m in result.models[len(result.top) :])
            lines.append(f"| … {len(result.models) - len(result.top)} more | | {usd(rest)} | | |")
        lines.append("")
    else:
        lines += ["No activity in this period.", ""]
    shown = result.findings if findings is None else result.findings[:findings]
    if shown:
        lines.append("Savings found:")
        lines.append("")
        for number, f in enumerate(shown, start=1):
            where = f"{f.model} at {f.provider}" if f.provider else f.model
            lines.append(
                f"{number}. **{usd(f.savings)}** {f.kind.replace('_', ' ')}, {_cell(where)}: "
                f"{f.message}"
            )
        if len(result.findings) > len(shown):
            lines.append(f"{len(shown) + 1}. … {len(result.findings) - len(shown)} more")
        lines.append("")
    for note in result.notes:
        lines.append(f"_Note: {note}_")
    fetched = result.prices_fetched_at
    lines.append(
        f"_Prices fetched {fetched:%Y-%m-%d %H:%M} UTC._"
        if fetched
        else "_No prices known: no savings estimated._"
    )
    return "\n".join(lines).rstrip() + "\n"
