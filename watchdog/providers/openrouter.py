"""OpenRouter over HTTP: reads the watched key, the account's credits and keys.

Every failure becomes a typed ProviderError; transient ones are retried a bounded number
of times inside one poll. The retry loop is written here rather than taken from a retry
library because it must honour `Retry-After` and `X-RateLimit-Reset` and stop early for
permanent errors, which is about as much code as configuring one.

The shapes follow OpenRouter's OpenAPI document (tests/spec/openrouter_required.json says
where each field comes from); fields the parser does not need may be missing.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlparse

import httpx

from watchdog import __version__
from watchdog.core.audit import Endpoint, Price
from watchdog.core.model import Credits, KeyUsage, Snapshot
from watchdog.providers.base import (
    BUDGET_INTERVALS,
    LIMIT_RESETS,
    ActivityRow,
    AuthError,
    BadResponse,
    KeyIdentity,
    ProviderBudgetExceeded,
    ProviderError,
    RateLimited,
    TransientError,
    Workspace,
    WorkspaceBudget,
)

if TYPE_CHECKING:
    from watchdog.config import ProviderConfig

USER_AGENT = f"budget-watchdog/{__version__} (+spend watchdog; python-httpx)"
PAGE_SIZE = 100
MAX_PAGES = 100  # 10,000 keys: far beyond any account we expect; stops a broken pager
ALL_WORKSPACES = "*"
MAX_RETRY_AFTER = 3600.0  # a provider's request to wait, in seconds, is bounded to an hour
BUDGET = re.compile(r"budget", re.IGNORECASE)


def _utcnow() -> datetime:
    return datetime.now(UTC)


# Parsed /keys rows kept for reuse; beyond this many (keys that came and went) start over.
MAX_CACHED_ROWS = 20_000


class OpenRouterProvider:
    """Reads spend from OpenRouter. With `api_key`, the watched key's usage (/key); with
    `management_key`, the account's credits (/credits) and every key (/keys) of the
    `workspaces` named by id or slug ("*", the default: every workspace of the account).

    The watched key's hash (what the provider-side kill switch disables) is found, in this
    order: `key_hash` from the config; else `key_name`, when it names exactly one key;
    else the one listed key whose hash is the SHA-256 of the API key, or whose label is
    the label /key reports — only when exactly one key matches. `watched_key_identity`
    says which, or why none."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        management_key: str | None = None,
        *,
        key_hash: str | None = None,
        key_name: str | None = None,
        workspaces: Sequence[str] = (ALL_WORKSPACES,),
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
        self._key_hash = key_hash or None
        self._key_name = key_name or None
        if isinstance(workspaces, str):
            workspaces = (workspaces,)
        self._workspaces = tuple(w.strip() for w in workspaces if w.strip())
        if not self._workspaces:
            raise ValueError("OpenRouterProvider needs at least one workspace (or '*': every one)")
        self._timeout = timeout
        self._attempts = max(1, attempts)
        self._backoff = backoff
        self._max_wait = max_wait
        self._sleep = sleep
        self._clock = clock
        self._key_path = "/key"
        self._watched_hash: str | None = self._key_hash
        # The last /keys row of each key and its parse (see _parsed_key).
        self._rows: dict[tuple[str, str], tuple[dict[str, Any], KeyUsage]] = {}
        self._identity = self._configured_identity()
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"),
            timeout=httpx.Timeout(timeout),
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            limits=httpx.Limits(max_connections=4, max_keepalive_connections=2),
            transport=transport,
            follow_redirects=False,
        )

    @classmethod
    def from_config(
        cls, p: ProviderConfig, *, watched: bool = True, **options: Any
    ) -> OpenRouterProvider:
        """The provider as `[provider]` configures it: its keys (without `watched`, the
        management key alone: the account's side only), workspaces, timeout; `options`
        add or override keyword arguments (the daemon's `max_wait`)."""
        api_key = p.api_key.get_secret_value() if watched and p.api_key else None
        management = p.management_key.get_secret_value() if p.management_key else None
        settings: dict[str, Any] = {
            "key_hash": p.key_hash,
            "key_name": p.key_name,
            "timeout": p.timeout.total_seconds(),
            "workspaces": tuple(p.workspaces),
        }
        return cls(p.base_url, api_key, management, **(settings | options))

    @property
    def has_management_key(self) -> bool:
        return bool(self._management_key)

    def admin(self) -> OpenRouterProvider | None:
        """The management side (activity, key disable) when a management key is set."""
        return self if self.has_management_key else None

    def close(self) -> None:
        self._client.close()

    def remember_watched_key(self, key_hash: str) -> None:
        """The watched key's hash from an earlier run (see fetch: a disabled key). A
        configured `key_hash` wins."""
        if not self._key_hash:
            self._watched_hash = key_hash

    def watched_key_identity(self) -> KeyIdentity:
        """Whether the provider-side kill switch can act on the watched key, and why not.
        No I/O: before the first poll it is what the configuration allows (`pending` when
        the first poll decides); after each poll, what that poll found."""
        return self._identity

    def _configured_identity(self) -> KeyIdentity:
        if not self._api_key:
            return KeyIdentity(
                problem="no watched key (provider.api_key is not set): spend is the "
                "account's, and no single key is disabled at the provider"
            )
        if not self._management_key:
            return KeyIdentity(
                hash=self._key_hash,
                source="provider.key_hash" if self._key_hash else "",
                problem="no management key (provider.management_key_file): the watched key "
                "cannot be disabled at the provider",
            )
        if self._key_hash:
            return KeyIdentity(self._key_hash, "provider.key_hash", pending=True)
        return KeyIdentity(pending=True)

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
            if key is not None:
                key, keys = self._identify(key, keys)
            if rejected is not None:
                assert self._watched_hash is not None
                listed = self._find_hash(self._watched_hash, keys)
                if listed is None or not listed.disabled:
                    raise rejected
                if listed not in keys:
                    keys += (listed,)
                key = listed
        return Snapshot(taken_at=self._clock(), key=key, credits=credits, keys=keys)

    def _identify(
        self, key: KeyUsage, keys: tuple[KeyUsage, ...]
    ) -> tuple[KeyUsage, tuple[KeyUsage, ...]]:
        """The watched key with its hash, name and state from the listing, found by the
        first rule that applies (see the class); the listing, with the watched key added
        when only GET /keys/{hash} knows it (a key of another workspace). Sets the
        identity either way."""
        found: KeyUsage | None = None
        if self._key_hash:
            found = self._find_hash(self._key_hash, keys)
            source, problem = "provider.key_hash", None
            if found is None:
                problem = (
                    f"provider.key_hash {self._key_hash[:8]}… is not a key of this account "
                    "(GET /keys/{hash} answers 404): the watched key cannot be disabled at "
                    "the provider"
                )
        elif self._key_name:
            named = [k for k in keys if k.name == self._key_name]
            source, problem = "provider.key_name", None
            if len(named) == 1:
                found = named[0]
            else:
                problem = (
                    f"provider.key_name {self._key_name!r} names {len(named)} of the "
                    f"account's {len(keys)} keys, not exactly one: the watched key cannot be "
                    "disabled at the provider; set provider.key_hash"
                )
        else:
            assert self._api_key is not None
            digest = hashlib.sha256(self._api_key.encode()).hexdigest()
            hashed = [k for k in keys if k.hash and k.hash.lower() == digest]
            labelled = [k for k in keys if key.label and k.label == key.label]
            problem = None
            if len(hashed) == 1:
                found, source = hashed[0], "the SHA-256 of the API key"
            elif len(labelled) == 1:
                found, source = labelled[0], "its label"
            else:
                source = ""
                how = "no listed key has" if not labelled else f"{len(labelled)} keys share"
                problem = (
                    f"the watched key is not identified among the account's {len(keys)} "
                    f"keys ({how} the label GET /key reports): it cannot be disabled at the "
                    "provider; set provider.key_hash (or provider.key_name)"
                )
        if found is None or found.hash is None:
            self._identity = KeyIdentity(problem=problem or "the watched key has no hash")
            return key, keys
        self._watched_hash = found.hash
        self._identity = KeyIdentity(found.hash, source)
        if found not in keys:
            keys += (found,)
        return _with_identity(key, found), keys

    def _find_hash(self, key_hash: str, keys: tuple[KeyUsage, ...]) -> KeyUsage | None:
        """The key with this hash: from the listing, else GET /keys/{hash} (None on 404)."""
        for listed in keys:
            if listed.hash == key_hash:
                return listed
        return self.get_key(key_hash)

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
        """Every key of the watched workspaces (management key), disabled ones included
        (the API leaves them out unless asked): GET /keys of each workspace, 100 a page
        until a short page (GET /keys alone lists only the default workspace). Each key
        carries its workspace's id. A key seen twice (the list shifted between pages, or
        listed by two workspaces) counts once. Any failed request fails the whole listing:
        an account-wide sum that missed a workspace would read low."""
        self._need_management("listing the keys")
        keys: list[KeyUsage] = []
        seen: set[str] = set()
        for workspace_id in self._workspace_ids():
            for key in self._workspace_keys(workspace_id):
                if key.hash is not None:
                    if key.hash in seen:
                        continue
                    seen.add(key.hash)
                keys.append(key)
        return keys

    def _workspace_ids(self) -> list[str]:
        """The ids of the watched workspaces: every listed one for "*", else each named
        one (by id or slug), resolved through the listing. Raise BadResponse for a name
        the account has no workspace for: its keys cannot be read, and leaving them out
        would make the account's spend read low."""
        listed = self.workspaces()
        if ALL_WORKSPACES in self._workspaces:
            return [w.id for w in listed]
        by_name = {w.slug: w.id for w in listed} | {w.id: w.id for w in listed}
        missing = [name for name in self._workspaces if name not in by_name]
        if missing:
            known = ", ".join(sorted(w.slug for w in listed)) or "none"
            raise BadResponse(
                f"/workspaces: no workspace {', '.join(map(repr, missing))} in this account "
                f"(its workspaces: {known}); check provider.workspaces"
            )
        return list(dict.fromkeys(by_name[name] for name in self._workspaces))

    def _workspace_keys(self, workspace_id: str) -> list[KeyUsage]:
        """One workspace's keys, page by page (by the rows received: a page is 100)."""
        assert self._management_key is not None
        keys: list[KeyUsage] = []
        offset = 0
        for _ in range(MAX_PAGES):
            body = self._request(
                "GET",
                "/keys",
                self._management_key,
                params={
                    "include_disabled": "true",
                    "offset": offset,
                    "workspace_id": workspace_id,
                },
            )
            rows = _data(body, "/keys")
            if not isinstance(rows, list):
                raise BadResponse("/keys: 'data' is not a list")
            for row in rows:
                keys.append(self._parsed_key(row, workspace_id))
            offset += len(rows)
            if len(rows) < PAGE_SIZE:
                break
        return keys

    def _parsed_key(self, row: Any, workspace_id: str) -> KeyUsage:
        """A /keys row as a KeyUsage: the very object of the last poll when the row is
        the same (most keys of an account are idle; the tick then knows at a glance that
        nothing moved), else parsed afresh."""
        key_hash = row.get("hash") if isinstance(row, Mapping) else None
        cached = self._rows.get((workspace_id, key_hash)) if isinstance(key_hash, str) else None
        if cached is not None and cached[0] == row:
            return cached[1]
        key = parse_key(row, "/keys")
        if key.workspace_id is None:
            key = replace(key, workspace_id=workspace_id)
        if isinstance(key_hash, str):
            if len(self._rows) > MAX_CACHED_ROWS:
                self._rows.clear()
            self._rows[(workspace_id, key_hash)] = (dict(row), key)
        return key

    def workspaces(self) -> list[Workspace]:
        """Every workspace of the account (management key): GET /workspaces, 100 a page
        until `total_count` or a short page. Raise BadResponse when none is listed (every
        account has its default workspace) or a row lacks its id, slug or name."""
        management = self._need_management("listing the workspaces")
        found: dict[str, Workspace] = {}
        offset = 0
        for _ in range(MAX_PAGES):
            body = self._request(
                "GET",
                "/workspaces",
                management,
                params={"offset": offset, "limit": PAGE_SIZE},
            )
            rows = _data(body, "/workspaces")
            if not isinstance(rows, list):
                raise BadResponse("/workspaces: 'data' is not a list")
            total = _count(body, "/workspaces")
            for row in rows:
                workspace = parse_workspace(row)
                found.setdefault(workspace.id, workspace)
            offset += len(rows)
            if len(rows) < PAGE_SIZE or (total is not None and offset >= total):
                break
        else:
            raise BadResponse(f"/workspaces: more than {MAX_PAGES} pages; a broken pager?")
        if not found:
            raise BadResponse("/workspaces: no workspace listed (every account has a default one)")
        return list(found.values())

    def get_key(self, key_hash: str) -> KeyUsage | None:
        """One key by its hash (management key), None when the provider does not know it."""
        assert self._management_key is not None
        try:
            body = self._request("GET", f"/keys/{key_hash}", self._management_key)
        except ProviderError as exc:
            if exc.status == 404:
                return None
            raise
        return parse_key(_data(body, "/keys/{hash}"), "/keys/{hash}")

    def activity(
        self, *, api_key_hash: str | None = None, day: date | None = None
    ) -> list[ActivityRow]:
        """Per-day, per-model spend for the last 30 completed UTC days (management key),
        of the whole account (every workspace), or of the key `api_key_hash` only, or of
        one `day` only (it must be one of those 30). [] without a management key."""
        if not self._management_key:
            return []
        params: dict[str, str] = {}
        if api_key_hash is not None:
            params["api_key_hash"] = api_key_hash
        if day is not None:
            params["date"] = day.isoformat()
        body = self._request("GET", "/activity", self._management_key, params=params or None)
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

    def update_key_limit(
        self, key_hash: str, limit: float | None, limit_reset: str | None
    ) -> KeyUsage:
        """Set a key's spending cap at the provider (management key): `limit` in USD (None:
        no cap) counted over `limit_reset` ("daily", "weekly", "monthly"; None: over the
        key's lifetime). Return the key as the provider reports it afterwards. Raise
        ValueError for a limit that is not a finite number >= 0 or an unknown reset (before
        any request), a ProviderError subclass when the provider refuses."""
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, int | float):
                raise ValueError(f"a key limit is a number of USD or None, not {limit!r}")
            if not math.isfinite(limit) or limit < 0:
                raise ValueError(f"a key limit must be a finite amount >= 0, not {limit!r}")
        if limit_reset not in LIMIT_RESETS:
            raise ValueError(
                f"limit_reset must be daily, weekly, monthly or None, not {limit_reset!r}"
            )
        management = self._need_management("setting a key's limit")
        body = self._request(
            "PATCH",
            f"/keys/{key_hash}",
            management,
            json={"limit": limit, "limit_reset": limit_reset},
        )
        return parse_key(_data(body, "/keys/{hash}"), "/keys/{hash}")

    # -- workspace budgets (management key) ------------------------------------------

    def workspace_budget(self, workspace_id: str, interval: str) -> WorkspaceBudget | None:
        """The budget of workspace `workspace_id` (its id or slug) for `interval` (daily,
        weekly, monthly or lifetime), or None when the provider has none (404: no budget
        for that interval, or no such workspace). Raise ValueError for an unknown interval,
        a ProviderError subclass on other failures (BadResponse for an unreadable budget)."""
        path = _budget_path(workspace_id, interval)
        management = self._need_management("reading a workspace budget")
        try:
            body = self._request("GET", path, management)
        except ProviderError as exc:
            if exc.status == 404:
                return None
            raise
        return parse_budget(_data(body, BUDGET_PATH), interval)

    def set_workspace_budget(
        self, workspace_id: str, interval: str, limit_usd: float
    ) -> WorkspaceBudget:
        """Create or change the budget of workspace `workspace_id` (id or slug) for
        `interval` to `limit_usd` (PUT; whether BYOK counts is a workspace-wide setting,
        left as it is). The provider wants the limits to shrink with the interval
        (lifetime > monthly > weekly > daily) and answers 400 otherwise. Return the budget
        as the provider reports it. Raise ValueError for an unknown interval or a limit that
        is not a finite amount >= 0, a ProviderError subclass when the provider refuses."""
        path = _budget_path(workspace_id, interval)
        if isinstance(limit_usd, bool) or not isinstance(limit_usd, int | float):
            raise ValueError(f"a budget is a number of USD, not {limit_usd!r}")
        if not math.isfinite(limit_usd) or limit_usd < 0:
            raise ValueError(f"a budget must be a finite amount >= 0, not {limit_usd!r}")
        management = self._need_management("setting a workspace budget")
        body = self._request("PUT", path, management, json={"limit_usd": limit_usd})
        return parse_budget(_data(body, BUDGET_PATH), interval)

    def workspace_budgets(self, workspace_id: str) -> list[WorkspaceBudget]:
        """Every budget of workspace `workspace_id` (id or slug); each one's `interval` is
        its reset interval ("lifetime" when it never resets). Raise a ProviderError
        subclass on failure (404 for an unknown workspace)."""
        if not workspace_id:
            raise ValueError("a workspace id or slug is needed")
        management = self._need_management("reading workspace budgets")
        path = f"/workspaces/{quote(workspace_id, safe='')}/budgets"
        rows = _data(self._request("GET", path, management), "/workspaces/{id}/budgets")
        if not isinstance(rows, list):
            raise BadResponse("/workspaces/{id}/budgets: 'data' is not a list")
        budgets = []
        for row in rows:
            reset = row.get("reset_interval") if isinstance(row, Mapping) else None
            interval = reset if isinstance(reset, str) else "lifetime"
            budgets.append(parse_budget(row, interval))
        return budgets

    def _need_management(self, doing: str) -> str:
        if not self._management_key:
            raise AuthError(f"{doing} needs a management key")
        return self._management_key

    # -- public prices (no key) ------------------------------------------------------

    def list_models(self) -> dict[str, Price | None]:
        """Every model's listed price (GET /models, every output modality), by model id:
        USD per token; None for a model whose price is missing or not a price (a router's
        variable price). Needs no key and sends none. Follows `links.next` should the list
        come in pages. Raise a ProviderError subclass on failure."""
        models: dict[str, Price | None] = {}
        params: dict[str, str | int] = {"output_modalities": "all"}
        for _ in range(MAX_PAGES):
            body = self._public_request("/models", params)
            rows = _data(body, "/models")
            if not isinstance(rows, list):
                raise BadResponse("/models: 'data' is not a list")
            for row in rows:
                if isinstance(row, Mapping) and isinstance(row.get("id"), str):
                    models[row["id"]] = parse_price(row.get("pricing"))
            following = _next_page(body)
            if following is None or not rows:
                break
            params = {"output_modalities": "all", **following}
        return models

    def model_endpoints(self, model: str) -> list[Endpoint] | None:
        """Each provider endpoint of `model` ("author/slug") with its price (GET
        /models/{author}/{slug}/endpoints); None when the provider does not know the model
        (404). Endpoints without a readable price are left out. Needs no key and sends
        none. Raise a ProviderError subclass on other failures."""
        author, _, slug = model.partition("/")
        if not author or not slug:
            return None
        path = f"/models/{quote(author, safe='')}/{quote(slug, safe=':')}/endpoints"
        try:
            body = self._public_request(path)
        except ProviderError as exc:
            if exc.status == 404:
                return None
            raise
        data = _data(body, "/models/{author}/{slug}/endpoints")
        if not isinstance(data, Mapping) or not isinstance(data.get("endpoints"), list):
            raise BadResponse("/models/{author}/{slug}/endpoints: no 'endpoints' list")
        return [e for e in map(parse_endpoint, data["endpoints"]) if e is not None]

    def _public_request(self, path: str, params: Mapping[str, str | int] | None = None) -> Any:
        """GET a public endpoint without a key, retried like any request."""
        return self._request("GET", path, None, params=params)

    # -- HTTP ------------------------------------------------------------------------

    def _request(self, method: str, path: str, key: str | None, **kwargs: Any) -> Any:
        delay = self._backoff
        for attempt in range(1, self._attempts + 1):
            try:
                return self._attempt(method, path, key, **kwargs)
            except ProviderError as exc:
                error = exc
            if _final(error) or attempt == self._attempts:
                raise error
            wait = error.retry_after if error.retry_after is not None else delay
            if wait > self._max_wait:
                raise error  # the caller skips polls until then instead of blocking here
            self._sleep(wait * (1 + random.random() * 0.1))
            delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    def _attempt(self, method: str, path: str, key: str | None, **kwargs: Any) -> Any:
        """One request (with `key` as its bearer, or none for a public endpoint): the
        parsed JSON body. Raise the ProviderError a failure amounts to."""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        secrets = (key or "", self._api_key or "", self._management_key or "")
        try:
            response = self._client.request(method, path, headers=headers, **kwargs)
        except httpx.TimeoutException:
            raise TransientError(f"{method} {path}: no answer within {self._timeout:g}s") from None
        except httpx.HTTPError as exc:
            detail = _scrub(str(exc), *secrets)
            raise TransientError(f"{method} {path}: {type(exc).__name__}: {detail}") from None
        if response.status_code >= 400:
            raise _error_for(response, method, path, *secrets)
        try:
            return response.json()
        except ValueError:
            kind = response.headers.get("content-type", "no content type").split(";")[0]
            raise BadResponse(
                f"{method} {path}: HTTP {response.status_code} but not JSON ({kind})",
                status=response.status_code,
            ) from None


