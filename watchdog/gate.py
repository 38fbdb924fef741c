"""`budget-watchdog gate`: may a batch job launch now? Exit 0 go, 1 no-go, 2 usage error.

Batch jobs run this before every launch, so it imports nothing that Python has not already
loaded at start-up (sys, os, time): not even `json` or `datetime`, which cost more than
the whole check. The permit is a flat JSON object we write ourselves; `_parse_object`
reads exactly that shape and calls anything else bad JSON (which means no-go).

For Python jobs the same check is `check()`:

    from watchdog.gate import check
    verdict = check(cost=3.0)
    if not verdict.go:
        raise SystemExit(f"budget-watchdog says no: {'; '.join(verdict.reasons)}")
"""

from __future__ import annotations

import os
import sys
import time

DEFAULT_PERMIT = "/run/budget-watchdog/permit"
USAGE = """usage: budget-watchdog gate [--cost USD] [--permit PATH | --url URL]
                            [--min-runway-days N] [--config PATH] [--quiet]

Exit 0 when a batch job may launch now, 1 when it may not (the reasons go to stderr),
2 on a usage or config error.

  --cost USD            what the job may spend: no-go if that exceeds the headroom
  --permit PATH         the permit file (default: [killswitch] path of --config or
                        $WATCHDOG_CONFIG, $WATCHDOG_KILLSWITCH__PATH, else
                        /run/budget-watchdog/permit)
  --url URL             ask the daemon's /preflight instead (e.g. http://127.0.0.1:8787);
                        a token comes from $WATCHDOG_SERVER__TOKEN
  --min-runway-days N   no-go if the credit lasts fewer days than N
  --config PATH         the daemon's config, to find the permit path
  --quiet               print nothing on go
"""


class Verdict:
    """The answer: `go`, the `reasons` against it, and what the permit said."""

    __slots__ = ("go", "permit", "reasons")

    def __init__(self, go: bool, reasons: list[str], permit: dict[str, object] | None) -> None:
        self.go = go
        self.reasons = reasons
        self.permit = permit

    def __repr__(self) -> str:
        return f"Verdict(go={self.go}, reasons={self.reasons})"


