"""A strict reader for the permit file (its flat JSON object and its ISO-8601 time stamps),
and the Verdict that `gate` and the daemon's /preflight (through watchdog.control) give.

`budget-watchdog gate` runs before every batch launch, so this module imports nothing
Python has not already loaded at start-up: not `json` (which brings `re` and `enum`), not
`datetime`, not even `__future__` or `typing`. The permit is a flat object the daemon
writes with `json.dumps`; `parse_object` reads exactly that shape and rejects everything
else (nesting, duplicate keys, trailing data, truncation), which a reader treats as no-go.
"""

# The reason `gate --min-runway-days` gives when the permit or the daemon's answer knows no
# runway (without a balance there is none to compare), in the words of the daemon's
# /preflight?min_runway_days=.
RUNWAY_UNKNOWN = (
    "runway unknown (no balance known: a management key or a key limit that never resets "
    "gives one), so at least {floor:g} days cannot be promised"
)
ECHO_CHARS = 40  # the most of a value from a permit or an answer a message repeats
# The bytes a key's file name keeps as they are; every other byte of its UTF-8 is %XX.
_FILE_NAME_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
# A file name may have 255 bytes (NAME_MAX); a longer encoding keeps this much of itself and
# ends in "~" and a hash of the name ("~" is in no other encoding, so names stay distinct).
# A file name may have 255 bytes; the writer's temp file adds about 20 to the name.
KEY_FILE_NAME_MAX = 230
_KEY_FILE_PREFIX = 190


class Verdict:
    """The answer: `go`, the `reasons` against it, and what the permit (or the daemon) said."""

    __slots__ = ("go", "permit", "reasons")

    def __init__(self, go: bool, reasons: list[str], permit: dict[str, object] | None) -> None:
        self.go = go
        self.reasons = reasons
        self.permit = permit

    def __repr__(self) -> str:
        return f"Verdict(go={self.go}, reasons={self.reasons})"


def echo(value: object) -> str:
    """`value` as a message repeats it: its repr, cut to ECHO_CHARS characters ("…" ends a
    cut one), so a 400-digit number or a long string in a permit cannot flood a job's log."""
    text = repr(value)
    return text if len(text) <= ECHO_CHARS else text[: ECHO_CHARS - 1] + "…"


def mask_userinfo(text: str) -> str:
    """`text` with the user:password@ of every URL in it replaced by "****@": a URL ends at
    the quote that opened it (as a repr writes it) or else at white space, and its userinfo
    at the last "@" in it."""
    out = []
    pos = 0
    while True:
        sep = text.find("://", pos)
        if sep < 0:
            break
        start = sep
        while start > pos and (text[start - 1].isalnum() or text[start - 1] in "+.-"):
            start -= 1
        quote = text[start - 1] if start > 0 and text[start - 1] in "'\"" else ""
        end = sep + 3
        while end < len(text) and (
            text[end] != quote if quote else not text[end].isspace() and text[end] not in "'\""
        ):
            end += 1
        at = text.rfind("@", sep + 3, end)
        if at >= 0:
            out.append(text[pos : sep + 3] + "****")
            pos = at
        else:
            out.append(text[pos:end])
            pos = end
        if pos >= len(text):
            break
    out.append(text[pos:])
    return "".join(out)


def key_file_name(name: str) -> str:
    """The file in `<permit>.keys/` that holds the permit of the key named `name`: its UTF-8
    with every byte outside [A-Za-z0-9_-] (".", "/", "%", spaces, other scripts) written %XX,
    so no name walks out of the directory, hides as a dot file or meets another name. An
    encoding longer than 230 bytes is cut to 190 and ends in "~" and 32 hex digits of the
    name's SHA-256. Raise ValueError for an empty name, one with NUL, or one that is not
    text (a lone surrogate)."""
    if not name or "\0" in name:
        raise ValueError(f"not a key's name: {echo(name)}")
    try:
        raw = name.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"not a key's name (not UTF-8 text): {echo(name)}") from None
    out = "".join(chr(b) if b in _FILE_NAME_BYTES else f"%{b:02X}" for b in raw)
    if len(out) <= KEY_FILE_NAME_MAX:
        return out
    import hashlib  # only for a name this long: the gate path does without it otherwise

    cut = _KEY_FILE_PREFIX
    while "%" in out[cut - 2 : cut]:  # never half of a %XX
        cut -= 1
    return out[:cut] + "~" + hashlib.sha256(raw).hexdigest()[:32]