def _final(error: ProviderError) -> bool:
    """Errors that retrying within the same poll cannot heal."""
    return error.permanent or error.status == 404 or isinstance(error, ProviderBudgetExceeded)


def _error_for(response: httpx.Response, method: str, path: str, *secrets: str) -> ProviderError:
    status = response.status_code
    body = _json(response)
    detail = _scrub(_provider_message(body), *secrets)
    where = f"{method} {path}: HTTP {status}"
    text = f"{where}: {detail}" if detail else where
    if status == 403 and _is_budget(body):
        return ProviderBudgetExceeded(
            f"{text} (a budget kept at the provider is used up: it refuses requests until "
            "the budget resets or is raised)",
            status=status,
        )
    if status in (401, 403):
        hint = "key invalid or disabled" if status == 401 else "wrong key type for this endpoint"
        return AuthError(f"{text} ({hint})", status=status)
    if status == 429:
        return RateLimited(text, status=status, retry_after=_retry_after(response, body))
    if status >= 500 or status == 408:
        return TransientError(text, status=status, retry_after=_retry_after(response, body))
    return BadResponse(text, status=status)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _error_object(body: Any) -> Mapping[str, Any]:
    error = body.get("error") if isinstance(body, Mapping) else None
    return error if isinstance(error, Mapping) else {}