def check(
    cost: float | None = None,
    permit: str | None = None,
    min_runway_days: float | None = None,
    now: float | None = None,
) -> Verdict:
    """Given a job's cost, the permit path and a runway floor, return the Verdict. A missing
    permit, bad JSON, a state other than armed, or an expired lease is no-go."""
    path = permit or permit_path(None)
    now = time.time() if now is None else now
    try:
        with open(path, "rb") as handle:
            raw = handle.read(65536)
    except FileNotFoundError:
        return Verdict(
            False,
            [f"no permit at {path}: spending is stopped, or the watchdog is not running"],
            None,
        )
    except OSError as exc:
        return Verdict(False, [f"cannot read the permit {path}: {exc.strerror}"], None)
    try:
        data = _parse_object(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        return Verdict(False, [f"the permit {path} is not valid JSON ({exc})"], None)
    reasons = []
    if data.get("state") != "armed":
        reasons.append(f"the permit's state is {data.get('state')!r}, not 'armed'")
    expires = data.get("expires_at")
    try:
        expires_at = _epoch(expires) if isinstance(expires, str) else None
    except ValueError:
        expires_at = None
    if expires_at is None:
        reasons.append("the permit has no valid expires_at")
    elif expires_at <= now:
        reasons.append(
            f"the permit expired {_ago(now - expires_at)} ago: the watchdog is not refreshing "
            "it (stopped or stuck)"
        )
    # headroom_usd already stands under the balance (min_balance and the critical buffer).
    headroom = data.get("headroom_usd")
    if cost is not None and isinstance(headroom, int | float) and cost > headroom:
        reasons.append(f"a ${cost:,.2f} job exceeds the ${headroom:,.2f} of headroom left")
    runway = data.get("runway_days")
    if min_runway_days is not None and isinstance(runway, int | float) and runway < min_runway_days:
        reasons.append(f"credit lasts {runway:.1f} days, under the {min_runway_days:g} asked for")
    return Verdict(not reasons, reasons, data)


def permit_path(config: str | None) -> str:
    """--permit's default: the config's [killswitch] path, the env, or the standard path."""
    env = os.environ.get("WATCHDOG_KILLSWITCH__PATH")
    if env:
        return env
    source = config or os.environ.get("WATCHDOG_CONFIG")
    if source:
        import tomllib  # only when a config must be read

        with open(source, "rb") as handle:
            section = tomllib.load(handle).get("killswitch", {})
        value = section.get("path") if isinstance(section, dict) else None
        if isinstance(value, str):
            return value
    return DEFAULT_PERMIT


def ask_daemon(url: str, cost: float | None, min_runway_days: float | None) -> Verdict:
    """The daemon's /preflight (imports urllib and json: the network costs more anyway)."""
    import json
    import urllib.error
    import urllib.parse
    import urllib.request

    query = {}
    if cost is not None:
        query["cost"] = str(cost)
    if min_runway_days is not None:
        query["min_runway_days"] = str(min_runway_days)
    target = url.rstrip("/") + "/preflight" + ("?" + urllib.parse.urlencode(query) if query else "")
    if not target.startswith(("http://", "https://")):
        raise ValueError(f"--url must be http:// or https://, not {url!r}")
    headers = {"Accept": "application/json"}
    token = os.environ.get("WATCHDOG_SERVER__TOKEN")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(target, headers=headers)  # noqa: S310 - scheme checked
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            body = json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            body = json.loads(exc.read() or b"{}")
        except ValueError:
            body = {}
        if exc.code == 409:
            return Verdict(False, [str(r) for r in body.get("reasons", [])] or ["no-go"], None)
        return Verdict(False, [f"the daemon answered HTTP {exc.code}"], None)
    except (OSError, ValueError) as exc:
        return Verdict(False, [f"cannot ask the daemon at {url}: {exc}"], None)
    return Verdict(bool(body.get("go")), [str(r) for r in body.get("reasons", [])], None)


# -- the command ----------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    try:
        opts = _parse_args(argv)
    except ValueError as exc:
        sys.stderr.write(f"budget-watchdog gate: {exc}\n{USAGE}")
        return 2
    if opts is None:
        sys.stdout.write(USAGE)
        return 0
    cost = opts.get("cost")
    runway = opts.get("min-runway-days")
    try:
        if "url" in opts:
            verdict = ask_daemon(str(opts["url"]), _num(cost), _num(runway))
        else:
            path = str(opts["permit"]) if "permit" in opts else permit_path(opts.get("config"))
            verdict = check(_num(cost), path, _num(runway))
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"budget-watchdog gate: {exc}\n")
        return 2
    if verdict.go:
        if "quiet" not in opts:
            sys.stderr.write("go\n")
        return 0
    sys.stderr.write("no-go: " + "; ".join(verdict.reasons) + "\n")
    return 1


def _parse_args(argv: list[str]) -> dict[str, str] | None:
    """A hand-written parser: argparse alone costs more than the whole check."""
    valued = {"cost", "permit", "url", "min-runway-days", "config"}
    opts: dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-h", "--help"):
            return None
        if not arg.startswith("--"):
            raise ValueError(f"unexpected argument {arg!r}")
        name, eq, value = arg[2:].partition("=")
        if name == "quiet" and not eq:
            opts["quiet"] = ""
        elif name in valued:
            if not eq:
                i += 1
                if i >= len(argv):
                    raise ValueError(f"--{name} needs a value")
                value = argv[i]
            opts[name] = value
        else:
            raise ValueError(f"unknown option --{name}")
        i += 1
    if "url" in opts and "permit" in opts:
        raise ValueError("give --permit or --url, not both")
    for name in ("cost", "min-runway-days"):
        if name in opts:
            number = _num(opts[name])
            if number is None or number < 0 or number != number:
                raise ValueError(f"--{name} must be a number, 0 or more")
    return opts


