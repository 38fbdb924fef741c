"""Notification delivery through Apprise, one target at a time.

A send either returns or raises DeliveryError with Apprise's own explanation; the outbox
records it and retries. Apprise is imported lazily (inside functions): it loads every
plugin at import, which commands that never notify should not pay for.
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from watchdog.core.model import Recipient

SEVERITY_TYPE = {"info": "info", "warning": "warning", "critical": "failure"}


class DeliveryError(Exception):
    """A message was not delivered; `message` says why (secrets masked)."""


@dataclass(frozen=True)
class Target:
    """A configured target: its stable id (hash of the URL), URL, masked form, severities."""

    id: str
    url: str
    shown: str
    severities: tuple[str, ...]

    @property
    def recipient(self) -> Recipient:
        """What routing needs (the core never sees the URL)."""
        return Recipient(self.id, self.severities)


def target_id(url: str) -> str:
    """A stable, non-secret id for a target: a hash of its URL."""
    return hashlib.sha256(url.encode()).hexdigest()[:16]


def make_target(url: str, severities: Sequence[str], shown: str | None = None) -> Target:
    """The one way a Target is built: `shown` is the masked URL (Apprise's privacy form,
    computed here when not given, which imports Apprise)."""
    return Target(
        target_id(url), url, describe_target(url) if shown is None else shown, tuple(severities)
    )


class Transport(Protocol):
    def send(
        self, target: Target, title: str, body: str, severity: str, resolved: bool
    ) -> None: ...


class AppriseTransport:
    """Sends through Apprise; one Apprise object per target, built on first use."""

    def __init__(self, timeout: float = 15.0) -> None:
        self._timeout = timeout
        self._objects: dict[str, Any] = {}

    def send(self, target: Target, title: str, body: str, severity: str, resolved: bool) -> None:
        import apprise

        obj = self._objects.get(target.id)
        if obj is None:
            register_console()
            obj = apprise.Apprise()
            if not obj.add(target.url):
                raise DeliveryError("Apprise cannot use this URL")
            self._objects[target.id] = obj
        kind = "success" if resolved else SEVERITY_TYPE.get(severity, "info")
        try:
            result = obj.notify(
                body=body, title=title, notify_type=kind, body_format=apprise.NotifyFormat.MARKDOWN
            )
        except Exception as exc:  # a plugin bug must not take the loop down
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from None
        if not result:
            raise DeliveryError(_why(result))


def _why(result: Any) -> str:
    try:
        problems = [e.message for e in result.logs() if e.level in ("ERROR", "WARNING")]
    except AttributeError:  # Apprise 1.x returned a bool
        problems = []
    return problems[-1] if problems else "not delivered (no reason given)"


_console_registered = False


def register_console() -> None:
    """Register `console://`: an Apprise custom notification that prints the message to
    stderr. The demo uses it to show alerts; it works in any config too."""
    global _console_registered
    if _console_registered:
        return
    from apprise.decorators import notify

    @notify(on="console", name="budget-watchdog console")  # type: ignore[untyped-decorator,no-untyped-call]
    def _console(body: str, title: str, notify_type: str, *args: Any, **kwargs: Any) -> bool:
        rule = "─" * min(78, max(len(title), 40))
        print(f"\n{rule}\n{title}\n{rule}\n{body}\n{rule}\n", file=sys.stderr, flush=True)
        return True

    _console_registered = True


def _instantiate(url: str) -> Any:
    import apprise

    register_console()
    return apprise.Apprise.instantiate(url, suppress_exceptions=True)


def describe_target(url: str) -> str:
    """Given an Apprise URL, return it with every secret masked (Apprise's privacy form),
    or "scheme://…" when Apprise cannot parse it."""
    plugin = _instantiate(url)
    if plugin is not None:
        return _without_defaults(str(plugin.url(privacy=True)))
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", url)
    return f"{scheme.group(1)}://…" if scheme else "(not a URL)"


# Apprise adds its defaults to every URL it prints; they only make a target harder to spot.
_NOISE = {
    "overflow",
    "retry",
    "wait",
    "optional",
    "method",
    "cto",
    "rto",
    "format",
    "emojis",
    "verify",
    "store",
    "tz",
}


def _without_defaults(url: str) -> str:
    base, _, query = url.partition("?")
    kept = [p for p in query.split("&") if p and p.split("=", 1)[0] not in _NOISE]
    return base + ("?" + "&".join(kept) if kept else "")


def url_problem(url: str) -> str | None:
    """Given an Apprise URL, return None when Apprise can use it, else why not."""
    if not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", url):
        return "not a URL (expected scheme://…, e.g. slack://… or mailtos://…)"
    if _instantiate(url) is None:
        return "Apprise does not understand this URL (unknown scheme or missing parts)"
    return None