def _provider_message(body: Any) -> str:
    message = _error_object(body).get("message")
    return message[:200] if isinstance(message, str) else ""


def _is_budget(body: Any) -> bool:
    """Whether an error body says a budget is used up rather than the key is wrong. The
    documented sign is the message ("Workspace monthly budget of $500.00 exceeded.");
    a `code` or `metadata` naming a budget counts too, should the provider add one."""
    error = _error_object(body)
    texts = [error.get("message"), error.get("code")]
    metadata = error.get("metadata")
    if isinstance(metadata, Mapping):
        texts += [*metadata.keys(), *metadata.values()]
    return any(isinstance(t, str) and BUDGET.search(t) for t in texts)


def _retry_after(response: httpx.Response, body: Any = None) -> float | None:
    """How long the provider asks us to wait, in seconds: the later of `Retry-After`
    (seconds or an HTTP date) and `X-RateLimit-Reset` (when the limit resets: epoch
    milliseconds as OpenRouter sends it, epoch seconds, or seconds from now), from the
    headers, else from `error.metadata.headers` of the body, where OpenRouter repeats
    them. None when neither says; never negative; at most MAX_RETRY_AFTER."""
    now = time.time()
    headers: Mapping[str, Any] = response.headers
    found = [
        _retry_after_value(headers.get("retry-after"), now),
        _reset_value(headers.get("x-ratelimit-reset"), now),
    ]
    if all(v is None for v in found):
        metadata = _error_object(body).get("metadata")
        inner = metadata.get("headers") if isinstance(metadata, Mapping) else None
        if isinstance(inner, Mapping):
            lowered = {str(k).lower(): v for k, v in inner.items()}
            found = [
                _retry_after_value(lowered.get("retry-after"), now),
                _reset_value(lowered.get("x-ratelimit-reset"), now),
            ]
    waits = [v for v in found if v is not None]
    return min(MAX_RETRY_AFTER, max(waits)) if waits else None


