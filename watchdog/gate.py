"""`budget-watchdog gate`: may a batch job launch now? Exit 0 go, 1 no-go, 2 usage or config
error. It fails closed: anything odd about the permit or the daemon's answer is no-go, and it
never waits on anything without a deadline.

Batch jobs run this before every launch, so with a permit file it imports nothing Python has
not already loaded at start-up (sys, os, time): not `json`, `datetime`, `typing`, nor even
`__future__`. The strict JSON and time-stamp reader is `watchdog.permit_json`; `--url` loads
`watchdog.control` (sockets and json) only when it is given, and `--config` loads `tomllib`.

For Python jobs the same check is `check()`:

    from watchdog.gate import check
    verdict = check(cost=3.0)
    if not verdict.go:
        raise SystemExit(f"budget-watchdog says no: {'; '.join(verdict.reasons)}")
"""

import os
import sys
import time

from watchdog.permit_json import (
    RUNWAY_UNKNOWN,
    echo,
    epoch,
    key_file_name,
    mask_userinfo,
    parse_object,
)
from watchdog.permit_json import Verdict as Verdict  # public here: watchdog.gate.Verdict

# Not `from typing import TYPE_CHECKING`: importing typing costs `gate` milliseconds.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from watchdog.control import DaemonClient

DEFAULT_PERMIT = "/run/budget-watchdog/permit"
# The most `expires_at - issued_at` may be when no ttl is configured where gate can see it.
DEFAULT_TTL_BOUND_S = 24 * 3600.0
# [killswitch] ttl's default in watchdog.config (KillswitchConfig.ttl): what a daemon whose
# config does not set a ttl writes.
DAEMON_DEFAULT_TTL_S = 300.0
CLOCK_SLACK_S = 5.0  # how far the writer's and the reader's clocks may disagree
MAX_PERMIT_BYTES = 65536
MAX_COST = 1e9
NUMBER_FIELDS = ("balance", "runway_days", "headroom_usd")
REASON_CHARS = 300  # the most of a key's revocation reason a no-go repeats

USAGE = """usage: budget-watchdog gate [--cost USD] [--key NAME] [--permit PATH | --url URL]
                            [--min-runway-days N] [--config PATH] [--quiet]

Exit 0 when a batch job may launch now, 1 when it may not (the reasons go to stderr),
2 on a usage or config error (a config gate cannot read, a token the daemon refuses).

  --cost USD            what the job may spend, in plain decimal digits (0 to 1000000000,
                        e.g. 2.50): no-go if that exceeds the headroom
  --key NAME            the API key the job uses (its name): its own permit must say go
                        too (a file in <permit>.keys/ beside the account permit, which
                        vouches for it; with --url the daemon is asked with key=NAME)
  --permit PATH         the permit file (default: [killswitch] path of --config or
                        $WATCHDOG_CONFIG, $WATCHDOG_KILLSWITCH__PATH, else
                        /run/budget-watchdog/permit)
  --url URL             ask the daemon's /preflight instead (e.g. http://127.0.0.1:8787,
                        or https://host:8787 from another host); a token comes from
                        $WATCHDOG_SERVER__TOKEN; 5 s at most. https:// verifies the
                        daemon's certificate (the system's CAs, or $SSL_CERT_FILE)
  --min-runway-days N   no-go if the credit lasts fewer days than N, or if no runway is
                        known (no balance is known)
  --config PATH         the daemon's config, for the permit path and [killswitch] ttl
  --quiet               print nothing on go

A permit is go only when it is a regular file holding the JSON object the daemon writes:
"state": "armed", numbers (or null) where numbers belong, a headroom_usd that is not
negative, issued_at not in the future, and expires_at in the future but no further than the
ttl ([killswitch] ttl of the config or $WATCHDOG_KILLSWITCH__TTL; 24 h when gate sees no
config). With --key, the key's file must also be one the same daemon run wrote (its epoch
is the account permit's keys_epoch), say "state": "armed", not be issued in the future, and
leave headroom_usd (when a number) for --cost. Anything else is no-go.
"""


