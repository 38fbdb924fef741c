"""The status view rebuilt from the state file, for `status` when the daemon is down.

The numbers are measured from the stored samples, the findings are the alerts as last
persisted, and the permit is what a job would find on disk now.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from watchdog.config import Settings
from watchdog.core import alerts, burn, rules, view
from watchdog.core.decide import HORIZON_FACTOR
from watchdog.core.model import PollHealth
from watchdog.core.permit import Decision
from watchdog.gate import check
from watchdog.notify import target_id
from watchdog.store import Store


def status_from_store(store: Store, settings: Settings, now: datetime) -> dict[str, Any]:
    """Given the state file, the config and the time, return a /status body: one coherent
    picture, judged now (the rules re-run on the stored samples, so the state agrees with
    the numbers; data as old as the last poll is stale, and says so)."""
    policy = settings.policy()
    since = burn.samples_needed_since(now, policy.budget.tz)
    history = burn.history_from(store.history(since), now)
    metrics = burn.measure(history, now, policy.budget.tz)
    error, kind, at = store.poll_error()
    last = store.last_sample()
    poll = PollHealth(
        started_at=last.ts if last else now,
        last_success=last.ts if last else None,
        last_error=error,
        last_error_kind=kind,
        last_error_at=at,
    )
    held = alerts.firing(store.load_alerts())
    findings = rules.evaluate(
        metrics, policy.budget, poll, horizon=policy.poll_interval * HORIZON_FACTOR, held=held
    )
    # Whatever the state file says, the permit is what a job would find now.
    verdict = check(
        permit=str(settings.killswitch.path),
        now=now.timestamp(),
        ttl_s=settings.killswitch.ttl.total_seconds(),
    )
    health = store.target_health()
    targets = [
        view.TargetView(ident, f"target {ident}", tuple(t.severities), health[ident])
        for t in settings.notify.targets
        if (ident := target_id(t.url.get_secret_value())) in health
    ]
    built = view.build(
        now=now,
        budget=policy.budget,
        metrics=metrics,
        findings=findings,
        decision=Decision(verdict.go, "; ".join(verdict.reasons)),
        poll=poll,
        key_name=store.watched_key().name,
        scope="key",
        silences=store.silences(now),
        targets=targets,
        permit_history=store.audit_log(10),
        stale_revokes=policy.killswitch.on_stale == "revoke",
    )
    return built.to_json(now)