def _retry_after_value(value: Any, now: float) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def _reset_value(value: Any, now: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        stamp = float(value)
    except ValueError:
        return None
    if not math.isfinite(stamp) or stamp < 0:
        return None
    if stamp >= 1e11:  # epoch milliseconds (OpenRouter: 13 digits)
        return max(0.0, stamp / 1000 - now)
    if stamp >= 1e9:  # epoch seconds
        return max(0.0, stamp - now)
    return stamp  # seconds from now


def _scrub(text: str, *secrets: str) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "****")
    return text


def _data(body: Any, path: str) -> Any:
    if not isinstance(body, Mapping) or "data" not in body:
        raise BadResponse(f"{path}: JSON without a 'data' member")
    return body["data"]


def _count(body: Any, path: str) -> int | None:
    """A listing's `total_count`: None when absent; BadResponse when not a count."""
    value = body.get("total_count") if isinstance(body, Mapping) else None
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadResponse(f"{path}: total_count is not a count ({str(value)[:40]!r})")
    return value


def _number(data: Mapping[str, Any], name: str, *, negative_ok: bool = False) -> float | None:
    """The field `name` as a float, None when absent or null. A value that is there but is
    not a finite number (NaN, infinity, 1e400, "NaN", true) — or is negative where the
    provider's counters cannot be — makes the whole answer a BadResponse: a poll we cannot
    read is a failed poll (no-go), never a number quietly read as 0 or skipped."""
    value = data.get(name)
    if value is None:
        return None
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:  # an int beyond float range
            number = None
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None or not math.isfinite(number):
        raise BadResponse(f"{name} is not a finite number ({str(value)[:40]!r})")
    if number < 0 and not negative_ok:
        raise BadResponse(f"{name} is negative ({number:g}); the provider's counters cannot be")
    return number


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
        limit_remaining=_number(data, "limit_remaining", negative_ok=True),
        limit_reset=_text(data, "limit_reset"),
        usage_daily=_number(data, "usage_daily"),
        usage_weekly=_number(data, "usage_weekly"),
        usage_monthly=_number(data, "usage_monthly"),
        disabled=bool(_flag(data, "disabled")),
        is_free_tier=_flag(data, "is_free_tier"),
        is_management_key=_flag(data, "is_management_key"),
        expires_at=_timestamp(data.get("expires_at")),
        byok_usage=_number(data, "byok_usage"),
        byok_usage_daily=_number(data, "byok_usage_daily"),
        byok_usage_weekly=_number(data, "byok_usage_weekly"),
        byok_usage_monthly=_number(data, "byok_usage_monthly"),
        include_byok_in_limit=_flag(data, "include_byok_in_limit"),
        workspace_id=_text(data, "workspace_id"),
    )