class ConfigError(ValueError):
    """The config (or the environment standing in for it) cannot be used: exit 2."""


def check(
    cost: float | None = None,
    permit: str | None = None,
    min_runway_days: float | None = None,
    now: float | None = None,
    *,
    ttl_s: float | None = None,
    key: str | None = None,
) -> Verdict:
    """Given a job's cost, the permit path, a runway floor and the killswitch ttl (seconds),
    return the Verdict. Without `permit`, the path and the ttl come from the config
    ($WATCHDOG_CONFIG, $WATCHDOG_KILLSWITCH__*); without a ttl, expires_at may lie at most
    24 h after issued_at. With `key` (a key's name), that key's permit
    (`<permit>.keys/<key_file_name(key)>`) must say go too, written by the daemon run the
    account permit's keys_epoch names. With a runway floor, a permit that knows no runway
    (null) is no-go. Raise ValueError for a bad cost, runway floor or key name, ConfigError
    for a config that cannot be read."""
    cost = _checked("cost", cost, MAX_COST)
    min_runway_days = _checked("min_runway_days", min_runway_days, None)
    if key is not None:
        _check_key_name(key)
    if permit is None:
        permit, configured = killswitch_settings(None, need_ttl=ttl_s is None)
        ttl_s = configured if ttl_s is None else ttl_s
    bound = DEFAULT_TTL_BOUND_S if ttl_s is None else ttl_s
    now = time.time() if now is None else now
    data, reasons = _judge(permit, cost, min_runway_days, now, bound)
    if key is not None and data is not None:  # no account permit: nothing vouches for a key
        reasons += _judge_key(permit, key, data.get("keys_epoch"), cost, now)
    return Verdict(not reasons, reasons, data)


def permit_path(config: str | None) -> str:
    """--permit's default: $WATCHDOG_KILLSWITCH__PATH, the config's [killswitch] path, or
    the standard path. Raise ConfigError when a config that must be read cannot be."""
    return killswitch_settings(config, need_ttl=False)[0]


def killswitch_settings(config: str | None, need_ttl: bool = True) -> tuple[str, float | None]:
    """Given --config (or None), return the permit path and the ttl in seconds the daemon
    writes permits with (None when gate sees no config). The environment
    ($WATCHDOG_KILLSWITCH__PATH, $WATCHDOG_KILLSWITCH__TTL) overrides the file, as it does
    for the daemon; the file ($WATCHDOG_CONFIG without --config) is read when given on the
    command line or when the environment leaves something to find. Raise ConfigError."""
    path = os.environ.get("WATCHDOG_KILLSWITCH__PATH") or None
    ttl_text = os.environ.get("WATCHDOG_KILLSWITCH__TTL") or None
    ttl = None
    if ttl_text is not None:
        try:
            ttl = _duration(ttl_text)
        except ValueError as exc:
            raise ConfigError(f"WATCHDOG_KILLSWITCH__TTL={ttl_text!r}: {exc}") from None
    source = config or os.environ.get("WATCHDOG_CONFIG")
    if source and (config or path is None or (need_ttl and ttl is None)):
        section = _killswitch_section(source)
        if path is None:
            value = section.get("path", DEFAULT_PERMIT)
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{source}: [killswitch] path must be a non-empty string")
            path = value
        if ttl is None:
            try:
                ttl = _duration(section.get("ttl", DAEMON_DEFAULT_TTL_S))
            except ValueError as exc:
                raise ConfigError(f"{source}: [killswitch] ttl: {exc}") from None
    return path or DEFAULT_PERMIT, ttl


