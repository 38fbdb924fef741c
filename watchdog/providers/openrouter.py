"""OpenRouter over HTTP: reads the watched key, the account's credits and keys.

Every failure becomes a typed ProviderError; transient ones are retried a bounded number
of times inside one poll. The retry loop is written here rather than taken from a retry
library because it must honour `Retry-After` and stop early for permanent errors, which
is about as much code as configuring one.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from watchdog import __version__
from watchdog.core.model import Credits, KeyUsage, Snapshot
from watchdog.providers.base import (
    ActivityRow,
    AuthError,
    BadResponse,
    ProviderError,
    RateLimited,
    TransientError,
)

USER_AGENT = f"budget-watchdog/{__version__} (+spend watchdog; python-httpx)"
PAGE_SIZE = 100
MAX_PAGES = 100  # 10,000 keys: far beyond any account we expect; stops a broken pager


def _utcnow() -> datetime:
    return datetime.now(UTC)


class OpenRouterProvider:
    """Reads spend from OpenRouter. With `api_key`, the watched key's usage (/key); with
    `management_key`, the account's credits (/credits) and every key (/keys)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        management_key: str | None = None,
        *,
        timeout: float = 10.0,
        attempts: int = 3,
        backoff: float = 0.5,
        max_wait: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = _utcnow,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not api_key and not management_key:
            raise ValueError("OpenRouterProvider needs an API key or a management key")
        self._api_key = api_key
        self._management_key = management_key
        self._timeout = timeout
        self._attempts = max(1, attempts)
        self._backoff = backoff
        self._max_wait = max_wait
        self._sleep = sleep
        self._clock = clock
        self._key_path = "/key"
        self._watched_hash: str | None = None
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"),
            timeout=httpx.Timeout(timeout),
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            limits=httpx.Limits(max_connections=4, max_keepalive_connections=2),
            transport=transport,
            follow_redirects=False,
        )

    @property
    def has_management_key(self) -> bool:
        return bool(self._management_key)

    def admin(self) -> OpenRouterProvider | None:
        """The management side (activity, key disable) when a management key is set."""
        return self if self.has_management_key else None

    def close(self) -> None:
        self._client.close()

    def remember_watched_key(self, key_hash: str) -> None:
        """The watched key's hash from an earlier run (see fetch: a disabled key)."""
        self._watched_hash = key_hash

    # -- reading ---------------------------------------------------------------------

    def fetch(self) -> Snapshot:
        """Return what the provider reports now. Raise a ProviderError subclass on failure."""
        key: KeyUsage | None = None
        rejected: AuthError | None = None
        if self._api_key:
            try:
                key = self._watched_key()
            except AuthError as exc:
                if not (self._management_key and self._watched_hash):
                    raise
                rejected = exc  # a disabled key gets 401; /keys still reports its usage
        credits: Credits | None = None
        keys: tuple[KeyUsage, ...] = ()
        if self._management_key:
            keys = tuple(self.list_keys())
            credits = self._credits(keys)
            if key is not None and key.hash is None:
                # /key does not say the key's hash; /keys does, under the same label.
                match = [k for k in keys if k.label and k.label == key.label]
                if len(match) == 1:
                    key = _with_identity(key, match[0])
                    self._watched_hash = match[0].hash
            if rejected is not None:
                listed = [k for k in keys if k.hash == self._watched_hash]
                if not listed or not listed[0].disabled:
                    raise rejected
                key = listed[0]
        return Snapshot(taken_at=self._clock(), key=key, credits=credits, keys=keys)

    def _watched_key(self) -> KeyUsage:
        assert self._api_key is not None
        try:
            body = self._request("GET", self._key_path, self._api_key)
        except ProviderError as exc:
            if exc.status != 404 or self._key_path == "/auth/key":
                raise
            # Older deployments only answer the legacy path; remember it.
            self._key_path = "/auth/key"
            body = self._request("GET", self._key_path, self._api_key)
        return parse_key(_data(body, self._key_path), self._key_path)

    def _credits(self, keys: tuple[KeyUsage, ...]) -> Credits | None:
        assert self._management_key is not None
        body = self._request("GET", "/credits", self._management_key)
        data = _data(body, "/credits")
        if not isinstance(data, Mapping):
            raise BadResponse("/credits: 'data' is not an object")
        total_credits = _number(data, "total_credits")
        total_usage = _number(data, "total_usage")
        if total_credits is None or total_usage is None:
            raise BadResponse("/credits: total_credits or total_usage missing")
        if total_credits == 0 and total_usage == 0 and any(k.usage > 0 for k in keys):
            return None  # some key types get zeros instead of a 403: not a real balance
        return Credits(total_credits=total_credits, total_usage=total_usage)

    def list_keys(self) -> list[KeyUsage]:
        """Every key of the account (management key), following pagination."""
        assert self._management_key is not None
        keys: list[KeyUsage] = []
        for page in range(MAX_PAGES):
            body = self._request(
                "GET", "/keys", self._management_key, params={"offset": page * PAGE_SIZE}
            )
            rows = _data(body, "/keys")
            if not isinstance(rows, list):
                raise BadResponse("/keys: 'data' is not a list")
            keys += [parse_key(row, "/keys") for row in rows]
            if len(rows) < PAGE_SIZE:
                break
        return keys

    def activity(self) -> list[ActivityRow]:
        """Per-day, per-model spend for the last 30 UTC days (management key)."""
        if not self._management_key:
            return []
        body = self._request("GET", "/activity", self._management_key)
        rows = _data(body, "/activity")
        if not isinstance(rows, list):
            raise BadResponse("/activity: 'data' is not a list")
        return [parse_activity(row) for row in rows if isinstance(row, Mapping)]

    def set_key_disabled(self, key_hash: str, disabled: bool) -> None:
        """Disable (or re-enable) a key at the provider (management key)."""
        if not self._management_key:
            raise AuthError("disabling a key needs a management key")
        self._request(
            "PATCH", f"/keys/{key_hash}", self._management_key, json={"disabled": disabled}
        )

    # -- HTTP ------------------------------------------------------------------------

    def _request(self, method: str, path: str, key: str, **kwargs: Any) -> Any:
        delay = self._backoff
        for attempt in range(1, self._attempts + 1):
            try:
                return self._attempt(method, path, key, **kwargs)
            except ProviderError as exc:
                error = exc
            if error.permanent or error.status == 404 or attempt == self._attempts:
                raise error
            wait = error.retry_after if error.retry_after is not None else delay
            if wait > self._max_wait:
                raise error  # the caller skips polls until then instead of blocking here
            self._sleep(wait * (1 + random.random() * 0.1))
            delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    def _attempt(self, method: str, path: str, key: str, **kwargs: Any) -> Any:
        """One request: the parsed JSON body. Raise the ProviderError a failure amounts to."""
        headers = {"Authorization": f"Bearer {key}"}
        try:
            response = self._client.request(method, path, headers=headers, **kwargs)
        except httpx.TimeoutException:
            raise TransientError(f"{method} {path}: no answer within {self._timeout:g}s") from None
        except httpx.HTTPError as exc:
            detail = _scrub(str(exc), key)
            raise TransientError(f"{method} {path}: {type(exc).__name__}: {detail}") from None
        if response.status_code >= 400:
            raise _error_for(response, method, path, key)
        try:
            return response.json()
        except ValueError:
            kind = response.headers.get("content-type", "no content type").split(";")[0]
            raise BadResponse(
                f"{method} {path}: HTTP {response.status_code} but not JSON ({kind})",
                status=response.status_code,
            ) from None