BUDGET_PATH = "/workspaces/{id}/budgets/{interval}"


def _budget_path(workspace_id: str, interval: str) -> str:
    if interval not in BUDGET_INTERVALS:
        raise ValueError(
            f"a workspace budget's interval is one of {', '.join(BUDGET_INTERVALS)}, "
            f"not {interval!r}"
        )
    if not workspace_id:
        raise ValueError("a workspace id or slug is needed")
    return f"/workspaces/{quote(workspace_id, safe='')}/budgets/{interval}"


def parse_workspace(data: Any) -> Workspace:
    """Given one row of GET /workspaces, return its Workspace. Raise BadResponse when it
    is not an object or lacks a non-empty `id`, or a `slug` or `name` string."""
    if not isinstance(data, Mapping):
        raise BadResponse("/workspaces: workspace is not an object")
    workspace_id, slug, name = _text(data, "id"), _text(data, "slug"), _text(data, "name")
    if not workspace_id or slug is None or name is None:
        raise BadResponse("/workspaces: workspace without an id, slug or name")
    return Workspace(workspace_id, slug, name)


def parse_budget(data: Any, interval: str) -> WorkspaceBudget:
    """Given a WorkspaceBudget object (the `data` of GET or PUT
    /workspaces/{id}/budgets/{interval}) and the interval asked for, return its
    WorkspaceBudget. Raise BadResponse when it is not an object, lacks `workspace_id`,
    has no finite `limit_usd` >= 0, or a `reset_interval` the spec does not know."""
    if not isinstance(data, Mapping):
        raise BadResponse(f"{BUDGET_PATH}: budget is not an object")
    workspace_id = _text(data, "workspace_id")
    if not workspace_id:
        raise BadResponse(f"{BUDGET_PATH}: budget without a workspace_id")
    limit = _number(data, "limit_usd")
    if limit is None:
        raise BadResponse(f"{BUDGET_PATH}: budget without a numeric limit_usd")
    reset = data.get("reset_interval")
    # The spec's enum is daily/weekly/monthly/null (null: the lifetime budget); "lifetime"
    # is accepted too, should the provider name it.
    if reset is not None and reset not in BUDGET_INTERVALS:
        raise BadResponse(f"{BUDGET_PATH}: reset_interval {str(reset)[:20]!r} is not an interval")
    return WorkspaceBudget(workspace_id, interval, limit, reset)