# -- the command ----------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    """`budget-watchdog gate ARGS`: print the verdict, return the exit code."""
    try:
        opts = _parse_args(argv)
    except ValueError as exc:
        synopsis = USAGE.split("\n\n", 1)[0]
        sys.stderr.write(
            f"budget-watchdog gate: {_said(str(exc))}\n{synopsis}\n(--help says more)\n"
        )
        return 2
    if opts is None:
        sys.stdout.write(USAGE)
        return 0
    try:
        verdict = _decide(opts)
    except ValueError as exc:  # ConfigError, a bad --url, a token the daemon refuses
        sys.stderr.write(f"budget-watchdog gate: {_said(str(exc))}\n")
        return 2
    except Exception as exc:  # fail closed, in one line: a job's log is no place for a trace
        sys.stderr.write(
            f"budget-watchdog gate: unexpected error ({type(exc).__name__}: "
            f"{_said(str(exc))}); treat as no-go\n"
        )
        return 2
    if verdict.go:
        if "quiet" not in opts:
            sys.stderr.write("go\n")
        return 0
    sys.stderr.write("no-go: " + "; ".join(_said(r) for r in verdict.reasons) + "\n")
    return 1


def _decide(opts: dict[str, str]) -> Verdict:
    cost = _decimal(opts.get("cost"), "--cost")
    runway = _decimal(opts.get("min-runway-days"), "--min-runway-days", exponent=True)
    key = opts.get("key")
    if "url" in opts:
        return _client(opts["url"]).preflight(cost, runway, key)
    path, ttl = killswitch_settings(opts.get("config"))
    return check(cost, opts.get("permit", path), runway, ttl_s=ttl, key=key)


def _client(url: str) -> "DaemonClient":
    from watchdog.control import DaemonClient  # sockets and json: only for --url

    return DaemonClient(url, token=os.environ.get("WATCHDOG_SERVER__TOKEN", ""))


def _parse_args(argv: list[str]) -> dict[str, str] | None:
    """A hand-written parser: argparse alone costs more than the whole check."""
    valued = ("cost", "key", "permit", "url", "min-runway-days", "config")
    opts: dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-h", "--help"):
            return None
        if not arg.startswith("--"):
            raise ValueError(f"unexpected argument {echo(arg)}")
        name, eq, value = arg[2:].partition("=")
        if name == "quiet":
            if eq:
                raise ValueError("--quiet takes no value")
            value = ""
        elif name in valued:
            if not eq:
                i += 1
                if i >= len(argv):
                    raise ValueError(f"--{name} needs a value")
                value = argv[i]
        else:
            raise ValueError(f"unknown option {echo('--' + name)}")
        if name in opts:
            raise ValueError(f"--{name} is given twice")
        opts[name] = value
        i += 1
    if "url" in opts and "permit" in opts:
        raise ValueError("give --permit or --url, not both")
    for name in ("permit", "url", "config"):
        if opts.get(name) == "":
            raise ValueError(f"--{name} needs a value")
    _checked("--cost", _decimal(opts.get("cost"), "--cost"), MAX_COST)
    runway = _decimal(opts.get("min-runway-days"), "--min-runway-days", exponent=True)
    _checked("--min-runway-days", runway, None)
    if "key" in opts:
        if "url" not in opts:  # with --url the daemon gets the name, URL-encoded
            _check_key_name(opts["key"], "--key")
        elif not opts["key"]:
            raise ValueError("--key needs a value")
    return opts


def _decimal(text: str | None, name: str, exponent: bool = False) -> float | None:
    """A number as a job's command line writes it: ASCII digits with at most one ".",
    e.g. 3, 2.50 or .5 (with `exponent`, also 1e20). Not what float() takes beyond that:
    no sign, no spaces, no "_", no other scripts' digits, no nan or inf. Else ValueError
    naming the value."""
    if text is None:
        return None
    mantissa, e, power = text.partition("e") if exponent else (text, "", "")
    if not e and exponent:
        mantissa, e, power = text.partition("E")
    whole, dot, fraction = mantissa.partition(".")
    if power[:1] in ("+", "-"):
        power = power[1:]
    if (
        not _digits(whole, empty=bool(dot))
        or not _digits(fraction, empty=not dot)
        or not (whole or fraction)
        or (e and not _digits(power, empty=False))
    ):
        example = "3, 2.50 or .5" + (" (or 1e3)" if exponent else "")
        raise ValueError(f"{name} must be a plain decimal number like {example}, not {echo(text)}")
    return float(text)


def _digits(text: str, empty: bool) -> bool:
    """Whether `text` is ASCII digits only (or empty, when `empty` allows it)."""
    if not text:
        return empty
    return all("0" <= c <= "9" for c in text)


