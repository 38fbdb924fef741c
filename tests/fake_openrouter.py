"""A small fake OpenRouter HTTP server on 127.0.0.1, with fault injection.

Serves /api/v1/key, /auth/key, /credits, /keys (paginated), GET and PATCH /keys/{hash},
/activity, /workspaces (paginated) and GET/PUT /workspaces/{id}/budgets[/{interval}] from
a mutable account state, and the public price list (/models and
/models/{author}/{slug}/endpoints, no key needed) from `models` and `endpoints`, in the
shapes OpenRouter's OpenAPI document gives (tests/spec/openrouter_required.json;
tests/integration/test_provider_contract.py holds every answer to it): every required
field, disabled keys listed only with `include_disabled=true`, 100 keys a page by
`offset`, keys of the default workspace only unless `workspace_id` names another, a
PATCH that changes only the fields it sends, activity filtered by key, day and workspace.
Tests change the state (spend, top up, add workspaces and keys, delete or rename keys)
and queue faults (status bursts, slow answers, HTML, missing fields, a workspace budget's
403) between polls.

The watched key is `account`; the account's other keys are `other_keys` (key_row dicts),
in the default workspace unless a row names another `workspace_id`. An `activity` row
belongs to the watched key unless it carries a private `api_key_hash` marker, and to its
key's workspace unless it carries a `workspace_id` marker; neither marker is served
(`workspace_id` only with group_by=workspace, as the spec says).
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

API_KEY = "sk-or-v1-e2e-watched-key-0123456789abcdef0123456789abcdef"
MANAGEMENT_KEY = "sk-or-v1-e2e-management-key-fedcba9876543210fedcba987654"
KEY_HASH = "e2ekeyhash0000000000000000000000000000000000000000000000000000ab"
USER_ID = "user_2e2e2e2e2e2e2e2e2e2e2e2e2e2"
# Every account has a default workspace; keys without another live there.
DEFAULT_WORKSPACE_ID = "00000000-0000-0000-0000-000000000000"
WORKSPACE_ID = DEFAULT_WORKSPACE_ID  # the watched key's workspace (an older name)
PAGE_SIZE = 100
WORKSPACE_PAGE_MAX = 100  # GET /workspaces: limit at most 100 (default 50)
LIMIT_RESETS = ("daily", "weekly", "monthly", None)
# Budget intervals, broadest first: the spec wants limits to shrink as the interval narrows.
BUDGET_INTERVALS = ("lifetime", "monthly", "weekly", "daily")
WINDOWS = ("", "_daily", "_weekly", "_monthly")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

# What OpenRouter answers when a workspace budget is used up (OpenRouterTeam/docs,
# guides/features/workspaces/workspace-budgets.mdx): a 403 told apart by its message.
BUDGET_EXCEEDED = json.dumps(
    {
        "error": {
            "code": 403,
            "message": "Workspace monthly budget of $500.00 exceeded. Contact your org admin.",
        }
    }
)


@dataclass
class Fault:
    """What the next matching requests get instead of a normal answer. `reset_in` adds an
    `X-RateLimit-Reset` header that many seconds ahead, in epoch milliseconds as OpenRouter
    sends it (computed when served)."""

    status: int = 500
    body: str = '{"error": {"code": 500, "message": "Internal Server Error"}}'
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    count: int | None = None  # None: until cleared
    paths: tuple[str, ...] = ()  # empty: every path
    reset_in: float | None = None


def budget_exceeded(**kwargs: Any) -> Fault:
    """A workspace budget used up: 403 with the budget message."""
    return Fault(403, BUDGET_EXCEEDED, **kwargs)


@dataclass
class Account:
    """The watched key (and the account around it)."""

    usage: float = 100.0
    usage_daily: float = 2.0
    usage_weekly: float = 20.0
    usage_monthly: float = 60.0
    byok_usage: float = 0.0
    byok_usage_daily: float = 0.0
    byok_usage_weekly: float = 0.0
    byok_usage_monthly: float = 0.0
    include_byok_in_limit: bool = False
    total_credits: float = 300.0
    limit: float | None = None
    limit_reset: str | None = None
    disabled: bool = False
    name: str = "batch"
    label: str = "sk-or-v1-e2e...cdef"
    listed_label: str | None = None  # the label /keys gives, when it differs from /key's
    expires_at: str | None = None
    created_at: str = "2026-01-05T10:30:00Z"
    updated_at: str | None = None
    legacy_only: bool = False  # answer 404 on /key, like an older deployment
    deleted: bool = False  # delete_key(KEY_HASH): /key answers 401, /keys leaves it out
    workspace_id: str = DEFAULT_WORKSPACE_ID

    def limit_remaining(self) -> float | None:
        """The limit less what the provider counts in the current reset period."""
        return limit_remaining(
            self.limit,
            self.limit_reset,
            self.include_byok_in_limit,
            lambda name: float(getattr(self, name)),
        )


def limit_remaining(
    limit: float | None,
    limit_reset: str | None,
    include_byok: bool,
    counter: Callable[[str], float],
) -> float | None:
    """A key's limit less what the provider counts in its reset window (`usage` for a
    lifetime limit, `usage_daily` for a daily one, ...; BYOK too when it counts), as the
    watched key and every other key of the fake report it. `counter(name)` reads one
    counter. Not clamped at 0: the parser accepts a negative remainder."""
    if limit is None:
        return None
    suffix = "" if limit_reset is None else f"_{limit_reset}"
    used = float(counter(f"usage{suffix}"))
    if include_byok:
        used += float(counter(f"byok_usage{suffix}"))
    return round(limit - used, 6)


def per_token(per_million: float) -> str:
    """A price as OpenRouter writes it: USD per token, as a decimal string."""
    return f"{per_million / 1_000_000:.12f}".rstrip("0").rstrip(".") or "0"


def pricing(prompt: float, completion: float, cache_read: float | None = None) -> dict[str, Any]:
    """A `pricing` object from prices in USD per million tokens."""
    body: dict[str, Any] = {
        "prompt": per_token(prompt),
        "completion": per_token(completion),
        "request": "0",
        "image": "0",
    }
    if cache_read is not None:
        body["input_cache_read"] = per_token(cache_read)
    return body


ARCHITECTURE = {
    "input_modalities": ["text"],
    "instruct_type": None,
    "modality": "text->text",
    "output_modalities": ["text"],
    "tokenizer": "Other",
}


def model_row(
    model: str, prompt: float, completion: float, cache_read: float | None = None
) -> dict[str, Any]:
    """A model as GET /models lists it, every required field present (prices per million
    tokens)."""
    return {
        "id": model,
        "canonical_slug": model,
        "name": model.split("/", 1)[-1],
        "created": 1735689600,
        "description": f"{model} (fake)",
        "pricing": pricing(prompt, completion, cache_read),
        "context_length": 131072,
        "architecture": dict(ARCHITECTURE),
        "top_provider": {
            "context_length": 131072,
            "is_moderated": False,
            "max_completion_tokens": 16384,
        },
        "per_request_limits": None,
        "supported_parameters": ["temperature", "max_tokens"],
        "default_parameters": None,
        "supported_voices": None,
        "expiration_date": None,
        "knowledge_cutoff": None,
        "links": {"details": f"/api/v1/models/{model}/endpoints"},
    }


def endpoint_row(
    model: str, provider: str, prompt: float, completion: float, cache_read: float | None = None
) -> dict[str, Any]:
    """A provider's endpoint as GET /models/{author}/{slug}/endpoints lists it (prices per
    million tokens)."""
    return {
        "name": f"{provider} | {model}",
        "model_id": model,
        "model_name": model.split("/", 1)[-1],
        "context_length": 131072,
        "pricing": pricing(prompt, completion, cache_read),
        "provider_name": provider,
        "tag": provider.lower().replace(" ", "-"),
        "quantization": "bf16",
        "max_completion_tokens": 16384,
        "max_prompt_tokens": None,
        "supported_parameters": ["temperature", "max_tokens"],
        "status": 0,
        "uptime_last_30m": 99.5,
        "uptime_last_5m": 100,
        "uptime_last_1d": 99.8,
        "supports_implicit_caching": cache_read is not None,
        "latency_last_30m": None,
        "throughput_last_30m": None,
    }


def activity_row(
    day: date,
    model: str,
    provider: str,
    usage: float,
    requests: int,
    prompt_tokens: int,
    completion_tokens: int,
    byok: float = 0.0,
) -> dict[str, Any]:
    """One /activity row, every required field present."""
    return {
        "date": day.isoformat(),
        "model": model,
        "model_permaslug": f"{model}-2025",
        "endpoint_id": f"{provider}-{model}".lower().replace(" ", "-"),
        "provider_name": provider,
        "usage": round(usage, 9),
        "byok_usage_inference": round(byok, 9),
        "requests": requests,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "reasoning_tokens": 0,
    }


# The audit's account (FakeOpenRouter.audit_account): prices in USD per million tokens,
# (prompt, completion, cache read) per provider, the first entry the model's listed price.
AUDIT_PRICES: dict[str, dict[str, tuple[float, float, float | None]]] = {
    "anthropic/claude-sonnet-4": {
        "": (3.0, 15.0, 0.30),
        "Anthropic": (3.0, 15.0, 0.30),
        "Amazon Bedrock": (3.0, 15.0, 0.30),
        "Google Vertex": (3.6, 18.0, 0.36),
    },
    "openai/gpt-4.1": {"": (2.0, 8.0, 0.50), "OpenAI": (2.0, 8.0, 0.50)},
    "meta-llama/llama-3.3-70b-instruct": {
        "": (0.13, 0.40, None),
        "DeepInfra": (0.13, 0.40, None),
        "Groq": (0.59, 0.79, None),
        "Together": (0.88, 0.88, None),
    },
    "mistralai/mistral-small-3.1-24b-instruct": {
        "": (0.05, 0.10, None),
        "Mistral": (0.05, 0.10, None),
    },
}
# Per day: (model, provider, requests, prompt tokens, completion tokens, BYOK). Sonnet does
# short classifications through a dear provider with a long prompt; Llama partly ran at a
# provider that no longer lists it (Lepton); some GPT-4.1 spend went through the
# operator's own OpenAI key (BYOK).
AUDIT_DAY: tuple[tuple[str, str, int, int, int, bool], ...] = (
    ("anthropic/claude-sonnet-4", "Google Vertex", 400, 1_200_000, 24_000, False),
    ("anthropic/claude-sonnet-4", "Anthropic", 100, 300_000, 6_000, False),
    ("openai/gpt-4.1", "OpenAI", 50, 150_000, 40_000, False),
    ("openai/gpt-4.1", "OpenAI", 20, 60_000, 16_000, True),
    ("meta-llama/llama-3.3-70b-instruct", "Together", 300, 600_000, 150_000, False),
    ("meta-llama/llama-3.3-70b-instruct", "Lepton", 20, 40_000, 10_000, False),
    ("mistralai/mistral-small-3.1-24b-instruct", "Mistral", 1000, 500_000, 100_000, False),
)


def key_row(key_hash: str, name: str, **fields: Any) -> dict[str, Any]:
    """A key as GET /keys lists it, every required field present; `fields` override."""
    row: dict[str, Any] = {
        "hash": key_hash,
        "name": name,
        "label": f"sk-or-v1-{key_hash[:3]}...{key_hash[-3:]}",
        "disabled": False,
        "limit": None,
        "limit_remaining": None,
        "limit_reset": None,
        "include_byok_in_limit": False,
        "usage": 0.0,
        "usage_daily": 0.0,
        "usage_weekly": 0.0,
        "usage_monthly": 0.0,
        "byok_usage": 0.0,
        "byok_usage_daily": 0.0,
        "byok_usage_weekly": 0.0,
        "byok_usage_monthly": 0.0,
        "created_at": "2026-01-05T10:30:00Z",
        "updated_at": None,
        "creator_user_id": USER_ID,
        "workspace_id": DEFAULT_WORKSPACE_ID,
        "expires_at": None,
    }
    row.update(fields)
    return row


def workspace_row(workspace_id: str, slug: str, name: str, **fields: Any) -> dict[str, Any]:
    """A workspace as GET /workspaces lists it, every required field present; `fields`
    override."""
    row: dict[str, Any] = {
        "id": workspace_id,
        "name": name,
        "slug": slug,
        "description": f"{name} (fake)",
        "default_guardrail_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"guardrail:{workspace_id}")),
        "default_text_model": None,
        "default_image_model": None,
        "default_provider_sort": None,
        "include_byok_in_budgets": False,
        "io_logging_api_key_ids": None,
        "io_logging_sampling_rate": 1,
        "is_data_discount_logging_enabled": True,
        "is_observability_broadcast_enabled": False,
        "is_observability_io_logging_enabled": False,
        "created_at": "2026-01-05T10:00:00Z",
        "updated_at": None,
        "created_by": USER_ID,
    }
    row.update(fields)
    return row


def budget_row(workspace_id: str, interval: str, limit_usd: float) -> dict[str, Any]:
    """A WorkspaceBudget as GET/PUT /workspaces/{id}/budgets/{interval} give it: a
    lifetime budget has no reset interval (null)."""
    stamp = _now()
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"budget:{workspace_id}:{interval}")),
        "workspace_id": workspace_id,
        "limit_usd": limit_usd,
        "reset_interval": None if interval == "lifetime" else interval,
        "created_at": stamp,
        "updated_at": stamp,
    }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class FakeOpenRouter:
    def __init__(self) -> None:
        self.account = Account()
        self.other_keys: list[dict[str, Any]] = []  # more keys of the account (key_row)
        self.activity: list[dict[str, Any]] = [
            {
                "date": "2026-11-01",
                "model": "openai/gpt-4.1",
                "model_permaslug": "openai/gpt-4.1-2025-04-14",
                "endpoint_id": "550e8400-e29b-41d4-a716-446655440000",
                "provider_name": "OpenAI",
                "usage": 1.5,
                "byok_usage_inference": 0.0,
                "requests": 10,
                "prompt_tokens": 1000,
                "completion_tokens": 500,
                "reasoning_tokens": 0,
            },
        ]
        # The public price list: GET /models rows, and endpoint rows by model id.
        self.models: list[dict[str, Any]] = []
        self.endpoints: dict[str, list[dict[str, Any]]] = {}
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        # When the watched key was asked for (time.monotonic()): one request a poll.
        self.key_polls: list[float] = []
        self.queries: list[tuple[str, str, dict[str, list[str]]]] = []
        self.patches: list[tuple[str, dict[str, Any]]] = []
        # The account's workspaces (workspace_row), the default one first.
        self.workspaces: list[dict[str, Any]] = [
            workspace_row(DEFAULT_WORKSPACE_ID, "default", "Default Workspace")
        ]
        # Budgets by (workspace id, interval), and every PUT as (path id, interval, body).
        self.budgets: dict[tuple[str, str], dict[str, Any]] = {}
        self.budget_puts: list[tuple[str, str, dict[str, Any]]] = []
        # What spend_key spent on keys other than the watched one: the account's credits
        # pay for every key (GET /credits total_usage).
        self.spent_elsewhere = 0.0
        self.deleted_keys: list[dict[str, Any]] = []  # delete_key: their activity stays
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                outer._handle(self, "GET")

            def do_PATCH(self) -> None:
                outer._handle(self, "PATCH")

            def do_PUT(self) -> None:
                outer._handle(self, "PUT")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        # A short poll interval: stop() returns in 50 ms, not the default half second.
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/api/v1"

    def start(self) -> FakeOpenRouter:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def spend(self, amount: float, *, byok: float = 0.0) -> None:
        """Spend `amount` of OpenRouter credits (and `byok` through the operator's own
        provider keys) on the watched key."""
        with self.lock:
            a = self.account
            for window in ("", "_daily", "_weekly", "_monthly"):
                setattr(a, f"usage{window}", getattr(a, f"usage{window}") + amount)
                setattr(a, f"byok_usage{window}", getattr(a, f"byok_usage{window}") + byok)

    def spend_key(self, key_hash: str, amount: float, *, byok: float = 0.0) -> None:
        """Spend `amount` (and `byok`) on the key `key_hash`, the watched one or one of
        `other_keys`: every usage window grows, and its limit_remaining follows. Raise
        KeyError for a key the account does not have."""
        if key_hash == KEY_HASH:
            self.spend(amount, byok=byok)
            return
        with self.lock:
            row = self._other(key_hash)
            for window in WINDOWS:
                row[f"usage{window}"] = round(row.get(f"usage{window}", 0.0) + amount, 9)
                row[f"byok_usage{window}"] = round(row.get(f"byok_usage{window}", 0.0) + byok, 9)
            _recount(row)
            self.spent_elsewhere += amount

    def delete_key(self, key_hash: str) -> None:
        """Delete a key: gone from every listing, 404 on GET /keys/{hash} (and the watched
        key's own /key answers 401). Its activity stays. Raise KeyError if unknown."""
        with self.lock:
            if key_hash == KEY_HASH:
                if self.account.deleted:
                    raise KeyError(key_hash)
                self.account.deleted = True
                return
            row = self._other(key_hash)
            self.other_keys.remove(row)
            self.deleted_keys.append(row)

    def rename_key(self, key_hash: str, name: str) -> None:
        """Rename a key, as the dashboard does (its hash stays). Raise KeyError if unknown."""
        with self.lock:
            if key_hash == KEY_HASH and not self.account.deleted:
                self.account.name = name
                self.account.updated_at = _now()
                return
            self._other(key_hash).update(name=name, updated_at=_now())

    def add_workspace(self, workspace_id: str, slug: str, name: str) -> dict[str, Any]:
        """Add a workspace to the account (listed after the ones before); its row."""
        with self.lock:
            if any(w["id"] == workspace_id or w["slug"] == slug for w in self.workspaces):
                raise ValueError(f"workspace {workspace_id} / {slug} exists")
            row = workspace_row(workspace_id, slug, name)
            self.workspaces.append(row)
            return row

    def set_budget(self, workspace_id: str, interval: str, limit_usd: float) -> None:
        """A budget set at the provider (the dashboard's, not a PUT: not in budget_puts)."""
        with self.lock:
            self.budgets[(workspace_id, interval)] = budget_row(workspace_id, interval, limit_usd)

    def _other(self, key_hash: str) -> dict[str, Any]:
        for row in self.other_keys:
            if row["hash"] == key_hash:
                return row
        raise KeyError(key_hash)

    def price(
        self,
        model: str,
        listed: tuple[float, float, float | None] | None,
        endpoints: dict[str, tuple[float, float, float | None]],
    ) -> None:
        """List `model` at `listed` (prompt, completion, cache read: USD per million tokens;
        None: not in GET /models) with one endpoint per provider."""
        with self.lock:
            self.models = [m for m in self.models if m["id"] != model]
            if listed is not None:
                self.models.append(model_row(model, *listed))
            self.endpoints[model] = [
                endpoint_row(model, provider, *prices) for provider, prices in endpoints.items()
            ]

    def audit_account(self, today: date | None = None, days: int = 30) -> None:
        """Several models at several providers with prices (AUDIT_PRICES), and `days` of
        activity (AUDIT_DAY each day, the last completed UTC days before `today`) billed
        at those prices, as OpenRouter bills: spend is tokens times the provider's price
        (Lepton: the listed price)."""
        today = today or datetime.now(UTC).date()
        for model, prices in AUDIT_PRICES.items():
            listed = prices[""]
            self.price(model, listed, {p: v for p, v in prices.items() if p})
        rows = []
        for back in range(1, days + 1):
            day = today - timedelta(days=back)
            for model, provider, requests, prompt, completion, byok in AUDIT_DAY:
                prices = AUDIT_PRICES[model]
                p, c, _ = prices.get(provider, prices[""])
                cost = (prompt * p + completion * c) / 1_000_000
                # BYOK: the provider bills the operator; OpenRouter charges a 5% fee.
                usage, byok_usage = (cost * 0.05, cost) if byok else (cost, 0.0)
                row = activity_row(
                    day, model, provider, usage, requests, prompt, completion, byok_usage
                )
                if byok:
                    row["endpoint_id"] += "-byok"
                rows.append(row)
        self.activity = rows

    def fault(self, fault: Fault) -> None:
        with self.lock:
            self.faults.append(fault)

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def _take_fault(self, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.paths and not any(path.endswith(p) for p in fault.paths):
                    continue
                if fault.count is not None:
                    fault.count -= 1
                    if fault.count <= 0:
                        self.faults.remove(fault)
                return fault
        return None

    # -- the account as the API shows it ----------------------------------------------

    def _key_body(self) -> dict[str, Any]:
        """GET /key: the key the request authenticated with."""
        a = self.account
        return {
            "label": a.label,
            "limit": a.limit,
            "limit_remaining": a.limit_remaining(),
            "limit_reset": a.limit_reset,
            "include_byok_in_limit": a.include_byok_in_limit,
            "usage": round(a.usage, 6),
            "usage_daily": round(a.usage_daily, 6),
            "usage_weekly": round(a.usage_weekly, 6),
            "usage_monthly": round(a.usage_monthly, 6),
            "byok_usage": round(a.byok_usage, 6),
            "byok_usage_daily": round(a.byok_usage_daily, 6),
            "byok_usage_weekly": round(a.byok_usage_weekly, 6),
            "byok_usage_monthly": round(a.byok_usage_monthly, 6),
            "is_free_tier": False,
            "is_management_key": False,
            "is_provisioning_key": False,
            "creator_user_id": USER_ID,
            "expires_at": a.expires_at,
            "rate_limit": {
                "requests": -1,
                "interval": "10s",
                "note": "This field is deprecated and safe to ignore.",
            },
        }

    def _watched_row(self) -> dict[str, Any]:
        """The watched key as GET /keys lists it."""
        a = self.account
        body = self._key_body()
        fields = {
            name: body[name]
            for name in (
                "limit",
                "limit_remaining",
                "limit_reset",
                "include_byok_in_limit",
                "usage",
                "usage_daily",
                "usage_weekly",
                "usage_monthly",
                "byok_usage",
                "byok_usage_daily",
                "byok_usage_weekly",
                "byok_usage_monthly",
                "expires_at",
            )
        }
        return key_row(
            KEY_HASH,
            a.name,
            label=a.listed_label or a.label,
            disabled=a.disabled,
            created_at=a.created_at,
            updated_at=a.updated_at,
            workspace_id=a.workspace_id,
            **fields,
        )

    def _rows(self) -> list[dict[str, Any]]:
        """Every key of every workspace, as GET /keys/{hash} shows it."""
        watched = [] if self.account.deleted else [self._watched_row()]
        return [*watched, *(_served_key(row) for row in self.other_keys)]

    def _workspace(self, id_or_slug: str) -> dict[str, Any] | None:
        for row in self.workspaces:
            if id_or_slug in (row["id"], row["slug"]):
                return row
        return None

    def polls_between(self, start: float, end: float = math.inf) -> list[float]:
        """When the watched key was asked for (one request a poll), within [start, end)
        on time.monotonic()'s clock."""
        with self.lock:
            return [t for t in self.key_polls if start <= t < end]

    # -- HTTP ---------------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        url = urlparse(handler.path)
        length = int(handler.headers.get("content-length") or 0)
        body = handler.rfile.read(length) if length else b""
        query = parse_qs(url.query)
        with self.lock:
            if url.path == "/api/v1/key":
                self.key_polls.append(time.monotonic())
            self.requests.append((method, url.path, dict(handler.headers.items())))
            self.queries.append((method, url.path, query))
        fault = self._take_fault(url.path)
        if fault is not None:
            if fault.delay:
                time.sleep(fault.delay)
            headers = dict(fault.headers)
            if fault.reset_in is not None:
                headers["X-RateLimit-Reset"] = str(int((time.time() + fault.reset_in) * 1000))
            self._send(handler, fault.status, fault.body, fault.content_type, headers)
            return
        auth = handler.headers.get("authorization", "")
        path = url.path.removeprefix("/api/v1")
        with self.lock:
            status, payload = self._route(method, path, auth, query, body)
        self._send(handler, status, json.dumps(payload), "application/json", {})

    def _route(
        self, method: str, path: str, auth: str, query: dict[str, list[str]], body: bytes
    ) -> tuple[int, Any]:
        a = self.account
        if method == "GET" and path == "/models":
            return self._models(query)  # public: no key needed
        if method == "GET" and path.startswith("/models/") and path.endswith("/endpoints"):
            return self._endpoints(unquote(path.removeprefix("/models/")[: -len("/endpoints")]))
        watched = auth == f"Bearer {API_KEY}"
        management = auth == f"Bearer {MANAGEMENT_KEY}"
        if not (watched or management):
            return error(401, "No auth credentials found")
        if path == "/key" and a.legacy_only:
            return error(404, "Not Found")
        if path in ("/key", "/auth/key") and method == "GET":
            if watched and a.deleted:
                return error(401, "User not found.")
            if watched and a.disabled:
                return error(401, "Key disabled")
            return 200, {"data": self._key_body()}
        if not management:
            return error(403, "Only management keys can perform this operation")
        if path == "/credits" and method == "GET":
            return 200, {
                "data": {
                    "total_credits": a.total_credits,
                    "total_usage": round(a.usage + self.spent_elsewhere, 6),
                }
            }
        if path == "/keys" and method == "GET":
            return self._list(query)
        if path.startswith("/keys/"):
            key_hash = path.removeprefix("/keys/")
            if method == "GET":
                rows = [r for r in self._rows() if r["hash"] == key_hash]
                return (200, {"data": rows[0]}) if rows else error(404, "Resource not found")
            if method == "PATCH":
                return self._patch(key_hash, body)
        if path == "/activity" and method == "GET":
            return self._activity(query)
        if path == "/workspaces" and method == "GET":
            return self._workspaces(query)
        budgets = re.fullmatch(r"/workspaces/([^/]+)/budgets(?:/([^/]+))?", path)
        if budgets:
            return self._budget(method, unquote(budgets[1]), budgets[2], body)
        return error(404, "Not Found")

    def _models(self, query: dict[str, list[str]]) -> tuple[int, Any]:
        """GET /models: the whole list without offset and limit, else that page."""
        rows = [dict(m) for m in self.models]
        if "offset" not in query and "limit" not in query:
            return 200, {"data": rows, "total_count": len(rows), "links": {"next": None}}
        try:
            offset = int(query.get("offset", ["0"])[0])
            limit = int(query.get("limit", ["500"])[0])
        except ValueError:
            return error(400, "offset and limit must be integers")
        if offset < 0 or not 1 <= limit <= 1000:
            return error(400, "Invalid request parameters")
        following = None
        if offset + limit < len(rows):
            following = f"/api/v1/models?offset={offset + limit}&limit={limit}"
        return 200, {
            "data": rows[offset : offset + limit],
            "total_count": len(rows),
            "links": {"next": following},
        }

    def _endpoints(self, model: str) -> tuple[int, Any]:
        """GET /models/{author}/{slug}/endpoints."""
        listed = [m for m in self.models if m["id"] == model]
        if not listed and model not in self.endpoints:
            return error(404, "Resource not found")
        return 200, {
            "data": {
                "id": model,
                "name": model.split("/", 1)[-1],
                "created": 1735689600,
                "description": f"{model} (fake)",
                "architecture": dict(ARCHITECTURE),
                "endpoints": [dict(e) for e in self.endpoints.get(model, [])],
            }
        }

    def _list(self, query: dict[str, list[str]]) -> tuple[int, Any]:
        try:
            offset = int(query.get("offset", ["0"])[0])
        except ValueError:
            return error(400, "offset must be an integer")
        if offset < 0:
            return error(400, "offset must be at least 0")
        include_disabled = query.get("include_disabled", ["false"])[0] == "true"
        workspace_id = query.get("workspace_id", [DEFAULT_WORKSPACE_ID])[0]
        if not UUID.match(workspace_id) or self._workspace(workspace_id) is None:
            return error(400, "Invalid request parameters")  # a UUID of this account's
        rows = [
            r
            for r in self._rows()
            if r["workspace_id"] == workspace_id and (include_disabled or not r["disabled"])
        ]
        return 200, {"data": rows[offset : offset + PAGE_SIZE]}

    def _workspaces(self, query: dict[str, list[str]]) -> tuple[int, Any]:
        """GET /workspaces: `limit` (1 to 100, default 50) from `offset`, and the total."""
        try:
            offset = int(query.get("offset", ["0"])[0])
            limit = int(query.get("limit", ["50"])[0])
        except ValueError:
            return error(400, "offset and limit must be integers")
        if offset < 0 or not 1 <= limit <= WORKSPACE_PAGE_MAX:
            return error(400, "Invalid request parameters")
        rows = [dict(w) for w in self.workspaces]
        return 200, {"data": rows[offset : offset + limit], "total_count": len(rows)}

    def _activity(self, query: dict[str, list[str]]) -> tuple[int, Any]:
        """GET /activity: rows of one key (`api_key_hash`), one day (`date`), one
        workspace (`workspace_id`); split per workspace with `group_by=workspace`, else
        summed across workspaces by date, model and endpoint, without `workspace_id`."""
        key_hash = query.get("api_key_hash", [None])[0]
        day = query.get("date", [None])[0]
        workspace_id = query.get("workspace_id", [None])[0]
        group_by = query.get("group_by", [None])[0]
        if day is not None:
            try:
                date.fromisoformat(day)
            except ValueError:
                return error(400, "Invalid request parameters")
        if group_by not in (None, "workspace"):
            return error(400, "Invalid request parameters")
        if workspace_id is not None and self._workspace(workspace_id) is None:
            return error(404, "Resource not found")
        homes = {r["hash"]: r["workspace_id"] for r in self._rows()}
        for row in self.deleted_keys:  # a deleted key's activity keeps its workspace
            homes.setdefault(row["hash"], row.get("workspace_id", DEFAULT_WORKSPACE_ID))
        homes.setdefault(KEY_HASH, self.account.workspace_id)
        merged: dict[tuple[Any, ...], dict[str, Any]] = {}
        for raw in self.activity:
            owner = raw.get("api_key_hash", KEY_HASH)
            home = raw.get("workspace_id") or homes.get(owner, DEFAULT_WORKSPACE_ID)
            if key_hash is not None and owner != key_hash:
                continue
            if day is not None and raw.get("date") != day:
                continue
            if workspace_id is not None and home != workspace_id:
                continue
            row = {k: v for k, v in raw.items() if k not in ("api_key_hash", "workspace_id")}
            if group_by == "workspace":
                row["workspace_id"] = home
            group = tuple(
                row.get(k)
                for k in ("date", "model", "model_permaslug", "endpoint_id", "provider_name")
            ) + ((home,) if group_by == "workspace" else ())
            if group in merged:
                _add_activity(merged[group], row)
            else:
                merged[group] = row
        return 200, {"data": list(merged.values())}

    def _budget(
        self, method: str, id_or_slug: str, interval: str | None, raw: bytes
    ) -> tuple[int, Any]:
        """GET /workspaces/{id}/budgets, GET and PUT /workspaces/{id}/budgets/{interval}
        (`id`: the workspace's id or slug)."""
        workspace = self._workspace(id_or_slug)
        if interval is not None and interval not in BUDGET_INTERVALS:
            return error(400, "Invalid request parameters")
        if workspace is None:
            return error(404, "Resource not found")
        byok = {"include_byok_in_budgets": workspace.get("include_byok_in_budgets", False)}
        if interval is None:
            if method != "GET":
                return error(404, "Not Found")
            rows = [
                dict(self.budgets[(workspace["id"], i)])
                for i in BUDGET_INTERVALS
                if (workspace["id"], i) in self.budgets
            ]
            return 200, {"data": rows, **byok}
        key = (workspace["id"], interval)
        if method == "GET":
            found = self.budgets.get(key)
            return (
                (200, {"data": dict(found), **byok}) if found else error(404, "Resource not found")
            )
        if method != "PUT":
            return error(404, "Not Found")
        try:
            change = json.loads(raw or b"null")
        except ValueError:
            return error(400, "Invalid JSON body")
        problem = _budget_problem(change) or self._budget_order_problem(
            workspace["id"], interval, change
        )
        if problem:
            return error(400, problem)
        self.budget_puts.append((id_or_slug, interval, change))
        if "include_byok_in_budgets" in change:  # workspace-wide, as the spec says
            workspace["include_byok_in_budgets"] = change["include_byok_in_budgets"]
            byok["include_byok_in_budgets"] = change["include_byok_in_budgets"]
        budget = self.budgets.get(key) or budget_row(workspace["id"], interval, 0.0)
        budget.update(limit_usd=change["limit_usd"], updated_at=_now())
        self.budgets[key] = budget
        return 200, {"data": dict(budget), **byok}

    def _budget_order_problem(
        self, workspace_id: str, interval: str, change: dict[str, Any]
    ) -> str | None:
        """The spec: "Budget limits must strictly decrease as the interval narrows
        (lifetime > monthly > weekly > daily)"."""
        rank = BUDGET_INTERVALS.index(interval)
        limit = change["limit_usd"]
        for other, budget in self.budgets.items():
            if other[0] != workspace_id or other[1] == interval:
                continue
            broader = BUDGET_INTERVALS.index(other[1]) < rank
            if (broader and budget["limit_usd"] <= limit) or (
                not broader and budget["limit_usd"] >= limit
            ):
                return "Budget limits must strictly decrease as the interval narrows"
        return None

    def _patch(self, key_hash: str, raw: bytes) -> tuple[int, Any]:
        """Change only the fields sent, as the spec's PATCH /keys/{hash} does."""
        try:
            change = json.loads(raw or b"null")
        except ValueError:
            return error(400, "Invalid JSON body")
        if not isinstance(change, dict):
            return error(400, "Body must be an object")
        problem = _patch_problem(change)
        if problem:
            return error(400, problem)
        self.patches.append((key_hash, change))
        updated_at = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        if key_hash == KEY_HASH and not self.account.deleted:
            a = self.account
            for name in ("disabled", "limit", "limit_reset", "name", "include_byok_in_limit"):
                if name in change:
                    setattr(a, name, change[name])
            a.updated_at = updated_at
            return 200, {"data": self._watched_row()}
        for row in self.other_keys:
            if row["hash"] == key_hash:
                row.update(change, updated_at=updated_at)
                if {"limit", "limit_reset", "include_byok_in_limit"} & change.keys():
                    _recount(row)
                return 200, {"data": _served_key(row)}
        return error(404, "Resource not found")

    @staticmethod
    def _send(
        handler: BaseHTTPRequestHandler,
        status: int,
        body: str,
        content_type: str,
        headers: dict[str, str],
    ) -> None:
        data = body.encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test); nothing to answer


def error(status: int, message: str) -> tuple[int, dict[str, Any]]:
    """An error answer in the spec's shape: {"error": {"code", "message"}}."""
    return status, {"error": {"code": status, "message": message}}


def _served_key(row: dict[str, Any]) -> dict[str, Any]:
    """A key of `other_keys` as the API serves it: in the default workspace unless the
    row names another."""
    served = dict(row)
    served.setdefault("workspace_id", DEFAULT_WORKSPACE_ID)
    return served


def _recount(row: dict[str, Any]) -> None:
    """Set a key row's limit_remaining from its limit and counters (as the watched key's)."""
    row["limit_remaining"] = limit_remaining(
        row.get("limit"),
        row.get("limit_reset"),
        bool(row.get("include_byok_in_limit")),
        lambda name: float(row.get(name) or 0.0),
    )


def _add_activity(into: dict[str, Any], row: dict[str, Any]) -> None:
    """Sum `row`'s counters into `into` (two rows of one date, model and endpoint)."""
    for name in ("usage", "byok_usage_inference"):
        into[name] = round(into.get(name, 0.0) + row.get(name, 0.0), 9)
    for name in ("requests", "prompt_tokens", "completion_tokens", "reasoning_tokens"):
        into[name] = into.get(name, 0) + row.get(name, 0)


def _budget_problem(change: Any) -> str | None:
    """Why a PUT body breaks UpsertWorkspaceBudgetRequest, or None."""
    if not isinstance(change, dict):
        return "Body must be an object"
    limit = change.get("limit_usd")
    if isinstance(limit, bool) or not isinstance(limit, int | float):
        return "limit_usd must be a number"
    if not math.isfinite(limit) or limit < 0:
        return "limit_usd must be at least 0"
    if "include_byok_in_budgets" in change and not isinstance(
        change["include_byok_in_budgets"], bool
    ):
        return "include_byok_in_budgets must be a boolean"
    return None


def _patch_problem(change: dict[str, Any]) -> str | None:
    """Why a PATCH body breaks the spec's request schema, or None."""
    for name in ("disabled", "include_byok_in_limit"):
        if name in change and not isinstance(change[name], bool):
            return f"{name} must be a boolean"
    limit = change.get("limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int | float)):
        return "limit must be a number or null"
    if "limit_reset" in change and change["limit_reset"] not in LIMIT_RESETS:
        return "limit_reset must be daily, weekly, monthly or null"
    if "name" in change and not isinstance(change["name"], str):
        return "name must be a string"
    return None
