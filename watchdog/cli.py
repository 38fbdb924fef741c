"""The command line, and the composition root: it loads the config, builds the objects
and hands them to the daemon or to the command at hand.

Imports happen inside the commands, so each loads only what it needs (`gate` never gets
here: `watchdog.entry` dispatches it first).
Exit codes: 0 success, 1 failure (or no-go for gate), 2 usage or config error.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager as _contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Iterator
    from datetime import datetime, timedelta
    from typing import Any

    from watchdog.config import Loaded, Settings
    from watchdog.control import DaemonClient
    from watchdog.courier import CourierOutbox, Inspector
    from watchdog.digester import Digester
    from watchdog.leader import Leadership
    from watchdog.notify import Target
    from watchdog.providers.base import Provider
    from watchdog.store import Store, Unit

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
# `status` when no daemon answers (the state file's picture is shown): LSB's "not running".
EXIT_NOT_RUNNING = 3
# How often the daemon refreshes its cache of the provider's price list: as often as a
# cached price stays fresh, so the digest composed in a tick finds them without fetching.
PRICES_EVERY_S = 3600.0


class CommandError(Exception):
    """A command cannot do what was asked: `main` prints the message, exits with `code`."""

    def __init__(self, message: str, code: int = EXIT_FAIL) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def main(argv: list[str] | None = None) -> int:
    """Entry point of `budget-watchdog` and `python -m watchdog`; returns the exit code."""
    args = sys.argv[1:] if argv is None else argv
    parser = _parser()
    ns = parser.parse_args(args)
    if not getattr(ns, "command", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        code: int = ns.func(ns)
    except CommandError as exc:
        print(exc.message, file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
    return code


# -- parser ------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    import argparse

    from watchdog import __version__

    parser = argparse.ArgumentParser(
        prog="budget-watchdog",
        description="Keeps pay-per-token LLM API spend (OpenRouter) inside its budget.",
    )
    parser.add_argument("--version", action="version", version=f"budget-watchdog {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    config = argparse.ArgumentParser(add_help=False)
    config.add_argument(
        "--config", metavar="PATH", help="TOML config file (default: $WATCHDOG_CONFIG)"
    )
    config.add_argument(
        "--log-format",
        choices=["auto", "json", "console"],
        default="auto",
        help="log lines as JSON or for a person (default: auto: console on a terminal)",
    )

    run = sub.add_parser(
        "run",
        parents=[config],
        help="run the daemon (poll, alert, keep the permit)",
        description="Run the watchdog daemon in the foreground (systemd runs this).",
    )
    run.set_defaults(func=cmd_run)

    demo = sub.add_parser(
        "demo",
        parents=[config],
        help="watch a simulated account at accelerated time",
        description="Run the whole loop against a simulated OpenRouter account; no key needed.",
    )
    demo.add_argument(
        "--profile",
        choices=["steady", "runaway", "topup"],
        default="runaway",
        help="how the simulated account spends (default: runaway)",
    )
    demo.add_argument(
        "--speed",
        type=_positive_float,
        default=60.0,
        help="simulated seconds per real second (default: 60: a poll a second)",
    )
    demo.add_argument(
        "--for",
        dest="run_for",
        type=_duration_arg,
        default=None,
        metavar="DURATION",
        help="stop by itself after this much real time (e.g. 90s); default: until Ctrl-C",
    )
    demo.add_argument(
        "--listen",
        default="127.0.0.1:0",
        metavar="HOST:PORT",
        help="where the status page listens (default: a free port on 127.0.0.1)",
    )
    demo.add_argument(
        "--state-dir",
        metavar="DIR",
        default=None,
        help="where the demo keeps its state and permit, kept afterwards (default: a new "
        "temporary dir, removed on exit)",
    )
    demo.set_defaults(func=cmd_demo)

    check = sub.add_parser(
        "check-config",
        parents=[config],
        help="validate the config and print it, secrets masked",
        description="Validate the config; print the effective config with secrets masked.",
    )
    check.add_argument(
        "--example",
        action="store_true",
        help="print the sample config (every key, its default and description) instead",
    )
    check.set_defaults(func=cmd_check_config)

    notify_test = sub.add_parser(
        "notify-test",
        parents=[config],
        help="send a test message to every target",
        description="Send a test message to every [[notify.targets]] entry; print each result. "
        "Exit 0 only when all were delivered.",
    )
    notify_test.set_defaults(func=cmd_notify_test)

    silence = sub.add_parser(
        "silence",
        parents=[config],
        help="stop notifications for a rule for a while",
        description="Stop notifications for RULE until the silence expires (the permit is not "
        "affected). If the finding still fires when it ends, it is sent again.",
    )
    silence.add_argument("rule", metavar="RULE", help="a rule name, e.g. spike or daily_limit")
    silence.add_argument(
        "--for",
        dest="duration",
        type=_duration_arg,
        required=True,
        metavar="DURATION",
        help="how long, e.g. 2h",
    )
    silence.add_argument("--reason", default="", help="why (shown by status)")
    silence.set_defaults(func=cmd_silence)

    unsilence = sub.add_parser(
        "unsilence",
        parents=[config],
        help="end a silence now",
        description="End the silence of RULE now: a finding still firing is sent again, and "
        "one that ended during the silence is sent as resolved.",
    )
    unsilence.add_argument("rule", metavar="RULE")
    unsilence.set_defaults(func=cmd_unsilence)

    status = sub.add_parser(
        "status",
        parents=[config],
        help="what the running daemon sees",
        description="A readable summary of the running daemon (its /status); when it does not "
        "answer, what the state file says, and that it is the state file.",
    )
    status.add_argument("--json", action="store_true", help="print the /status JSON")
    status.set_defaults(func=cmd_status)

    trip = sub.add_parser(
        "trip",
        parents=[config],
        help="revoke the permit by hand (until `arm`)",
        description="Revoke the permit now and keep it revoked until `budget-watchdog arm`. "
        "Survives restarts; recorded in the audit log.",
    )
    trip.add_argument("--reason", required=True, help="why (shown in status and alerts)")
    trip.set_defaults(func=cmd_trip)

    arm = sub.add_parser(
        "arm",
        parents=[config],
        help="end a manual trip or a latch",
        description="Clear a manual trip and a latched revocation. The permit re-arms unless "
        "a finding still demands a stop.",
    )
    arm.set_defaults(func=cmd_arm)

    report = sub.add_parser(
        "report",
        parents=[config],
        help="spend per day and per model",
        description="Spend per day from our own samples and, with a management key, per model "
        "and provider from the provider's activity (last 30 days).",
    )
    report.add_argument("--days", type=_days_arg, default=14, help="how many days (default 14)")
    report.add_argument("--json", action="store_true", help="print JSON instead of a table")
    report.add_argument(
        "--by",
        choices=["day", "key"],
        default="day",
        help='"key": spend per key of the account (management key; default: per day and model)',
    )
    report.set_defaults(func=cmd_report)

    audit = sub.add_parser(
        "audit",
        parents=[config],
        help="where the money goes, and what it would cost done right",
        description="Spend by model and provider from the provider's activity (management "
        "key), each model's tier, input share and the savings found: a cheaper provider for "
        "the same tokens, a mid-tier model for short outputs, a shorter prompt, cached "
        "input. Estimates at today's prices (fetched at most once an hour, no key needed).",
    )
    audit.add_argument(
        "--days", type=int, default=30, metavar="N", help="how many days, 1 to 30 (default 30)"
    )
    audit.add_argument("--json", action="store_true", help="print JSON instead of tables")
    audit.set_defaults(func=cmd_audit)

    digest = sub.add_parser(
        "digest",
        parents=[config],
        help="print the digest now (or send it)",
        description="Print the digest for the period that ends now: spend against the limits, "
        "runway, the top models, the top savings, the provider caps and what fired. With "
        '--send, send it now to every target whose severities include "digest".',
    )
    digest.add_argument("--send", action="store_true", help="send it to the digest targets")
    digest.set_defaults(func=cmd_digest)

    from watchdog import caps  # stdlib, the core and the provider interface: cheap

    caps.add_parser(sub)
    return parser


def _days_arg(text: str) -> int:
    import argparse

    if not text.isdigit() or not 1 <= int(text) <= 400:
        raise argparse.ArgumentTypeError("must be a whole number of days from 1 to 400")
    return int(text)


def _positive_float(text: str) -> float:
    import argparse

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def _duration_arg(text: str) -> float:
    import argparse

    from watchdog.core.words import parse_duration

    try:
        return parse_duration(text).total_seconds()
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# -- shared ------------------------------------------------------------------------------


def _load(ns: argparse.Namespace, **kwargs: Any) -> Loaded:
    """Load the config, or raise CommandError with every problem (exit 2)."""
    from watchdog import config

    try:
        return config.load(config.config_path(ns.config), **kwargs)
    except config.ConfigError as exc:
        raise CommandError(exc.report(), EXIT_USAGE) from None


def _setup_logging(ns: argparse.Namespace, loaded: Loaded) -> Any:
    from watchdog import log

    log.configure(format=ns.log_format)
    log.set_secrets(loaded.settings.secrets())
    logger = log.get_logger()
    for warning in loaded.warnings:
        logger.warning("config_warning", detail=warning)
    for note in loaded.notes:  # e.g. a default key location that could not be read
        logger.info("config_note", detail=note)
    return logger


def _targets(settings: Settings) -> list[Target]:
    """The notification targets, each URL checked by Apprise (imports it: slow). Raise
    CommandError (exit 2) naming every URL Apprise cannot use, masked."""
    from watchdog.config import ConfigError, ConfigProblem
    from watchdog.notify import make_target, url_problem

    targets, problems = [], []
    for index, entry in enumerate(settings.notify.targets):
        target = make_target(entry.url.get_secret_value(), entry.severities)
        problem = url_problem(target.url)
        if problem:
            problems.append(
                ConfigProblem(f"notify.targets[{index}].url", f"{target.shown}: {problem}")
            )
        targets.append(target)
    if problems:
        raise CommandError(ConfigError(problems).report(), EXIT_USAGE)
    return targets


def _client(settings: Settings) -> DaemonClient:
    from watchdog.control import DaemonClient, base_url

    server = settings.server
    # Over TLS, the CLI on the daemon's host trusts the certificate the daemon serves.
    return DaemonClient(
        base_url(server.host, server.port, server.scheme),
        server.token.get_secret_value(),
        pin=str(server.tls[0]) if server.tls else None,
    )


@_contextmanager
def _state(loaded: Loaded) -> Iterator[Store]:
    """The service's state file, opened for a command; CommandError when it cannot be
    (usually a user who may not read or write it: say so, no traceback)."""
    import sqlite3

    from watchdog.store import Store, StoreError

    state = loaded.settings.state
    if state.shared:  # PostgreSQL: the instances' shared state
        try:
            with Store.open(state.target) as store:
                yield store
        except (StoreError, OSError) as exc:
            raise CommandError(f"error: cannot use the state at {state.shown}: {exc}") from None
        return
    path = state.path
    try:
        exists = path.exists()
    except OSError as exc:
        raise CommandError(f"error: cannot look at {path}: {exc.strerror}{_AS_SERVICE}") from None
    if not exists:
        raise CommandError(f"error: no state at {path}: has the daemon run with this config?")
    try:
        with Store(path) as store:
            yield store
    except (StoreError, sqlite3.Error, OSError) as exc:
        raise CommandError(f"error: cannot use the state file {path}: {exc}{_AS_SERVICE}") from None


_AS_SERVICE = " (run it as root or as the service user)"


def _change(loaded: Loaded, change: Callable[[Unit], object]) -> None:
    """Apply `change` to the state file in one transaction (the daemon reads it)."""
    import sqlite3

    from watchdog.store import Store, StoreError

    state = loaded.settings.state
    try:
        with Store.open(state.target) as store, store.unit() as unit:
            change(unit)
    except (StoreError, sqlite3.Error, OSError) as exc:
        where = state.shown if state.shared else f"file {state.path}"
        raise CommandError(
            f"error: cannot change the state {where}: {exc}{'' if state.shared else _AS_SERVICE}"
        ) from None


def _poke(loaded: Loaded) -> str:
    """Ask a running daemon to tick now; say what happened."""
    problem = _client(loaded.settings).request_tick()
    if problem is None:
        return "the running daemon applied it now"
    interval = loaded.settings.provider.poll_interval.total_seconds()
    return f"{problem}; a running daemon applies it within {interval:g}s"


# -- commands ----------------------------------------------------------------------------


def cmd_check_config(ns: argparse.Namespace) -> int:
    from watchdog import config
    from watchdog.notify import describe_target

    if ns.example:
        sys.stdout.write(config.render_example())
        return EXIT_OK
    loaded = _load(ns)
    _targets(loaded.settings)
    # What the daemon warns about at start (a token in clear text off loopback, …) too.
    for warning in [*loaded.warnings, *loaded.settings.start_warnings()]:
        print(f"warning: {warning}", file=sys.stderr)
    source = loaded.source or "defaults and environment (no --config, no $WATCHDOG_CONFIG)"
    print(f"# effective configuration from {source}; secrets masked")
    sys.stdout.write(config.render_effective(loaded.settings, describe_target))
    return EXIT_OK


def cmd_run(ns: argparse.Namespace) -> int:
    from watchdog.providers.openrouter import OpenRouterProvider

    loaded = _load(ns)  # the notification URLs are checked by the courier (see _serve)
    p = loaded.settings.provider
    provider = OpenRouterProvider.from_config(
        p, max_wait=min(30.0, p.poll_interval.total_seconds() / 2)
    )
    return _serve(ns, loaded, provider, interval=p.poll_interval.total_seconds())


def cmd_demo(ns: argparse.Namespace) -> int:
    import shutil
    import tempfile
    from datetime import UTC, datetime
    from pathlib import Path

    from watchdog import config
    from watchdog.providers.simulated import PROFILES, AcceleratedClock, SimulatedAccount

    state_dir = Path(ns.state_dir or tempfile.mkdtemp(prefix="budget-watchdog-demo-"))
    overrides = {
        "budget": {"daily_limit": 20.0, "monthly_limit": 400.0},
        "state": {"path": str(state_dir / "state.db")},
        "killswitch": {"path": str(state_dir / "permit")},
        "server": {"listen": ns.listen},
        "notify": {
            "repeat_interval": "30m",
            "targets": [{"url": "console://", "severities": ["info", "warning", "critical"]}],
        },
    }
    path = config.config_path(ns.config)
    if path is not None:  # the user's limits, but the demo's own state, permit and console
        overrides = {k: v for k, v in overrides.items() if k != "budget"}
    loaded = _load(ns, require_key=False, overrides=overrides)
    clock = AcceleratedClock(datetime.now(UTC), ns.speed)
    account = SimulatedAccount(ns.profile, clock)
    profile = PROFILES[ns.profile]
    interval = loaded.settings.provider.poll_interval.total_seconds() / ns.speed
    print(
        f"budget-watchdog demo: simulated account '{profile.name}' ({profile.description}).\n"
        f"Simulated time runs {ns.speed:g}x; a poll every {interval:g}s real "
        f"({loaded.settings.provider.poll_interval.total_seconds():g}s simulated). "
        f"State in {state_dir}. Ctrl-C stops.\n",
        file=sys.stderr,
    )
    try:
        return _serve(
            ns,
            loaded,
            account,
            interval=interval,
            clock=clock,
            run_for=ns.run_for,
            announce=True,
        )
    finally:
        _demo_audit(account, clock(), loaded.settings)
        if ns.state_dir is None:  # ours to clean up; a --state-dir is the user's to keep
            shutil.rmtree(state_dir, ignore_errors=True)
            print(f"demo state removed ({state_dir})", file=sys.stderr)
        else:
            print(f"demo state kept in {state_dir}", file=sys.stderr)


def _demo_audit(account: Any, now: Any, settings: Settings) -> None:
    """At the end of the demo, the spend audit of the simulated account (its activity and
    price list): where the money went and what the same tokens would cost done right."""
    from watchdog import pricing, report

    policy = settings.audit.policy()
    result, _ = pricing.audit_rows(account.activity(), account, None, policy, now)
    sys.stderr.write("\n" + report.render_audit(result, now=now))


def cmd_notify_test(ns: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from watchdog import log
    from watchdog.notify import AppriseTransport, DeliveryError

    loaded = _load(ns, require_key=False)
    log.set_secrets(loaded.settings.secrets())
    targets = _targets(loaded.settings)
    if not targets:
        print("no [[notify.targets]] configured: nothing to test", file=sys.stderr)
        return EXIT_FAIL
    transport = AppriseTransport()
    now = datetime.now(UTC).isoformat(timespec="seconds")
    failures = 0
    for target in targets:
        body = (
            f"**Test message from budget-watchdog** at {now}.\n\n"
            f"This target receives: {', '.join(target.severities)}. No action needed."
        )
        try:
            transport.send(target, "[TEST] budget-watchdog notification", body, "info", False)
        except DeliveryError as exc:
            failures += 1
            print(f"FAILED     {target.shown}: {log.scrub(str(exc))}")
        else:
            print(f"delivered  {target.shown}")
    print(f"{len(targets) - failures} of {len(targets)} targets delivered")
    return EXIT_OK if failures == 0 else EXIT_FAIL


def cmd_silence(ns: argparse.Namespace) -> int:
    from datetime import UTC, datetime, timedelta

    from watchdog.core.model import Silence
    from watchdog.core.rules import RULES

    if ns.rule not in RULES:
        raise CommandError(
            f"error: unknown rule {ns.rule!r}; rules: {', '.join(RULES)}", EXIT_USAGE
        )
    loaded = _load(ns, require_key=False)
    now = datetime.now(UTC)
    until = now + timedelta(seconds=ns.duration)
    _change(loaded, lambda unit: unit.set_silence(Silence(ns.rule, until, ns.reason, now), now))
    print(f"silenced {ns.rule} until {until:%Y-%m-%d %H:%M} UTC; {_poke(loaded)}")
    return EXIT_OK


def cmd_unsilence(ns: argparse.Namespace) -> int:
    loaded = _load(ns, require_key=False)
    removed: list[bool] = []
    _change(loaded, lambda unit: removed.append(unit.remove_silence(ns.rule)))
    if not removed[0]:
        print(f"{ns.rule} was not silenced")
        return EXIT_OK
    print(f"silence of {ns.rule} ended; {_poke(loaded)}")
    return EXIT_OK


def cmd_status(ns: argparse.Namespace) -> int:
    import json
    from datetime import UTC, datetime

    from watchdog.core import words
    from watchdog.core.view import render_text
    from watchdog.offline import status_from_store

    loaded = _load(ns, require_key=False)
    settings = loaded.settings
    client = _client(settings)
    body = client.status()
    if body is not None:
        source = f"running daemon at {client.base_url}"
        code = EXIT_OK
    else:
        with _state(loaded) as store:
            body = status_from_store(store, settings, datetime.now(UTC))
        age = body.get("data_age_s")
        when = "never polled" if age is None else f"its last poll {words.duration(age)} ago"
        source = (
            f"the daemon does not answer at {client.base_url}: from the "
            f"{'shared state' if settings.state.shared else 'state file'} "
            f"{settings.state.shown} ({when})"
        )
        code = EXIT_NOT_RUNNING
    if ns.json:
        body["source"] = source
        print(json.dumps(body, indent=2))
    else:
        sys.stdout.write(render_text(body, source=source))
    return code


def cmd_trip(ns: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from watchdog import permitfile
    from watchdog.actor import cli_actor
    from watchdog.core.model import Override, PermitChange, Trip

    loaded = _load(ns, require_key=False)
    now = datetime.now(UTC)
    by = cli_actor()

    def trip(unit: Unit) -> None:
        unit.set_override(Override(trip=Trip(ns.reason, by, now)))
        unit.audit(PermitChange(now, "tripped", by, ns.reason))

    # This host's permit first: a trip that cannot be recorded (the shared state out of
    # reach) still stops the jobs here at once.
    path = loaded.settings.killswitch.path
    try:
        removed = permitfile.revoke(path)
    except OSError as exc:  # the daemon removes it at its next tick anyway
        print(f"warning: could not remove {path} now: {exc.strerror}", file=sys.stderr)
        removed = False
    try:
        _change(loaded, trip)
    except CommandError as exc:
        if removed:
            exc.message = (
                f"{exc.message}\n{path} was removed: jobs on this host stop; the trip is not "
                "recorded, so run `trip` again once the state can be reached"
            )
        raise
    print(
        f"permit revoked by {by}: {ns.reason}"
        + (f" ({path} removed)" if removed else "")
        + f"; {_poke(loaded)}. `budget-watchdog arm` re-arms it."
    )
    return EXIT_OK


def cmd_arm(ns: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from watchdog.actor import cli_actor
    from watchdog.core.model import Override, PermitChange

    loaded = _load(ns, require_key=False)
    now = datetime.now(UTC)
    by = cli_actor()

    def arm(unit: Unit) -> None:
        unit.set_override(Override(trip=None, armed_at=now))
        unit.audit(PermitChange(now, "arm requested", by, "manual arm"))

    _change(loaded, arm)
    poked = _poke(loaded)
    status = _client(loaded.settings).status()
    if status is not None and status.get("permit") == "revoked":
        reasons = status.get("permit_reason") or "a finding demands a stop"
        print(f"manual trip and latch cleared, but the permit stays revoked: {reasons}")
        return EXIT_FAIL
    if status is not None:
        print("permit armed: batch jobs may launch")
    else:
        print(f"manual trip and latch cleared; {poked}, unless a finding demands a stop")
    return EXIT_OK


def cmd_report(ns: argparse.Namespace) -> int:
    import json
    from datetime import UTC, datetime, timedelta

    from watchdog import report
    from watchdog.core import burn
    from watchdog.providers.base import ProviderError
    from watchdog.providers.openrouter import OpenRouterProvider

    loaded = _load(ns, require_key=False)
    settings = loaded.settings
    now = datetime.now(UTC)
    tz = settings.budget.tz
    if ns.by == "key":
        since = min(now - timedelta(days=ns.days + 1), burn.samples_needed_since(now, tz))
        with _state(loaded) as store:
            known, histories = store.known_keys(), store.key_history(since)
        latest = max([now] + [s[-1].ts for s in histories.values() if s])
        spend = report.by_key(known, histories, latest, ns.days, settings.policy().budget)
        zone = settings.budget.timezone
        if ns.json:
            print(json.dumps(report.keys_json(spend, zone, ns.days), indent=2))
        else:
            sys.stdout.write(report.render_keys(spend, zone=zone, days=ns.days))
        return EXIT_OK
    with _state(loaded) as store:
        samples = store.history(now - timedelta(days=ns.days + 1))
    end = max([now] + [s.ts for s in samples[-1:]])  # a demo's clock may run ahead
    history = burn.History.from_samples(samples)
    days = burn.daily_spend(history, end, ns.days, tz)
    if days and samples:
        # Today as the daemon counts it (the provider's counters where our samples are
        # short), so `report` and `status` agree.
        today = burn.measure(history, end, tz).spent_today
        days[-1] = (days[-1][0], today if today is not None else days[-1][1])
    models = None
    p = settings.provider
    if p.management_key is not None:
        provider = OpenRouterProvider.from_config(p, watched=False)
        try:
            rows = provider.activity()
        except ProviderError as exc:
            print(f"warning: per-model activity unavailable: {exc.message}", file=sys.stderr)
        else:
            models = report.by_model(rows, (now - timedelta(days=ns.days)).date())
        finally:
            provider.close()
    elif not ns.json:
        print("(per-model spend needs a management key: provider.management_key_file)\n")
    if ns.json:
        print(json.dumps(report.as_json(days, models, settings.budget.timezone), indent=2))
    else:
        sys.stdout.write(report.render(days, models, zone=settings.budget.timezone))
    return EXIT_OK


def cmd_audit(ns: argparse.Namespace) -> int:
    import contextlib
    import json
    import sqlite3
    from datetime import UTC, datetime

    from watchdog import pricing, report
    from watchdog.core import audit
    from watchdog.providers.base import ProviderError
    from watchdog.providers.openrouter import OpenRouterProvider
    from watchdog.store import Store, StoreError

    if not 1 <= ns.days <= 30:
        raise CommandError(
            "error: --days must be from 1 to 30 (the provider keeps 30 days of activity)",
            EXIT_USAGE,
        )
    loaded = _load(ns, require_key=False)
    settings = loaded.settings
    p = settings.provider
    if p.management_key is None:
        raise CommandError(
            "error: the audit reads per-model activity, which needs a management key "
            "(provider.management_key_file or OPENROUTER_MANAGEMENT_KEY)",
            EXIT_USAGE,
        )
    now = datetime.now(UTC)
    warnings: list[str] = []
    provider = OpenRouterProvider.from_config(p, watched=False)
    with contextlib.ExitStack() as stack:
        stack.callback(provider.close)
        try:
            rows = provider.activity()
        except ProviderError as exc:
            raise CommandError(
                f"error: the provider's activity is unavailable: {exc.message}"
            ) from None
        cache: pricing.StoreCache | None = None
        path = settings.state.path
        # Prices are cached in the daemon's state file when there is one this user may
        # write; the audit never creates it (it would be this user's, not the service's).
        try:
            if settings.state.shared:
                cache = pricing.StoreCache(stack.enter_context(Store.open(settings.state.target)))
            elif path.exists():
                cache = pricing.StoreCache(stack.enter_context(Store(path)))
            else:
                warnings.append(f"prices not cached: no state at {path} (has the daemon run?)")
        except (StoreError, sqlite3.Error, OSError) as exc:
            warnings.append(f"prices not cached: cannot use the state file {path}: {exc}")
        result, lookup = pricing.audit_rows(
            rows, provider, cache, settings.audit.policy(), now, days=ns.days
        )
        if cache is not None and cache.problem:
            warnings.append(f"prices not cached: {cache.problem}")
    if lookup.problem:
        warnings.append(
            f"{lookup.problem}; "
            + ("using the cached prices" if lookup.prices else "no savings estimated")
        )
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if ns.json:
        print(json.dumps(audit.as_json(result), indent=2))
    else:
        sys.stdout.write(report.render_audit(result, now=now))
    return EXIT_OK


def cmd_digest(ns: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from watchdog import log
    from watchdog.core import burn
    from watchdog.digester import DIGEST
    from watchdog.notify import AppriseTransport, DeliveryError
    from watchdog.providers.openrouter import OpenRouterProvider

    loaded = _load(ns, require_key=False)
    settings = loaded.settings
    log.set_secrets(settings.secrets())
    now = datetime.now(UTC)
    p = settings.provider
    provider = OpenRouterProvider.from_config(p) if settings.has_key else None
    try:
        with _state(loaded) as store:
            policy = settings.policy()
            history = burn.history_from(
                store.history(burn.samples_needed_since(now, policy.budget.tz)), now
            )
            metrics = burn.measure(history, now, policy.budget.tz)
            digester = _digester(settings, store, provider, log.get_logger())
            title, body = digester.compose(now, now, metrics)
    finally:
        if provider is not None:
            provider.close()
    print(f"{title}\n\n{body}")
    if not ns.send:
        return EXIT_OK
    targets = [t for t in _targets(settings) if DIGEST in t.severities]
    if not targets:
        print(
            'no target takes the digest (add "digest" to a target\'s severities)', file=sys.stderr
        )
        return EXIT_FAIL
    failures = 0
    for target in targets:
        try:
            AppriseTransport().send(target, title, body, DIGEST, False)
        except DeliveryError as exc:
            failures += 1
            print(f"FAILED     {target.shown}: {log.scrub(str(exc))}", file=sys.stderr)
        else:
            print(f"sent       {target.shown}", file=sys.stderr)
    return EXIT_OK if failures == 0 else EXIT_FAIL


# -- the daemon: the composition root ----------------------------------------------------


def _serve(
    ns: argparse.Namespace,
    loaded: Loaded,
    provider: Provider,
    *,
    interval: float,
    clock: Callable[[], datetime] | None = None,
    run_for: float | None = None,
    announce: bool = False,
) -> int:
    """Build the store, the tick, the server and the daemon around `provider`; run until
    stopped. Exit 2 for a notification URL
    Apprise cannot use, 1 if the state file or the port is taken."""
    from watchdog.courier import Inspector

    settings = loaded.settings
    # Apprise checks the notification URLs in a child while we import and set up the rest.
    inspector = Inspector([t.url.get_secret_value() for t in settings.notify.targets])

    from datetime import UTC, datetime

    from watchdog import permitfile
    from watchdog.core import view
    from watchdog.core.view import InstanceView
    from watchdog.daemon import Daemon, Prepared
    from watchdog.holds import SharedReservations
    from watchdog.sdnotify import Notifier
    from watchdog.server import Holds, HoldsUnreadable, Reservations, StatusServer, create_app
    from watchdog.store import Store, StoreError
    from watchdog.tick import LatestView, Tick, resume

    logger = _setup_logging(ns, loaded)
    policy = settings.policy()
    now = clock or (lambda: datetime.now(UTC))
    permit_path = settings.killswitch.path
    try:
        # A permit that can never be written would leave every job at no-go with only a
        # log line to say why: refuse to start instead (exit 2, one line).
        permitfile.probe(permit_path)
    except OSError as exc:
        message = f"cannot write the permit at {permit_path}: {exc.strerror or exc}"
        logger.error("permit_unwritable", detail=message)
        raise CommandError(f"error: {message} (killswitch.path)", EXIT_USAGE) from None
    try:
        store = Store.open(settings.state.target, lock=True)
    except StoreError as exc:
        logger.error("state_unavailable", detail=str(exc))
        raise CommandError(f"error: {exc}") from None
    for warning in settings.start_warnings():
        logger.warning("config_warning", detail=warning)
    # Who this instance is among those sharing one database (and its part: watchdog.leader).
    instance_id = _instance_id(settings)
    leadership: Leadership | None = None
    if settings.state.shared:
        from watchdog.leader import Leadership

        leadership = Leadership(
            str(settings.state.target), instance_id, _lease(interval), lambda: datetime.now(UTC)
        )
        logger.info("state_shared", state=settings.state.shown, instance=instance_id)
    started_at = now()
    leader_changes = [0]
    if policy.killswitch.disable_keys:
        _say_whether_keys_can_be_disabled(provider, logger)
    # The permit's lease runs on the wall clock jobs read it with (the demo's accelerated
    # clock is for the simulated account only).
    issuer = permitfile.Issuer(permit_path, lambda: datetime.now(UTC))
    # A permit left behind by a daemon that died stays "go" until its lease ends: this one
    # does not know yet, so it is removed now, before anything else (no permit at boot).
    if issuer.revoke():
        logger.info("permit_removed", reason="starting: no successful poll since start")
    # Every key's own permit (management key), beside the account's: a new epoch binds
    # the files of this run to the account permits it writes; old files are removed.
    key_permits = None
    if provider.admin() is not None:
        key_permits = permitfile.KeyPermits(
            permitfile.keys_directory(permit_path), lambda: datetime.now(UTC)
        )
        try:
            issuer.keys_epoch = key_permits.start()
        except permitfile.KeyPermitsLocked as exc:
            logger.error("permit_unwritable", detail=str(exc))
            raise CommandError(f"error: {exc}") from None
        except OSError as exc:
            message = f"cannot write the keys' permits: {exc.strerror or exc}"
            logger.error("permit_unwritable", detail=message)
            raise CommandError(f"error: {message} (killswitch.path)", EXIT_USAGE) from None
    memory = resume(store, policy, now())
    published = LatestView(view.starting(memory.poll.started_at, policy.budget, memory.poll))
    # Reservations live beside the state (or in the shared database), so a restart does
    # not grant the same money twice; each change re-issues the permit with its headroom
    # less what they hold.

    def on_holds_change(total: float) -> None:
        issuer.reissue(total)
        if key_permits is not None:  # a key's file says its headroom less its holds
            try:
                key_permits.hold(holds.by_key(now()))
            except OSError as exc:
                logger.error("key_permit_write_failed", error=str(exc))

    holds: Holds
    try:
        if settings.state.shared:
            # Their own connection: a reservation does not wait behind a tick's queries.
            holds = SharedReservations(
                Store.open(settings.state.target),
                instance_id,
                lambda: datetime.now(UTC),
                logger,
                on_change=on_holds_change,
            )
        else:
            state = settings.state.path
            holds_path = state.with_name(state.name + ".holds.json")
            holds = Reservations(path=holds_path, on_change=on_holds_change)
    except StoreError as exc:
        store.close()
        logger.error("state_unavailable", detail=str(exc))
        raise CommandError(f"error: {exc}") from None
    except HoldsUnreadable as exc:
        store.close()
        logger.error("holds_unreadable", detail=str(exc))
        raise CommandError(
            f"error: {exc}: starting without them could grant the same money twice; move "
            "the file away to start without them",
            EXIT_USAGE,
        ) from None

    def prepare() -> Prepared | None:
        """The courier's verdict on the notification URLs (the server answers meanwhile);
        the first tick and READY=1 wait for it, so no alert goes out unrouted."""
        targets = _inspected_targets(loaded, inspector)
        if targets is None:
            return None
        with store.unit() as unit:
            # A restart may be the fix for whatever kept messages from going out; a message
            # this instance was sending when it stopped is sent again now.
            this_host = instance_id.rpartition("/")[0] + "/"  # its runs before this one
            unit.release_claims(this_host if settings.state.shared else None)
            waiting = unit.retry_pending_now(now())
        if waiting:
            logger.info("outbox_resumed", pending=waiting)
        digester = _digester(settings, store, provider, logger)
        # The price list (for the page's savings and the digest) is fetched off the tick.
        chores: tuple[tuple[Callable[[], object], float], ...] = (
            (lambda: digester.refresh_prices(now()), PRICES_EVERY_S),
        )
        admin = provider.admin()
        if policy.caps.manage and admin is not None:
            from watchdog import caps

            # Provider-side daily caps kept at factor × expected spend (issue 14).
            every = policy.caps.every.total_seconds()
            chores += ((lambda: caps.manage(policy, admin, store, now, logger), every),)
        if leadership is not None:
            # Chores act for every instance (prices, caps): the leader does them.
            chores = tuple((_leader_only(leadership, chore), every) for chore, every in chores)
            leadership.try_lead()  # the first tick knows its part
        tick = Tick(
            digester=digester,
            policy=policy,
            provider=provider,
            admin=provider.admin(),
            store=store,
            permit=issuer,
            clock=now,
            log=logger,
            targets=targets,
            memory=memory,
            published=published,
            reserved=holds.total,
            reserved_by_key=holds.by_key,
            key_permits=key_permits,
            leadership=leadership,
        )
        lead = None
        if leadership is not None:
            lead = (
                _election(leadership, logger, leader_changes, daemon.tick_running_for),
                _lease(interval).total_seconds() / ELECTIONS_PER_LEASE,
            )
        if not targets:
            return Prepared(tick, chores=chores, lead=lead)
        outbox = _courier(ns, store, targets, now, logger, settings.secrets(), instance_id)
        deliver: Callable[[], object] = outbox.deliver
        if leadership is not None:
            deliver = _leader_only(leadership, outbox.deliver)
        return Prepared(tick, deliver, chores, lead)

    def on_stop() -> None:
        # A stopped watchdog leaves no permit: launches stop until it runs again.
        try:
            if issuer.revoke():
                logger.info("permit_removed", reason="daemon stopped")
            if key_permits is not None:
                key_permits.clear()
        except OSError as exc:  # e.g. the path became a directory: say so, stop cleanly
            logger.error("permit_revoke_failed", path=str(permit_path), error=str(exc))
        if leadership is not None:
            # Another instance takes over at its next attempt, not when our lease runs out.
            leadership.close()

    daemon = Daemon(
        prepare,
        interval=interval,
        log=logger,
        sd=Notifier(),
        run_for=run_for,
        on_stop=on_stop,
        status_line=lambda: view.summary_line(published.current),
    )

    def instance() -> InstanceView:
        if leadership is None:  # one host: it always leads
            return InstanceView(instance_id, "leader", instance_id, started_at)
        role = leadership.role
        return InstanceView(
            instance_id, role.role, role.leader_id, role.since, changes=leader_changes[0]
        )

    app = create_app(
        view=published.get,
        clock=now,
        token=settings.server.token.get_secret_value(),
        reservations=holds,
        request_tick=daemon.run_tick_now,
        instance=instance,
    )
    server = StatusServer(
        app,
        settings.server.host,
        settings.server.port,
        logger,
        tls=settings.server.tls,
    )
    try:
        server.bind()
    except OSError as exc:
        store.close()
        message = f"cannot listen on {settings.server.listen}: {exc.strerror or exc}"
        logger.error("server_unavailable", detail=message)
        raise CommandError(f"error: {message} (server.listen)") from None
    if announce:
        print(
            f"Status page: {settings.server.scheme}://{settings.server.host}:{server.port}/  "
            f"(gate: budget-watchdog gate --permit {settings.killswitch.path})\n",
            file=sys.stderr,
        )
    try:
        code = daemon.run(server)
    finally:
        provider.close()
        if isinstance(holds, SharedReservations):
            holds.close()
        store.close()
    return code


def _instance_id(settings: Settings) -> str:
    """This instance's name among those sharing one database: the host's name, the
    status port (two instances on one host listen on two ports) and a few random
    characters of this run — two hosts that share a name (cloned machines, containers)
    must never count as one leader."""
    import secrets
    import socket

    port = settings.server.port or "any"
    return f"{socket.gethostname()}:{port}/{secrets.token_hex(3)}"


# Attempts to lead (or renew) per lease: a follower takes over at most lease / this after
# the lease ran out, and a renewal that meets a slow database has several more chances.
ELECTIONS_PER_LEASE = 6


def _lease(interval: float) -> timedelta:
    """How long a leader's lease lasts: one poll interval (so a follower takes over and
    polls within two), at least 3 s (a database round trip must fit many times) and at
    most 60 s (a dead leader is replaced within about a minute and a third)."""
    from datetime import timedelta

    return timedelta(seconds=max(3.0, min(interval, 60.0)))


def _leader_only(leadership: Leadership, work: Callable[[], object]) -> Callable[[], object]:
    """`work`, done only while this instance leads."""

    def run() -> object:
        return work() if leadership.is_leading() else None

    return run


def _election(
    leadership: Leadership,
    logger: Any,
    changes: list[int],
    tick_running_for: Callable[[], float | None],
) -> Callable[[], bool]:
    """One attempt to lead (the daemon runs it a few times a lease); True when this
    instance has just become the leader. Every change of leader is logged and counted.
    An instance whose tick has been stuck for two leases (a hung connection, a bug) does
    not renew: it steps down, so a healthy one leads."""

    def elect() -> bool:
        before = leadership.role
        stuck = tick_running_for()
        if stuck is not None and stuck > 2 * leadership.lease.total_seconds():
            if before.leading:
                leadership.step_down()
                logger.error(
                    "leader_stepped_down",
                    detail=f"the tick has been running for {stuck:.0f} s: another "
                    "instance leads until it finishes",
                )
            return False
        role = leadership.try_lead()
        if role.leader_id != before.leader_id and role.leader_id is not None:
            changes[0] += 1
            logger.warning(
                "leader_changed",
                leader=role.leader_id,
                was=before.leader_id,
                role=role.role,
                term=role.term or None,
            )
        elif role.leader_id is None and before.leader_id is not None:
            logger.warning(
                "leader_unknown", detail="the shared state is out of reach", was=before.leader_id
            )
        return role.leading and not before.leading

    return elect


def _digest_policy(settings: Settings) -> Any:
    from datetime import time

    from watchdog.core.digest import DigestPolicy

    d = settings.digest
    return DigestPolicy(d.schedule, d.day, time(d.hour, d.minute))


def _digester(settings: Settings, store: Store, provider: Provider | None, logger: Any) -> Digester:
    """The digest on its schedule (to the targets that take it; off: never) and the daily
    audit behind the page's savings."""
    from watchdog.digester import Digester

    return Digester(
        _digest_policy(settings),
        settings.policy().budget,
        settings.audit.policy(),
        store,
        provider.admin() if provider is not None else None,
        logger,
    )