def _checked(name: str, value: float | None, most: float | None) -> float | None:
    """A finite number from 0 (to `most`), or None; else ValueError. NaN compares false
    with everything, so an unchecked NaN cost would pass every headroom."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, not {value!r}")
    if not (value >= 0 and value - value == 0):  # NaN and infinities fail this
        raise ValueError(f"{name} must be a finite number, 0 or more, not {value!r}")
    if most is not None and value > most:
        raise ValueError(f"{name} must be at most {most:g}, not {echo(value)}")
    return float(value)


def _check_key_name(key: str, name: str = "key") -> None:
    """A key's name, as its permit file can be named (key_file_name): not empty, no NUL."""
    try:
        key_file_name(key)
    except ValueError:
        raise ValueError(f"{name} must be a key's name, not {echo(key)}") from None


# -- reading and judging a permit --------------------------------------------------------------


def _judge(
    path: str,
    cost: float | None,
    min_runway_days: float | None,
    now: float,
    ttl_s: float,
) -> tuple[dict[str, object] | None, list[str]]:
    """The account permit at `path` and the reasons it says no-go."""
    text, problem = _read(path)
    if text is None:
        if problem is None:
            problem = f"no permit at {path}: spending is stopped, or the watchdog is not running"
        else:
            problem = f"the permit {path} {problem}"
        return None, [problem]
    try:
        data = parse_object(text)
    except ValueError as exc:
        return None, [f"the permit {path} is not valid JSON of the permit's shape ({exc})"]
    reasons = _validate(data, now, ttl_s)
    if not reasons:
        # headroom_usd already stands under the balance (min_balance and the critical buffer).
        headroom = data["headroom_usd"]
        if cost is not None and isinstance(headroom, float) and cost > headroom:
            reasons.append(f"a {_usd(cost)} job exceeds the {_usd(headroom)} of headroom left")
        runway = data["runway_days"]
        if min_runway_days is not None:
            if runway is None:
                reasons.append(RUNWAY_UNKNOWN.format(floor=min_runway_days))
            elif isinstance(runway, float) and runway < min_runway_days:
                reasons.append(
                    f"credit lasts {_days(runway)}, under the {min_runway_days:g} asked for"
                )
    return data, reasons


def _judge_key(
    permit: str, key: str, keys_epoch: object, cost: float | None, now: float
) -> list[str]:
    """The reasons the permit of `key` beside the account permit at `permit` says no-go,
    each "key 'NAME': ...". Its file is not leased: the account permit's lease covers it,
    when its epoch is the account permit's keys_epoch (the same daemon run wrote both)."""
    prefix = f"key {echo(key)}: "
    if keys_epoch is None:  # null or absent
        return [prefix + "the watchdog keeps no per-key permits (it needs a management key)"]
    if not isinstance(keys_epoch, str):
        return []  # the account permit is no-go for it already
    path = f"{permit}.keys/{key_file_name(key)}"
    text, problem = _read_settled(path)
    if text is None:
        if problem is None:
            problem = (
                "the watchdog keeps no permit for it (not a key of the account, or not listed yet)"
            )
            if len(key) == 64 and all(c in "0123456789abcdef" for c in key):
                problem += "; give the key's name: its permit file is named after it, not its hash"
        else:
            problem = f"its permit {path} {problem}"
        return [prefix + problem]
    try:
        data = parse_object(text)
    except ValueError as exc:
        return [prefix + f"its permit {path} is not valid JSON of the permit's shape ({exc})"]
    if data.get("epoch") != keys_epoch:
        return [prefix + "its permit is from an earlier run of the watchdog"]
    if data.get("key") != key:
        return [prefix + f"its permit {path} is the permit of key {echo(data.get('key'))}"]
    reasons = []
    state, reason = data.get("state"), data.get("reason")
    if not isinstance(reason, str):
        reasons.append(f"its permit's reason is {echo(reason)}, not a string")
    elif state == "revoked":
        reasons.append(_cut(reason) if reason else "its permit is revoked (no reason given)")
    elif state != "armed":
        reasons.append(f"its permit's state is {echo(state)}, not 'armed'")
    issued = data.get("issued_at")
    try:
        if not isinstance(issued, str):
            raise ValueError
        if epoch(issued) > now + CLOCK_SLACK_S:
            reasons.append(
                f"its permit was issued {_span(epoch(issued) - now)} in the future: the "
                "writer's clock runs ahead of this one"
            )
    except ValueError:
        reasons.append(f"its permit's issued_at is {echo(issued)}, not an ISO-8601 time")
    headroom = data.get("headroom_usd")
    number = _finite(headroom)
    if "headroom_usd" not in data:
        reasons.append("its permit has no headroom_usd (a number or null)")
    elif number is None and headroom is not None:
        reasons.append(f"its permit's headroom_usd is {echo(headroom)}, not a number or null")
    elif number is not None and number < 0:
        reasons.append(f"its permit's headroom_usd is negative ({_usd(number)})")
    elif number is not None and cost is not None and cost > number and not reasons:
        reasons.append(f"a {_usd(cost)} job exceeds the {_usd(number)} of headroom left")
    return [prefix + r for r in reasons]


