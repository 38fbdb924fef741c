"""The domain model's own rules: what counts as balance, how polling health moves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watchdog.core.model import Credits, KeyUsage, PollHealth, Snapshot

T0 = datetime(2026, 11, 27, 9, tzinfo=UTC)


@pytest.mark.parametrize("reset", ["daily", "weekly", "monthly"])
def test_a_resetting_key_limit_is_a_budget_not_credit(reset: str) -> None:
    key = KeyUsage(usage=5.0, limit=2.0, limit_remaining=1.6, limit_reset=reset)
    snap = Snapshot(T0, key=key, credits=Credits(total_credits=1000.0, total_usage=10.0))
    assert snap.balance == 990.0
    assert Snapshot(T0, key=key).balance is None
    assert snap.to_sample().key_limit_remaining == 1.6  # still there for the key_limit rule


def test_a_key_limit_that_never_resets_bounds_the_balance() -> None:
    key = KeyUsage(usage=5.0, limit=50.0, limit_remaining=45.0, limit_reset=None)
    snap = Snapshot(T0, key=key, credits=Credits(total_credits=1000.0, total_usage=10.0))
    assert snap.balance == 45.0  # the tighter one counts


def test_poll_health_counts_failures_by_kind_and_clears_on_success() -> None:
    poll = PollHealth(started_at=T0)
    poll = poll.failed(T0, "transient", "HTTP 502")
    poll = poll.failed(T0 + timedelta(seconds=60), "auth", "HTTP 401", auth=True, retry_after=30)
    assert dict(poll.errors_by_kind) == {"transient": 1, "auth": 1}
    assert poll.consecutive_failures == 2 and poll.auth_error == "HTTP 401"
    assert poll.not_before == T0 + timedelta(seconds=90)
    ok = poll.succeeded(T0 + timedelta(seconds=120))
    assert ok.consecutive_failures == 0 and ok.auth_error is None and ok.not_before is None
    assert ok.last_error == "HTTP 401"  # the last error stays on show
    assert ok.data_age(T0 + timedelta(seconds=150)) == 30.0
    assert ok.fresh(T0 + timedelta(seconds=150), timedelta(seconds=30))
    assert not ok.fresh(T0 + timedelta(seconds=151), timedelta(seconds=30))


_maybe = st.one_of(st.none(), st.floats(0, 1e6, allow_nan=False))


@given(
    st.lists(
        st.tuples(st.floats(0, 1e6, allow_nan=False), _maybe, _maybe, _maybe, _maybe, _maybe),
        max_size=8,
    )
)
def test_the_accounts_sample_sums_each_window_over_its_keys(
    rows: list[tuple[float, float | None, float | None, float | None, float | None, float | None]],
) -> None:
    """Without a watched key, each window and BYOK counter is the sum over the keys in
    their order, or unknown (None) when any key's is — never a partial sum read lower."""
    keys = tuple(
        KeyUsage(
            usage=u,
            usage_daily=d,
            usage_weekly=w,
            usage_monthly=m,
            byok_usage=b,
            byok_usage_daily=bd,
            name=f"k{n}",
            hash=f"{n:064x}",
        )
        for n, (u, d, w, m, b, bd) in enumerate(rows)
    )
    sample = Snapshot(T0, credits=Credits(10.0, 1.0), keys=keys).to_sample()

    def total(values: list[float | None]) -> float | None:
        return None if not values or None in values else sum(v for v in values if v is not None)

    assert sample.usage_daily == total([k.usage_daily for k in keys])
    assert sample.usage_weekly == total([k.usage_weekly for k in keys])
    assert sample.usage_monthly == total([k.usage_monthly for k in keys])
    assert sample.byok_usage == total([k.byok_usage for k in keys])
    assert sample.byok_usage_daily == total([k.byok_usage_daily for k in keys])
    assert sample.byok_usage_monthly is None  # no key lists it here
