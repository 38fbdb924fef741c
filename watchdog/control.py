"""Talking to a running daemon from the CLI: ask it to tick now, read its status.

Standard library only (urllib): these run from the command line and from `gate --url`,
where start-up time matters more than a nicer HTTP client.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from watchdog.config import Settings


def base_url(settings: Settings) -> str:
    host, port = settings.server.host, settings.server.port
    if host in ("0.0.0.0", "::", ""):  # the daemon listens everywhere: ask it on loopback
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _request(settings: Settings, method: str, path: str, timeout: float) -> Any:
    headers = {"Accept": "application/json"}
    token = settings.server.token.get_secret_value()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    url = base_url(settings) + path  # always http://host:port/…, built here
    request = urllib.request.Request(url, method=method, headers=headers)  # noqa: S310
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        return json.loads(response.read().decode() or "null")


def request_tick(settings: Settings, timeout: float = 10.0) -> str | None:
    """Ask the daemon to run a tick now and wait for it. Return None when it did, else why
    not (no daemon answering, or it refused us)."""
    if settings.server.port == 0:
        return "server.listen has no fixed port to ask"
    try:
        _request(settings, "POST", "/tick", timeout)
    except urllib.error.HTTPError as exc:
        hint = " (is server.token the daemon's?)" if exc.code == 401 else ""
        return f"the daemon at {base_url(settings)} answered HTTP {exc.code}{hint}"
    except (OSError, urllib.error.URLError, ValueError):
        return f"no daemon answered at {base_url(settings)}"
    return None


def fetch_status(settings: Settings, timeout: float = 3.0) -> dict[str, Any] | None:
    """The daemon's /status, or None when it does not answer."""
    if settings.server.port == 0:
        return None
    try:
        data = _request(settings, "GET", "/status", timeout)
    except (OSError, urllib.error.URLError, ValueError):
        return None
    return data if isinstance(data, dict) else None