def _cut(text: str) -> str:
    """A reason a permit gives, at most REASON_CHARS characters of it."""
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 1] + "…"


# How many times a key's file is read for two reads in a row to agree.
SETTLE_READS = 4


def _read_settled(path: str) -> tuple[str | None, str | None]:
    """A key's file as `_read` gives it, once two reads in a row agree. The daemon swaps a
    key's file with a spare it later writes over (watchdog.atomicfile.rewrite): the file
    under the name is never written in place, but a read held open across two rewrites
    may see a mix of two contents — even one that parses. Such a read is not repeatable:
    the next one sees the file as it is. Never agreeing in SETTLE_READS reads is a problem
    (no-go)."""
    last = _read(path)
    for _ in range(SETTLE_READS - 1):
        now = _read(path)
        if now == last:
            return now
        last = now
    return None, f"kept changing while it was read ({SETTLE_READS} reads): try again"


def _read(path: str) -> tuple[str | None, str | None]:
    """The permit's text, or (None, why not); (None, None) when there is no file. Opened
    without blocking and read only when it is a regular file: a FIFO would wait forever
    for a writer, a device or a huge file would never end."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, f"cannot be opened: {exc.strerror}"
    try:
        kind = os.fstat(fd).st_mode & 0o170000
        if kind != 0o100000:  # S_IFREG
            return None, f"is {_KINDS.get(kind, 'not a regular file')}, not a regular file"
        chunks = []
        size = 0
        while size <= MAX_PERMIT_BYTES:
            chunk = os.read(fd, MAX_PERMIT_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > MAX_PERMIT_BYTES:
            return None, f"is larger than {MAX_PERMIT_BYTES // 1024} KiB: not a permit"
    except OSError as exc:
        return None, f"cannot be read: {exc.strerror}"
    finally:
        os.close(fd)
    try:
        return b"".join(chunks).decode("utf-8"), None
    except UnicodeDecodeError:
        return None, "is not UTF-8 text: not a permit"


_KINDS = {
    0o010000: "a FIFO",
    0o020000: "a character device",
    0o040000: "a directory",
    0o060000: "a block device",
    0o140000: "a socket",
}


def _validate(data: dict[str, object], now: float, ttl_s: float) -> list[str]:
    """The permit's shape and lease: the reasons it is not a valid, current permit. Numbers
    become floats in `data`."""
    reasons = []
    state = data.get("state")
    if state != "armed":
        reasons.append(f"the permit's state is {echo(state)}, not 'armed'")
    for name in NUMBER_FIELDS:
        if name not in data:
            reasons.append(f"the permit has no {name} (a number or null)")
            continue
        value = data[name]
        number = _finite(value)
        if number is not None:
            data[name] = number
        elif value is not None:
            reasons.append(f"the permit's {name} is {echo(value)}, not a number")
        if name == "headroom_usd" and number is not None and number < 0:
            # The daemon writes headroom at 0 or more: less is a tampered permit or a bug.
            reasons.append(
                f"the permit's headroom_usd is negative ({_usd(number)}): the watchdog never "
                "writes that (a tampered permit or a bug)"
            )
    keys_epoch = data.get("keys_epoch")
    if keys_epoch is not None and not isinstance(keys_epoch, str):
        reasons.append(f"the permit's keys_epoch is {echo(keys_epoch)}, not a string or null")
    issued = _stamp(data, "issued_at", reasons)
    expires = _stamp(data, "expires_at", reasons)
    if expires is not None and expires <= now:
        reasons.append(
            f"the permit expired {_span(now - expires)} ago: the watchdog is not refreshing "
            "it (stopped or stuck)"
        )
    if issued is not None and issued > now + CLOCK_SLACK_S:
        reasons.append(
            f"the permit was issued {_span(issued - now)} in the future: the writer's clock "
            "runs ahead of this one"
        )
    elif issued is not None and expires is not None and expires - issued > ttl_s + CLOCK_SLACK_S:
        reasons.append(
            f"the permit's lease of {_span(expires - issued)} is longer than the ttl "
            f"({_span(ttl_s)})"
        )
    elif expires is not None and expires - now > ttl_s + CLOCK_SLACK_S:
        reasons.append(
            f"the permit expires in {_span(expires - now)}, beyond the ttl ({_span(ttl_s)}): "
            "a clock is wrong"
        )
    return reasons


def _finite(value: object) -> float | None:
    """A real JSON number as a float: not a bool (True is an int), not huge, not inf."""
    if type(value) not in (int, float):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except OverflowError:
        return None
    return number if number - number == 0 else None


def _stamp(data: dict[str, object], name: str, reasons: list[str]) -> float | None:
    value = data.get(name)
    if isinstance(value, str):
        try:
            return epoch(value)
        except ValueError:
            pass
    reasons.append(
        f"the permit has no {name}"
        if value is None
        else f"the permit's {name} is {echo(value)}, not an ISO-8601 time"
    )
    return None


def _span(seconds: float) -> str:
    from watchdog.core.words import duration  # only on the way to a no-go: cost is moot

    return duration(seconds)


def _one_line(text: str) -> str:
    """What goes to a job's log: one line, no terminal control characters."""
    return "".join(c if c >= " " and not "\x7f" <= c <= "\x9f" else " " for c in text)