def _with_identity(key: KeyUsage, listed: KeyUsage) -> KeyUsage:
    """The watched key as /key reports it, with what only the listing says: its hash,
    name, state and workspace (and whether BYOK counts, if /key did not say)."""
    include = key.include_byok_in_limit
    return replace(
        key,
        hash=listed.hash,
        name=listed.name,
        disabled=listed.disabled,
        workspace_id=listed.workspace_id,
        include_byok_in_limit=listed.include_byok_in_limit if include is None else include,
    )


def parse_activity(row: Mapping[str, Any]) -> ActivityRow:
    """Given one /activity row, return an ActivityRow (missing numbers count as 0). BYOK
    spend (`byok_usage_inference`) is kept beside OpenRouter's `usage`."""
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
        byok_usage=_number(row, "byok_usage_inference") or 0.0,
        reasoning_tokens=int(_number(row, "reasoning_tokens") or 0),
    )


def _price_value(pricing: Mapping[str, Any], name: str) -> float | None:
    """A price string ("0.000003", USD per token) as a float; None when missing, not a
    number, negative (a router's variable price) or not finite."""
    value = pricing.get(name)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) and number >= 0 else None


def parse_price(pricing: Any) -> Price | None:
    """Given a `pricing` object of GET /models or of an endpoint, return its Price (USD
    per token), or None when `prompt` or `completion` is not a price."""
    if not isinstance(pricing, Mapping):
        return None
    prompt = _price_value(pricing, "prompt")
    completion = _price_value(pricing, "completion")
    if prompt is None or completion is None:
        return None
    return Price(prompt, completion, _price_value(pricing, "input_cache_read"))


def parse_endpoint(row: Any) -> Endpoint | None:
    """Given one entry of an endpoints list, return its Endpoint (provider, price, tag),
    or None without a provider name or a readable price."""
    if not isinstance(row, Mapping):
        return None
    provider = _text(row, "provider_name")
    price = parse_price(row.get("pricing"))
    if not provider or price is None:
        return None
    return Endpoint(provider, price, _text(row, "tag") or "")


def _next_page(body: Any) -> dict[str, str] | None:
    """The offset and limit of the next page of GET /models (its `links.next`), or None."""
    links = body.get("links") if isinstance(body, Mapping) else None
    following = links.get("next") if isinstance(links, Mapping) else None
    if not isinstance(following, str) or not following:
        return None
    query = parse_qs(urlparse(following).query)
    page = {k: query[k][0] for k in ("offset", "limit") if query.get(k)}
    return page or None
