"""A small fake OpenRouter HTTP server on 127.0.0.1, with fault injection.

Serves /api/v1/key, /auth/key, /credits, /keys (paginated), /activity and
PATCH /keys/{hash} from a mutable account state. Tests change the state (spend, top up)
and queue faults (status bursts, slow answers, HTML, missing fields) between polls.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

API_KEY = "sk-or-v1-e2e-watched-key-0123456789abcdef0123456789abcdef"
MANAGEMENT_KEY = "sk-or-v1-e2e-management-key-fedcba9876543210fedcba987654"
KEY_HASH = "e2ekeyhash0000000000000000000000000000000000000000000000000000ab"


@dataclass
class Fault:
    """What the next matching requests get instead of a normal answer."""

    status: int = 500
    body: str = '{"error": {"code": 500, "message": "Internal Server Error"}}'
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    count: int | None = None  # None: until cleared
    paths: tuple[str, ...] = ()  # empty: every path


@dataclass
class Account:
    usage: float = 100.0
    usage_daily: float = 2.0
    usage_weekly: float = 20.0
    usage_monthly: float = 60.0
    total_credits: float = 300.0
    limit: float | None = None
    disabled: bool = False
    legacy_only: bool = False  # answer 404 on /key, like an older deployment


class FakeOpenRouter:
    def __init__(self) -> None:
        self.account = Account()
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str, dict[str, str]]] = []
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

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/api/v1"

    def start(self) -> FakeOpenRouter:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def spend(self, amount: float) -> None:
        with self.lock:
            a = self.account
            a.usage += amount
            a.usage_daily += amount
            a.usage_weekly += amount
            a.usage_monthly += amount

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

    def _key_body(self) -> dict[str, Any]:
        a = self.account
        return {
            "label": "sk-or-v1-e2e...cdef",
            "limit": a.limit,
            "limit_remaining": None if a.limit is None else a.limit - a.usage,
            "limit_reset": None,
            "usage": round(a.usage, 6),
            "usage_daily": round(a.usage_daily, 6),
            "usage_weekly": round(a.usage_weekly, 6),
            "usage_monthly": round(a.usage_monthly, 6),
            "byok_usage": 0,
            "is_free_tier": False,
            "is_management_key": False,
            "rate_limit": {"requests": -1, "interval": "10s", "note": "deprecated"},
        }

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        url = urlparse(handler.path)
        length = int(handler.headers.get("content-length") or 0)
        body = handler.rfile.read(length) if length else b""
        with self.lock:
            self.requests.append((method, url.path, dict(handler.headers.items())))
        fault = self._take_fault(url.path)
        if fault is not None:
            if fault.delay:
                time.sleep(fault.delay)
            self._send(handler, fault.status, fault.body, fault.content_type, fault.headers)
            return
        auth = handler.headers.get("authorization", "")
        path = url.path.removeprefix("/api/v1")
        with self.lock:
            status, payload = self._route(method, path, auth, parse_qs(url.query), body)
        self._send(handler, status, json.dumps(payload), "application/json", {})

    def _route(
        self, method: str, path: str, auth: str, query: dict[str, list[str]], body: bytes
    ) -> tuple[int, Any]:
        a = self.account
        watched = auth == f"Bearer {API_KEY}"
        management = auth == f"Bearer {MANAGEMENT_KEY}"
        if not (watched or management):
            return 401, {"error": {"code": 401, "message": "No auth credentials found"}}
        if path == "/key" and a.legacy_only:
            return 404, {"error": {"code": 404, "message": "Not Found"}}
        if path in ("/key", "/auth/key") and method == "GET":
            if watched and a.disabled:
                return 401, {"error": {"code": 401, "message": "Key disabled"}}
            return 200, {"data": self._key_body()}
        if not management:
            return 403, {"error": {"code": 403, "message": "Only management keys can do this"}}
        if path == "/credits":
            return 200, {
                "data": {"total_credits": a.total_credits, "total_usage": round(a.usage, 6)}
            }
        if path == "/keys" and method == "GET":
            offset = int(query.get("offset", ["0"])[0])
            row = dict(self._key_body(), hash=KEY_HASH, name="batch", disabled=a.disabled)
            return 200, {"data": [row] if offset == 0 else []}
        if path == f"/keys/{KEY_HASH}" and method == "PATCH":
            a.disabled = bool(json.loads(body or b"{}").get("disabled"))
            return 200, {"data": dict(self._key_body(), hash=KEY_HASH, disabled=a.disabled)}
        if path == "/activity":
            return 200, {
                "data": [
                    {
                        "date": "2026-11-01",
                        "model": "openai/gpt-4.1",
                        "provider_name": "OpenAI",
                        "usage": 1.5,
                        "requests": 10,
                        "prompt_tokens": 1000,
                        "completion_tokens": 500,
                    },
                ]
            }
        return 404, {"error": {"code": 404, "message": "Not Found"}}

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
