"""Notification delivery through Apprise: routing by severity, one target at a time.

Apprise is imported lazily (inside functions): it loads every plugin at import, which
commands that never notify (gate, status, check-config without targets) should not pay for.
"""

from __future__ import annotations

import re
from typing import Any


def _instantiate(url: str) -> Any:
    import apprise

    return apprise.Apprise.instantiate(url, suppress_exceptions=True)


def describe_target(url: str) -> str:
    """Given an Apprise URL, return it with every secret masked (Apprise's privacy form),
    or "scheme://…" when Apprise cannot parse it."""
    plugin = _instantiate(url)
    if plugin is not None:
        return str(plugin.url(privacy=True))
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", url)
    return f"{scheme.group(1)}://…" if scheme else "(not a URL)"


def url_problem(url: str) -> str | None:
    """Given an Apprise URL, return None when Apprise can use it, else why not."""
    if not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", url):
        return "not a URL (expected scheme://…, e.g. slack://… or mailtos://…)"
    if _instantiate(url) is None:
        return "Apprise does not understand this URL (unknown scheme or missing parts)"
    return None
