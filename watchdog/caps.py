"""`budget-watchdog caps` and the daemon's caps chore: read every key, its activity and the
workspaces' budgets from the provider, let `watchdog.core.caps` decide, then (with
--apply, or as the chore) set the limits at the provider and record each change in the
state file's cap audit.

Changes are made one at a time, each recorded right after the provider accepted it, so
the audit says which limits are ours even when a later one fails; a change that could not
be recorded stops the rest (an unrecorded cap would read as hand-set next time).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from watchdog.core import caps
from watchdog.providers.base import BUDGET_INTERVALS, ProviderError

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Sequence

    from watchdog.core.model import CapChange, Policy
    from watchdog.providers.base import AccountAdmin
    from watchdog.store import Store

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
DAEMON = "daemon"
# The audit rows read to tell our limits from hand-set ones (the latest row per hash
# counts); far more than an account's keys times the changes a key sees in a while.
CAP_LOG_ROWS = 100_000
_Plan = TypeVar("_Plan", caps.KeyPlan, caps.WorkspacePlan)


# -- gather, decide, apply -----------------------------------------------------------------


def survey(
    admin: AccountAdmin,
    policy: Policy,
    log: Sequence[CapChange],
    now: datetime,
    *,
    allow_raise: bool = False,
) -> caps.Survey:
    """Read every key of the watched workspaces, each enabled key's activity and each
    workspace's budgets; return the plan for each. Raise ProviderError when the keys cannot
    be listed; a key's activity or a workspace's budgets that cannot be read make that row
    an error, the rest is still planned."""
    keys = admin.list_keys()
    today = now.astimezone(UTC).date()
    latest = caps.latest_changes(log)
    plans = []
    for key in keys:
        found, problem = None, None
        if key.hash and not key.disabled:
            try:
                rows = admin.activity(api_key_hash=key.hash)
            except ProviderError as exc:
                problem = f"activity unavailable: {exc.message}"
            else:
                found = caps.estimate(
                    caps.daily_spend(rows, today, with_byok=key.include_byok_in_limit is True)
                )
        plans.append(
            caps.plan_key(
                key,
                found,
                policy.caps,
                policy.budget,
                latest.get(key.hash or ""),
                allow_raise=allow_raise,
                problem=problem,
            )
        )
    result = caps.Survey(
        at=now,
        caps=policy.caps,
        monthly_limit=policy.budget.monthly_limit,
        allow_raise=allow_raise,
        keys=tuple(plans),
    )
    # The workspaces that have keys among the watched ones (a workspace without keys
    # spends nothing), in the order their keys were listed.
    ids = list(dict.fromkeys(k.workspace_id for k in keys if k.workspace_id))
    if not ids:
        return result
    try:
        known = {w.id: w for w in admin.workspaces()}
    except ProviderError as exc:
        return replace(result, errors=(f"workspaces unavailable: {exc.message}",))
    workspaces = []
    for workspace_id in ids:
        listed = known.get(workspace_id)
        slug, name = (listed.slug, listed.name) if listed else (workspace_id, workspace_id)
        monthly = [k.usage_monthly for k in keys if k.workspace_id == workspace_id]
        spent = None if None in monthly else sum(m for m in monthly if m is not None)
        try:
            budgets = _budgets(admin, workspace_id)
        except ProviderError as exc:
            workspaces.append(
                caps.WorkspacePlan(
                    id=workspace_id,
                    slug=slug,
                    name=name,
                    spent_month=spent,
                    proposed=policy.budget.monthly_limit,
                    budgets={},
                    change="error",
                    reason=f"budgets unavailable: {exc.message}",
                )
            )
            continue
        workspaces.append(
            caps.plan_workspace(
                workspace_id,
                slug,
                name,
                policy.budget.monthly_limit,
                budgets,
                spent,
                latest.get(f"{caps.WORKSPACE_PREFIX}{workspace_id}"),
                allow_raise=allow_raise,
            )
        )
    return replace(result, workspaces=tuple(workspaces))


def _budgets(admin: AccountAdmin, workspace_id: str) -> dict[str, float]:
    found = {}
    for interval in BUDGET_INTERVALS:
        budget = admin.workspace_budget(workspace_id, interval)
        if budget is not None:
            found[interval] = budget.limit_usd
    return found


def apply(
    planned: caps.Survey, admin: AccountAdmin, store: Store, actor: str, now: datetime
) -> caps.Survey:
    """Make every change the survey plans (a key's limit: PATCH {"limit", "limit_reset":
    "daily"}; a workspace's monthly budget: PUT {"limit_usd"}), recording each in the cap
    audit as `actor` once the provider accepted it. A provider error marks that row and
    the rest go on; an audit that cannot be written marks that row and stops the rest.
    Return the survey with each row's outcome."""
    import sqlite3

    from watchdog.store import StoreError

    stopped: str | None = None

    def one(plan: _Plan) -> _Plan:
        nonlocal stopped
        if not plan.applies or plan.proposed is None:
            return plan
        if stopped is not None:
            return replace(plan, error=stopped)
        try:
            if isinstance(plan, caps.KeyPlan):
                admin.update_key_limit(plan.hash, plan.proposed, caps.KEY_RESET)
            else:
                admin.set_workspace_budget(plan.id, caps.WORKSPACE_INTERVAL, plan.proposed)
        except ProviderError as exc:
            return replace(plan, error=exc.message)
        except ValueError as exc:  # a value the provider would refuse: not sent
            return replace(plan, error=str(exc))
        try:
            with store.unit() as unit:
                unit.audit_cap(caps.change_record(plan, now, actor, planned))
        except (StoreError, sqlite3.Error, OSError) as exc:
            stopped = "not applied: the cap audit could not be written"
            return replace(
                plan, applied=True, error=f"applied, but not recorded in the cap audit: {exc}"
            )
        return replace(plan, applied=True)

    keys = tuple(one(plan) for plan in planned.keys)
    workspaces = tuple(one(plan) for plan in planned.workspaces)
    return replace(planned, keys=keys, workspaces=workspaces, dry_run=False)