def _error_for(response: httpx.Response, method: str, path: str, key: str) -> ProviderError:
    status = response.status_code
    detail = _scrub(_provider_message(response), key)
    where = f"{method} {path}: HTTP {status}"
    text = f"{where}: {detail}" if detail else where
    if status in (401, 403):
        hint = "key invalid or disabled" if status == 401 else "wrong key type for this endpoint"
        return AuthError(f"{text} ({hint})", status=status)
    if status == 429:
        return RateLimited(text, status=status, retry_after=_retry_after(response))
    if status >= 500 or status == 408:
        return TransientError(text, status=status, retry_after=_retry_after(response))
    return BadResponse(text, status=status)


def _provider_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    error = body.get("error") if isinstance(body, Mapping) else None
    if isinstance(error, Mapping) and isinstance(error.get("message"), str):
        return str(error["message"])[:200]
    return ""


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _scrub(text: str, key: str) -> str:
    return text.replace(key, "****") if key else text


def _data(body: Any, path: str) -> Any:
    if not isinstance(body, Mapping) or "data" not in body:
        raise BadResponse(f"{path}: JSON without a 'data' member")
    return body["data"]


def _number(data: Mapping[str, Any], name: str) -> float | None:
    value = data.get(name)
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _text(data: Mapping[str, Any], name: str) -> str | None:
    value = data.get(name)
    return value if isinstance(value, str) else None


def _flag(data: Mapping[str, Any], name: str) -> bool | None:
    value = data.get(name)
    return value if isinstance(value, bool) else None


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_key(data: Any, path: str) -> KeyUsage:
    """Given one key object of /key, /auth/key or /keys, return a KeyUsage. Only `usage`
    is required; missing, null or odd optional fields become None. Raise BadResponse if
    it is not an object or has no usable `usage`."""
    if not isinstance(data, Mapping):
        raise BadResponse(f"{path}: key is not an object")
    usage = _number(data, "usage")
    if usage is None:
        raise BadResponse(f"{path}: key has no numeric 'usage'")
    return KeyUsage(
        usage=usage,
        label=_text(data, "label"),
        name=_text(data, "name"),
        hash=_text(data, "hash"),
        limit=_number(data, "limit"),
        limit_remaining=_number(data, "limit_remaining"),
        limit_reset=_text(data, "limit_reset"),
        usage_daily=_number(data, "usage_daily"),
        usage_weekly=_number(data, "usage_weekly"),
        usage_monthly=_number(data, "usage_monthly"),
        disabled=bool(_flag(data, "disabled")),
        is_free_tier=_flag(data, "is_free_tier"),
        is_management_key=_flag(data, "is_management_key"),
        expires_at=_timestamp(data.get("expires_at")),
    )


def _with_identity(key: KeyUsage, listed: KeyUsage) -> KeyUsage:
    return replace(key, hash=listed.hash, name=listed.name, disabled=listed.disabled)


def parse_activity(row: Mapping[str, Any]) -> ActivityRow:
    """Given one /activity row, return an ActivityRow (missing numbers count as 0)."""
    raw_date = str(row.get("date", ""))[:10]
    try:
        day = date.fromisoformat(raw_date)
    except ValueError:
        raise BadResponse(f"/activity: row with date {raw_date!r}") from None
    return ActivityRow(
        date=day,
        model=_text(row, "model") or "unknown",
        provider_name=_text(row, "provider_name") or "unknown",
        usage=_number(row, "usage") or 0.0,
        requests=int(_number(row, "requests") or 0),
        prompt_tokens=int(_number(row, "prompt_tokens") or 0),
        completion_tokens=int(_number(row, "completion_tokens") or 0),
    )