def _num(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# -- a strict reader for the permit's flat JSON object -----------------------------------------

_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def _parse_object(text: str) -> dict[str, object]:
    """Parse a JSON object whose values are strings, numbers, booleans or null. Raise
    ValueError for anything else, including nesting, trailing data or truncation."""
    pos = _skip(text, 0)
    if text[pos : pos + 1] != "{":
        raise ValueError("not an object")
    pos = _skip(text, pos + 1)
    out: dict[str, object] = {}
    if text[pos : pos + 1] == "}":
        return _end(text, pos + 1, out)
    while True:
        key, pos = _string(text, pos)
        pos = _skip(text, pos)
        if text[pos : pos + 1] != ":":
            raise ValueError("expected ':'")
        value, pos = _value(text, _skip(text, pos + 1))
        out[key] = value
        pos = _skip(text, pos)
        char = text[pos : pos + 1]
        if char == "}":
            return _end(text, pos + 1, out)
        if char != ",":
            raise ValueError("expected ',' or '}'")
        pos = _skip(text, pos + 1)


def _end(text: str, pos: int, out: dict[str, object]) -> dict[str, object]:
    if _skip(text, pos) != len(text):
        raise ValueError("data after the object")
    return out


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _string(text: str, pos: int) -> tuple[str, int]:
    if text[pos : pos + 1] != '"':
        raise ValueError("expected a string")
    pos += 1
    parts = []
    while True:
        end = pos
        while end < len(text) and text[end] not in '"\\':
            if text[end] < " ":
                raise ValueError("control character in a string")
            end += 1
        if end >= len(text):
            raise ValueError("unterminated string")
        parts.append(text[pos:end])
        if text[end] == '"':
            return "".join(parts), end + 1
        code = text[end + 1 : end + 2]
        if code == "u":
            hexa = text[end + 2 : end + 6]
            if len(hexa) != 4 or not _is_hex(hexa):
                raise ValueError("bad \\u escape")
            code_point = int(hexa, 16)
            pos = end + 6
            low = text[pos + 2 : pos + 6] if text[pos : pos + 2] == "\\u" else ""
            if (
                0xD800 <= code_point < 0xDC00
                and len(low) == 4
                and _is_hex(low)
                and 0xDC00 <= int(low, 16) < 0xE000
            ):
                # A UTF-16 surrogate pair, as json.dumps writes characters beyond the BMP.
                code_point = 0x10000 + ((code_point - 0xD800) << 10) + (int(low, 16) - 0xDC00)
                pos += 6
            parts.append(chr(code_point))
        elif code in _ESCAPES:
            parts.append(_ESCAPES[code])
            pos = end + 2
        else:
            raise ValueError("bad escape")


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


def _value(text: str, pos: int) -> tuple[object, int]:
    char = text[pos : pos + 1]
    if char == '"':
        return _string(text, pos)
    for word, value in (("null", None), ("true", True), ("false", False)):
        if text.startswith(word, pos):
            return value, pos + len(word)
    end = pos
    while end < len(text) and text[end] in "+-0123456789.eE":
        end += 1
    token = text[pos:end]
    if not token or token[0] == "+" or (len(token) > 1 and token[0] == "0" and token[1].isdigit()):
        raise ValueError("expected a value")
    try:
        number = float(token)
    except ValueError:
        raise ValueError(f"bad number {token!r}") from None
    is_int = token.lstrip("-").isdigit()
    return (int(token) if is_int else number), end


def _epoch(stamp: str) -> float:
    """ISO-8601 'YYYY-MM-DDTHH:MM:SS[.f][Z|±HH:MM]' to epoch seconds (no offset = UTC)."""
    if (
        len(stamp) < 19
        or stamp[4] != "-"
        or stamp[7] != "-"
        or stamp[10] not in "T "
        or stamp[13] != ":"
        or stamp[16] != ":"
    ):
        raise ValueError("not ISO-8601")
    year, month, day = int(stamp[0:4]), int(stamp[5:7]), int(stamp[8:10])
    hour, minute, second = int(stamp[11:13]), int(stamp[14:16]), int(stamp[17:19])
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 61):
        raise ValueError("not a date")
    rest = stamp[19:]
    fraction = 0.0
    if rest.startswith("."):
        digits = 0
        while digits + 1 < len(rest) and rest[digits + 1].isdigit():
            digits += 1
        if digits == 0:
            raise ValueError("bad fraction")
        fraction = float("0" + rest[: digits + 1])
        rest = rest[digits + 1 :]
    offset = 0
    if rest in ("", "Z", "z"):
        pass
    elif len(rest) == 6 and rest[0] in "+-" and rest[3] == ":":
        offset = (int(rest[1:3]) * 3600 + int(rest[4:6]) * 60) * (1 if rest[0] == "+" else -1)
    else:
        raise ValueError("bad time zone")
    # Days from 1970-01-01 to the civil date (Howard Hinnant's algorithm).
    y = year - (month <= 2)
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    days = era * 146097 + doe - 719468
    return days * 86400 + hour * 3600 + minute * 60 + second + fraction - offset