# -- the daemon's chore --------------------------------------------------------------------


@dataclass(frozen=True)
class CapsRun:
    """What one run of the chore did, one line each: the `changes` made, the `refusals`
    and the `errors` (the provider's or the audit's); `skipped` when it did not run."""

    changes: tuple[str, ...] = ()
    refusals: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    skipped: str | None = None
    result: caps.Survey | None = None


def manage(
    policy: Policy,
    admin: AccountAdmin,
    store: Store,
    clock: Callable[[], datetime],
    log: Any,
) -> CapsRun:
    """`caps --apply` without --raise, as the daemon's chore every caps.every (when
    caps.manage is on): plan, apply as "daemon", log one line per change, refusal and
    error, and return them. Never raises for the provider or the state file: failures
    are returned (and logged)."""
    import sqlite3

    from watchdog.store import StoreError

    if not policy.caps.manage:
        return CapsRun(skipped="caps.manage is off")
    now = clock()
    try:
        planned = survey(admin, policy, store.cap_log(CAP_LOG_ROWS), now)
    except ProviderError as exc:
        error = f"cannot list the account's keys: {exc.message}"
        log.warning("caps_failed", error=error)
        return CapsRun(errors=(error,))
    except (StoreError, sqlite3.Error, OSError) as exc:
        error = f"cannot read the cap audit: {exc}"
        log.warning("caps_failed", error=error)
        return CapsRun(errors=(error,))
    done = apply(planned, admin, store, DAEMON, now)
    run = summarize(done)
    for line in run.changes:
        log.info("cap_changed", detail=line)
    for line in run.refusals:
        log.info("cap_refused", detail=line)
    for line in run.errors:
        log.warning("cap_failed", detail=line)
    return run


def summarize(done: caps.Survey) -> CapsRun:
    """A survey's outcome as lines: changes made, refusals, errors."""
    rows = done.rows
    return CapsRun(
        changes=tuple(caps.describe(p) for p in rows if p.applied),
        refusals=tuple(caps.describe(p) for p in rows if p.change == "refused"),
        errors=tuple(
            f"{caps.describe(p)}: {p.error}" if p.error else caps.describe(p)
            for p in rows
            if p.error or p.change == "error"
        )
        + done.errors,
        result=done,
    )