def _say_whether_keys_can_be_disabled(provider: Provider, logger: Any) -> None:
    """With `killswitch.disable_keys`, say at start — once, clearly — when the switch at
    the provider cannot act (no management key, or the watched key not identified)."""
    admin = provider.admin()
    if admin is None:
        logger.warning(
            "key_switch_unavailable",
            detail="killswitch.disable_keys is set but no management key is configured: "
            "keys cannot be disabled at the provider (the permit still works)",
        )
        return
    identity = admin.watched_key_identity()
    if identity.problem:
        logger.warning("key_switch_unavailable", detail=identity.problem)
    elif identity.pending:
        logger.info("key_switch_pending", detail="the watched key is identified at the first poll")
    else:
        logger.info("key_switch_ready", key_hash=identity.hash, found_by=identity.source)


def _courier(
    ns: argparse.Namespace,
    store: Store,
    targets: list[Target],
    clock: Callable[[], datetime],
    logger: Any,
    secrets: list[str],
    instance: str = "local",
) -> CourierOutbox:
    from watchdog.courier import CourierOutbox

    log_format = ns.log_format
    if log_format == "auto":
        log_format = "console" if sys.stdout.isatty() else "json"
    return CourierOutbox(
        store, targets, clock, logger, secrets=secrets, log_format=log_format, instance=instance
    )


def _inspected_targets(loaded: Loaded, inspector: Inspector) -> list[Target] | None:
    """The notification targets once the courier has checked their URLs, or None after
    printing every problem as a config error (secrets masked)."""
    from watchdog.config import ConfigError, ConfigProblem
    from watchdog.courier import make_targets

    try:
        inspection = inspector.result()
    except RuntimeError as exc:
        problems = [ConfigProblem("notify.targets", str(exc))]
    else:
        problems = [
            ConfigProblem(f"notify.targets[{i}].url", f"{shown}: {problem}")
            for i, (shown, problem) in enumerate(
                zip(inspection.shown, inspection.problems, strict=True)
            )
            if problem
        ]
    if problems:
        source = str(loaded.source) if loaded.source else None
        print(ConfigError(problems, source).report(), file=sys.stderr)
        return None
    pairs = [(t.url.get_secret_value(), t.severities) for t in loaded.settings.notify.targets]
    return make_targets(pairs, inspection.shown)
