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

_secrets: list[str] = []
# One alternation of every form of every secret, longest first (so a longer form wins where
# two overlap); None when there is nothing to scrub, which keeps the scrubber free then.
_pattern: re.Pattern[str] | None = None

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


def set_secrets(secrets: Iterable[str]) -> None:
    """Remember the values that must never be printed (keys, tokens, target URLs); replaces
    the previous list. Values shorter than 4 characters are ignored."""
    global _pattern
    _secrets[:] = sorted({s for s in secrets if len(s) >= _MIN_SECRET}, key=len, reverse=True)
    forms = set().union(*(_forms(s) for s in _secrets)) if _secrets else set()
    ordered = sorted(forms, key=lambda f: (-len(f), f))
    _pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None


def scrub(text: str) -> str:
    """Replace configured secrets (in any of their forms) in `text` with ****."""
    if _pattern is None:
        return text
    return _pattern.sub("****", text)


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
