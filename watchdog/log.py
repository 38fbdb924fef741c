"""Logging: one processor chain for every line, ours and the libraries', one line per event.

structlog is bridged onto the standard library: our loggers are stdlib loggers whose event
dicts travel to a single `logging.StreamHandler` on the root logger, and its
`structlog.stdlib.ProcessorFormatter` runs the same chain for records that libraries
(apprise, httpx, uvicorn, apscheduler) send through `logging`. So every line is rendered the
same way — the console renderer for a person at a terminal, JSON lines otherwise (systemd's
journal, a pipe) — and every line passes the secret scrubber, which replaces each configured
secret with `****` wherever it appears: in a field, nested in a value, in a library's message,
in an exception's text, and also in its escaped forms (JSON, repr, URL-encoded) and, for a
secret of several lines (a key file with a comment), in each of its lines.

Partial secrets are masked too (a provider's error that echoes the first 20 characters of a
key): every stretch of 12 or more consecutive characters that the text shares with a key or
token (in any of those forms) is masked, together with the rest of the run of key-like
characters (`A-Z a-z 0-9 _ - + / =`) it sits in. So at most 11 consecutive characters of a
secret survive anywhere: "sk-or-v1-" and 2 more, never 3 characters past that public
prefix. A notification URL is matched whole, and partially through the parts of it that
`watchdog.notify.describe_target` masks (never through its scheme, host or plain words,
which its shown form keeps).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import urllib.parse
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any, Literal, TextIO

import structlog

_MIN_SECRET = 4  # shorter values are ignored: scrubbing "abc" would mangle every line
_MIN_LINE = 8  # a line of a multi-line secret is scrubbed on its own from this length
_MIN_PARTIAL = 12  # a stretch this long shared with a secret is masked
_BLOCK = _MIN_PARTIAL // 2  # every 12-character stretch holds a whole block at a multiple of 6
_MIN_URL_PART = 8  # the masked parts of a notification URL scrubbed in logs from this length
_KEYLIKE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-+/=")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")

_secrets: list[str] = []
# One alternation of every form of every secret, longest first (so a longer form wins where
# two overlap); None when there is nothing to scrub, which keeps the scrubber free then.
_pattern: re.Pattern[str] | None = None
# For partial matches: each block of 6 characters at a multiple of 6 in a form of a secret,
# and the (form, offset) pairs it sits at. Empty when no secret is long enough.
_blocks: dict[str, list[tuple[str, int]]] = {}

# The handler `configure` put on the root logger (to replace, never stack, on a second call)
# and the root level it found there before the first call (restored by `reset`).
_handler: logging.Handler | None = None
_saved_root_level: int | None = None

_NOISY = ("httpx", "httpcore", "apscheduler", "uvicorn", "uvicorn.error", "apprise")


def _forms(secret: str) -> set[str]:
    """The ways `secret` can show up in a log line: as itself, escaped in JSON or a repr,
    URL-encoded, and line by line when it has several lines."""
    bases = {secret}
    bases.update(s for line in secret.splitlines() if len(s := line.strip()) >= _MIN_LINE)
    forms: set[str] = set()
    for base in bases:
        forms.update(
            {
                base,
                json.dumps(base)[1:-1],
                json.dumps(base, ensure_ascii=False)[1:-1],
                repr(base)[1:-1],
                urllib.parse.quote(base, safe=""),
                urllib.parse.quote(base),  # keeps "/": how a secret looks inside a URL path
            }
        )
    return {f for f in forms if len(f) >= _MIN_SECRET}


def _url_parts(url: str) -> list[str]:
    """The parts of a notification URL its shown form masks (tokens, passwords, topics)."""
    from watchdog.notify import secret_parts  # only when a URL is registered

    return [part for part in secret_parts(url) if len(part) >= _MIN_URL_PART]


def _partial_bases(secret: str) -> set[str]:
    """What partial matches are looked for in: the secret and its lines, when they hold no
    white space (a key, a token, a password; not a comment line of a key file)."""
    bases = {secret, *(line.strip() for line in secret.splitlines())}
    return {b for b in bases if len(b) >= _MIN_PARTIAL and not any(c.isspace() for c in b)}


def set_secrets(secrets: Iterable[str]) -> None:
    """Remember the values that must never be printed (keys, tokens, target URLs); replaces
    the previous list. Values shorter than 4 characters are ignored."""
    global _pattern
    given = {s for s in secrets if len(s) >= _MIN_SECRET}
    partial: set[str] = set()
    for secret in list(given):
        if _URL.match(secret):  # matched whole; partially only through its secret parts
            parts = _url_parts(secret)
            given.update(parts)
            partial.update(*(_partial_bases(p) for p in parts))
        else:
            partial.update(_partial_bases(secret))
    _secrets[:] = sorted(given, key=len, reverse=True)
    forms = set().union(*(_forms(s) for s in _secrets)) if _secrets else set()
    ordered = sorted(forms, key=lambda f: (-len(f), f))
    _pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None
    blocks: dict[str, set[tuple[str, int]]] = {}
    for base in partial:
        for form in (f for f in _forms(base) if len(f) >= _MIN_PARTIAL):
            for offset in range(0, len(form) - _BLOCK + 1, _BLOCK):
                blocks.setdefault(form[offset : offset + _BLOCK], set()).add((form, offset))
    _blocks.clear()
    _blocks.update((block, sorted(holders)) for block, holders in blocks.items())


def scrub(text: str) -> str:
    """Replace configured secrets (in any of their forms) in `text` with ****, and every
    part of a key or token of 12 characters or more, with the run of key-like characters
    around it."""
    if _pattern is None:
        return text
    text = _pattern.sub("****", text)
    return _scrub_partial(text) if _blocks else text


def _scrub_partial(text: str) -> str:
    """Mask every stretch of 12+ characters `text` shares with a form of a secret, widened
    to the runs of key-like characters at its ends. Any such stretch holds a whole block
    (6 characters at a multiple of 6 in the form): find the blocks, grow each match."""
    spans: list[tuple[int, int]] = []
    size = len(text)
    for block, holders in _blocks.items():
        at = text.find(block)
        while at >= 0:
            for form, offset in holders:
                start, left = at, offset
                while start > 0 and left > 0 and text[start - 1] == form[left - 1]:
                    start, left = start - 1, left - 1
                end, right = at + _BLOCK, offset + _BLOCK
                while end < size and right < len(form) and text[end] == form[right]:
                    end, right = end + 1, right + 1
                if end - start >= _MIN_PARTIAL:
                    spans.append((start, end))
            at = text.find(block, at + 1)
    if not spans:
        return text
    out: list[str] = []
    done = 0
    for start, end in sorted(spans):
        if text[start] in _KEYLIKE:
            while start > 0 and text[start - 1] in _KEYLIKE:
                start -= 1
        if text[end - 1] in _KEYLIKE:
            while end < size and text[end] in _KEYLIKE:
                end += 1
        if start < done:  # overlaps the previous span: extend it
            if end > done:
                done = end
            continue
        out.append(text[done:start])
        out.append("****")
        done = end
    out.append(text[done:])
    return "".join(out)


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {_scrub_value(k): _scrub_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub_value(v) for v in value]
    if isinstance(value, tuple):
        items = [_scrub_value(v) for v in value]
        make = getattr(value, "_make", None)  # a namedtuple takes its fields positionally
        return make(items) if make is not None else type(value)(items)
    return value


def scrub_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: replace configured secrets in every value (nested too) with ****."""
    if _pattern is None:
        return event_dict
    for key, value in list(event_dict.items()):
        event_dict[key] = _scrub_value(value)
    return event_dict