_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_DIGITS = "0123456789"
_HEX = "0123456789abcdefABCDEF"


def parse_object(text: str) -> dict[str, object]:
    """Given JSON text, return the object it holds when that is an object whose values are
    strings, numbers, booleans or null, and whose keys are distinct. Raise ValueError for
    anything else: a nested value, a duplicate key, trailing data, truncation, or text that
    is not JSON (`json.loads` would reject it too)."""
    pos = _skip(text, 0)
    if text[pos : pos + 1] != "{":
        raise ValueError("not an object")
    pos = _skip(text, pos + 1)
    out: dict[str, object] = {}
    if text[pos : pos + 1] == "}":
        return _end(text, pos + 1, out)
    while True:
        key, pos = _string(text, pos)
        if key in out:
            raise ValueError(f"duplicate key {echo(key)}")
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


def epoch(stamp: str) -> float:
    """Given 'YYYY-MM-DDTHH:MM:SS[.f][Z|±HH:MM]' (no offset means UTC), return epoch
    seconds. Raise ValueError for anything else, including dates that do not exist."""
    if (
        len(stamp) < 19
        or stamp[4] != "-"
        or stamp[7] != "-"
        or stamp[10] not in ("T", " ")
        or stamp[13] != ":"
        or stamp[16] != ":"
    ):
        raise ValueError("not ISO-8601")
    year, month, day = _int(stamp[0:4]), _int(stamp[5:7]), _int(stamp[8:10])
    hour, minute, second = _int(stamp[11:13]), _int(stamp[14:16]), _int(stamp[17:19])
    if not (
        year >= 1
        and 1 <= month <= 12
        and 1 <= day <= _days_in(year, month)
        and hour < 24
        and minute < 60
        and second < 60
    ):
        raise ValueError("not a date")
    rest = stamp[19:]
    fraction = 0.0
    if rest[:1] == ".":
        digits = 1
        while digits < len(rest) and rest[digits] in _DIGITS:
            digits += 1
        if digits == 1:
            raise ValueError("bad fraction")
        fraction = float("0" + rest[:digits])
        rest = rest[digits:]
    offset = 0
    if rest in ("", "Z", "z"):
        pass
    elif len(rest) == 6 and rest[0] in ("+", "-") and rest[3] == ":":
        hours, minutes = _int(rest[1:3]), _int(rest[4:6])
        if hours >= 24 or minutes >= 60:
            raise ValueError("bad time zone")
        offset = (hours * 3600 + minutes * 60) * (1 if rest[0] == "+" else -1)
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


# -- helpers -----------------------------------------------------------------------------------


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
    return all(c in _HEX for c in text)


def _value(text: str, pos: int) -> tuple[object, int]:
    char = text[pos : pos + 1]
    if char == '"':
        return _string(text, pos)
    for word, value in (("null", None), ("true", True), ("false", False)):
        if text.startswith(word, pos):
            return value, pos + len(word)
    return _number(text, pos)


def _number(text: str, pos: int) -> tuple[object, int]:
    """JSON's number grammar, exactly: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?"""
    end = pos
    if text[end : end + 1] == "-":
        end += 1
    if text[end : end + 1] == "0":
        end += 1
    elif text[end : end + 1] in ("1", "2", "3", "4", "5", "6", "7", "8", "9"):
        end = _run_of_digits(text, end)
    else:
        raise ValueError("expected a value")
    is_int = True
    if text[end : end + 1] == ".":
        after = _run_of_digits(text, end + 1)
        if after == end + 1:
            raise ValueError("bad number")
        end, is_int = after, False
    if text[end : end + 1] in ("e", "E"):
        start = end + 1
        if text[start : start + 1] in ("+", "-"):
            start += 1
        after = _run_of_digits(text, start)
        if after == start:
            raise ValueError("bad number")
        end, is_int = after, False
    token = text[pos:end]
    return (int(token) if is_int else float(token)), end


def _run_of_digits(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _DIGITS:
        pos += 1
    return pos


def _int(text: str) -> int:
    """ASCII digits only: int() would also take ' 7', '+7', '0_7' and other digits."""
    if not text or not all(c in _DIGITS for c in text):
        raise ValueError(f"expected digits, not {text!r}")
    return int(text)


def _days_in(year: int, month: int) -> int:
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return 30 if month in (4, 6, 9, 11) else 31