# -- the command ---------------------------------------------------------------------------


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `caps` to the CLI's sub-commands (its handler: `command`)."""
    parser = sub.add_parser(
        "caps",
        help="provider-side daily caps per key (dry run unless --apply)",
        description="Propose a daily limit for every key of the account: factor × its "
        "expected daily spend (the 95th percentile of its spend per UTC day over the last "
        "30 completed days), rounded up to the cent, at least caps.min_daily, or its "
        "[[budget.keys]] daily_limit; and each workspace's monthly "
        "budget = [budget] monthly_limit. Nothing changes without --apply. Never sets a "
        "limit at or below what was already spent in its period, and never raises a "
        "hand-set lower limit (or replaces one of another period) without --raise. Needs "
        "a management key.",
    )
    parser.add_argument(
        "--config", metavar="PATH", help="TOML config file (default: $WATCHDOG_CONFIG)"
    )
    parser.add_argument(
        "--factor",
        type=_factor,
        default=None,
        metavar="F",
        help="daily cap = F × expected daily spend (default: caps.factor)",
    )
    parser.add_argument("--apply", action="store_true", help="set the proposed limits and budgets")
    parser.add_argument(
        "--raise",
        dest="allow_raise",
        action="store_true",
        help="also raise hand-set lower limits and replace hand-set weekly, monthly or "
        "lifetime ones",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.set_defaults(func=command)


def _factor(text: str) -> float:
    import argparse

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError(
            "must be from 1 to 100 (a cap below the expected spend would stop normal use)"
        )
    return value


def command(ns: argparse.Namespace) -> int:
    """`budget-watchdog caps`: print the plan (--json: as JSON); with --apply, make it and
    record it. Exit 0 when everything asked was done (refusals included), 1 when the
    provider or the state file failed, 2 for a config error or no management key."""
    import contextlib
    import json
    import sqlite3

    from watchdog import config
    from watchdog.actor import cli_actor
    from watchdog.providers.openrouter import OpenRouterProvider
    from watchdog.store import Store, StoreError

    try:
        loaded = config.load(config.config_path(ns.config), require_key=False)
    except config.ConfigError as exc:
        return _fail(exc.report(), EXIT_USAGE)
    settings = loaded.settings
    for warning in loaded.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    p = settings.provider
    if p.management_key is None:
        return _fail(
            "error: caps reads every key and sets their limits, which needs a management "
            "key (provider.management_key_file or OPENROUTER_MANAGEMENT_KEY)",
            EXIT_USAGE,
        )
    policy = settings.policy()
    if ns.factor is not None:
        policy = replace(policy, caps=replace(policy.caps, factor=ns.factor))
    now = datetime.now(UTC)
    path = settings.state.path
    with contextlib.ExitStack() as stack:
        # The cap audit tells our limits from hand-set ones, and --apply records in it. It
        # is the daemon's state file: never created here (it would be this user's).
        store: Store | None = None
        history: list[CapChange] = []
        try:
            if settings.state.shared:
                store = stack.enter_context(Store.open(settings.state.target))
                history = store.cap_log(CAP_LOG_ROWS)
            elif path.exists():
                store = stack.enter_context(Store(path))
                history = store.cap_log(CAP_LOG_ROWS)
        except (StoreError, sqlite3.Error, OSError) as exc:
            return _fail(f"error: cannot use the state {settings.state.shown}: {exc}", EXIT_FAIL)
        if store is None:
            if ns.apply:
                return _fail(
                    f"error: no state at {path}: --apply records every change in the "
                    "daemon's state file; has the daemon run with this config?",
                    EXIT_FAIL,
                )
            print(
                f"warning: no state at {path}: no cap audit, so every existing limit "
                "counts as hand-set",
                file=sys.stderr,
            )
        provider = OpenRouterProvider.from_config(p, watched=False)
        stack.callback(provider.close)
        try:
            planned = survey(provider, policy, history, now, allow_raise=ns.allow_raise)
        except ProviderError as exc:
            return _fail(f"error: cannot list the account's keys: {exc.message}", EXIT_FAIL)
        if ns.apply and store is not None:
            planned = apply(planned, provider, store, cli_actor(), now)
    if ns.json:
        print(json.dumps(caps.as_json(planned), indent=2))
    else:
        sys.stdout.write(caps.render(planned))
    return EXIT_FAIL if planned.failed else EXIT_OK


def _fail(message: str, code: int) -> int:
    print(message, file=sys.stderr)
    return code
