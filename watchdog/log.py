"""Logging: structlog configured once at start-up, one event per line on stdout.

A terminal gets the console renderer; anything else (systemd's journal, a pipe) gets JSON
lines. A processor replaces every configured secret with `****` wherever it appears, so a
key that slipped into an exception message still never reaches the log.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog

_secrets: list[str] = []


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        for secret in _secrets:
            if secret in value:
                value = value.replace(secret, "****")
        return value
    if isinstance(value, dict):
        return {k: _scrub_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_scrub_value(v) for v in value)
    return value


def scrub_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: replace configured secrets in every value with ****."""
    if not _secrets:
        return event_dict
    for key, value in event_dict.items():
        event_dict[key] = _scrub_value(value)
    return event_dict


def scrub(text: str) -> str:
    """Replace configured secrets in `text` with ****."""
    result: str = _scrub_value(text)
    return result


def set_secrets(secrets: Iterable[str]) -> None:
    """Remember the values that must never be printed (keys, tokens, target URLs)."""
    _secrets[:] = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)


def configure(
    *, json: bool | None = None, level: str = "info", stream: TextIO | None = None
) -> None:
    """Configure structlog for the process: JSON lines unless `stream` is a terminal."""
    out = stream or sys.stdout
    use_json = not out.isatty() if json is None else json
    renderer: Any = (
        structlog.processors.JSONRenderer(sort_keys=False)
        if use_json
        else structlog.dev.ConsoleRenderer(
            colors=True, exception_formatter=structlog.dev.plain_traceback
        )
    )
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        scrub_secrets,
    ]
    if use_json:
        processors.append(structlog.processors.format_exc_info)
    processors.append(renderer)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    # Libraries log through the standard library; keep their chatter (a line per HTTP
    # request, scheduler notices) out of the journal unless it is a real problem.
    for noisy in ("httpx", "httpcore", "apscheduler", "uvicorn", "uvicorn.error", "apprise"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").setLevel(logging.CRITICAL)


def get_logger(name: str = "budget-watchdog") -> Any:
    return structlog.get_logger(name)