def _json_default(obj: Any) -> Any:
    """What JSON cannot hold is written as its repr (structlog's fallback) — scrubbed, since
    the event-dict scrubber only sees strings and containers, not an object's repr."""
    to_structlog = getattr(obj, "__structlog__", None)
    if to_structlog is not None:
        return _scrub_value(to_structlog())
    return scrub(repr(obj))


def _scrubbing(renderer: Callable[..., str]) -> Callable[..., str]:
    """Wrap a text renderer so its finished line is scrubbed as well: the console renderer
    formats tracebacks and reprs itself, after the event-dict scrubber has run."""

    def render(logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> str:
        return scrub(renderer(logger, method, event_dict))

    return render


def _isatty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if isatty is not None else False
    except ValueError:  # a closed stream
        return False


def configure(
    *,
    format: Literal["auto", "json", "console"] = "auto",
    level: str = "info",
    stream: TextIO | None = None,
) -> None:
    """Configure logging for the process: ours and the libraries' records through one chain.

    `format="auto"` renders for a person when `stream` (stdout by default) is a terminal and
    JSON lines otherwise. Safe to call again: the handler of the previous call is replaced.
    """
    global _handler, _saved_root_level
    out = stream if stream is not None else sys.stdout
    tty = _isatty(out)
    if format not in ("auto", "json", "console"):
        raise ValueError(f"unknown log format {format!r}")
    use_json = not tty if format == "auto" else format == "json"
    numeric_level = logging.getLevelNamesMapping()[level.upper()]

    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    # Ours: the fields, then handed to the formatter below (which renders them).
    ours: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        timestamper,
        structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
    ]
    # The libraries' records: the same fields, plus the name of the library's logger.
    foreign: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.stdlib.add_logger_name,
        timestamper,
    ]
    final: list[Any] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if use_json:
        # Exceptions become an `exception` string first, so the scrubber sees their text.
        final += [
            structlog.processors.format_exc_info,
            scrub_secrets,
            structlog.processors.JSONRenderer(sort_keys=False, default=_json_default),
        ]
    else:
        # The console renderer writes the traceback itself: scrub its finished text too.
        final += [
            scrub_secrets,
            _scrubbing(
                structlog.dev.ConsoleRenderer(
                    colors=tty, exception_formatter=structlog.dev.plain_traceback
                )
            ),
        ]

    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(foreign_pre_chain=foreign, processors=final)
    )
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    else:
        _saved_root_level = root.level
    root.addHandler(handler)
    root.setLevel(numeric_level)
    _handler = handler

    structlog.configure(
        processors=ours,
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )
    # Libraries log through the standard library; keep their chatter (a line per HTTP
    # request, scheduler notices) out of the journal unless it is a real problem.
    for noisy in _NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").setLevel(logging.CRITICAL)


def reset() -> None:
    """Undo `configure`: remove its root handler (only that one), restore the root level it
    found, and return structlog to its defaults. For tests; the daemon configures once."""
    global _handler, _saved_root_level
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
        _handler = None
    if _saved_root_level is not None:
        root.setLevel(_saved_root_level)
        _saved_root_level = None
    structlog.reset_defaults()


def get_logger(name: str = "budget-watchdog") -> Any:
    """A structlog logger whose methods take keyword fields: `log.info("poll", spent=1.2)`."""
    return structlog.get_logger(name)