def _said(text: str) -> str:
    """A message as gate prints it: one line, no user:password@ of a URL in it."""
    return mask_userinfo(_one_line(text))


def _usd(value: float) -> str:
    """Dollars for a reason: "$1,234.50", "-$0.50"; a number too large to be money in
    scientific notation ("$1.00e+300"), never hundreds of digits."""
    sign, size = ("-", -value) if value < 0 else ("", value)
    return f"{sign}${size:,.2f}" if size < 1e12 else f"{sign}${size:.2e}"


def _days(value: float) -> str:
    """A runway for a reason: "6.0 days"; an absurd one in scientific notation."""
    return f"{value:.1f} days" if -1e9 < value < 1e9 else f"{value:.2e} days"


# -- the config: [killswitch] path and ttl ----------------------------------------------------


def _killswitch_section(source: str) -> dict[str, object]:
    import tomllib  # only when a config must be read

    try:
        with open(source, "rb") as handle:
            document = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"cannot read the config {source}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"the config {source} is not valid TOML: {exc}") from None
    section = document.get("killswitch", {})
    if not isinstance(section, dict):
        raise ConfigError(f"{source}: [killswitch] must be a table")
    return section


def _duration(value: object) -> float:
    """Seconds from a duration as the daemon's config takes it ("90s", "5m", "4h", "7d",
    "1h30m" or seconds); at least 1 s, as the daemon requires of the ttl. Else ValueError.
    Only when a config or $WATCHDOG_KILLSWITCH__TTL must be read (tomllib costs more)."""
    from watchdog.core.words import parse_duration

    seconds = parse_duration(value).total_seconds()
    if seconds < 1:
        raise ValueError(f"{value!r} must be a duration of at least 1s")
    return seconds
