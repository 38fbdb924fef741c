"""The status server: /healthz, /status, /preflight, /metrics and a status page.

Built on Starlette and served by uvicorn (with httptools): the standard, well-kept pair for
a small asynchronous HTTP API in Python. Every answer comes from the in-memory, typed `View`
the last tick built; a request never touches the database or waits for a poll, and this
module imports neither the config nor the store.

Reservations (`POST /preflight?cost=…&hold=…`) live in memory: handlers run on one event
loop, so a check and its hold happen atomically and ten jobs asking at once cannot share
the same headroom. Their number is bounded (`MAX_HOLDS`); /status shows their count and
sum, `GET /preflight/holds` lists them a page at a time.

The hot path is `/preflight`: it is a plain ASGI handler (no Request/Response objects, no
routing table), and whatever depends only on the view (the reasons that do not depend on
the request, the rooms, the headroom) is prepared once per view, not once per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import hmac
import json
import math
import socket
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from watchdog import atomicfile
from watchdog.core import preflight
from watchdog.core.view import UNKNOWN, InstanceView, KeyRow, View
from watchdog.core.words import days, iso, money, parse_duration, rounded, usd

DEFAULT_HOLD = timedelta(minutes=30)
MIN_HOLD = timedelta(seconds=1)
MAX_HOLD = timedelta(hours=24)
MAX_HOLDS = 1000  # reservations held at once; POST /preflight answers 429 beyond
PAGE_LIMIT = 100  # GET /preflight/holds: at most this many per page
MAX_COST = 1e9  # USD: anything above is a typo, and sums of it must stay finite
MAX_LABEL = 100


JSON_TYPE = b"application/json"


# -- reservations -------------------------------------------------------------------------


@dataclass(frozen=True)
class Hold:
    id: str
    amount: float
    until: datetime
    label: str
    key: str = ""  # the hash of the key a job reserved for, "" for the account only


class HoldsFull(Exception):
    """No reservation can be made: `capacity` are held. `next_expiry`: when one ends."""

    def __init__(self, capacity: int, next_expiry: datetime | None, total: float) -> None:
        super().__init__(f"already {capacity} reservations held")
        self.capacity = capacity
        self.next_expiry = next_expiry
        self.total = total


# Given what all holds and the key's holds add up to, the reasons for no-go ([] = go).
Admit = Callable[[float, float], list[str]]


class Holds(Protocol):
    """The reservations as the server and the tick use them: in memory and a file beside
    the state (`Reservations`, one host), or in the shared database (watchdog.holds)."""

    capacity: int

    def total(self, now: datetime) -> float: ...

    def by_key(self, now: datetime) -> dict[str, float]: ...

    def total_for(self, key: str, now: datetime) -> float: ...

    def count(self, now: datetime) -> int: ...

    def active(self, now: datetime) -> list[Hold]: ...

    def reserve(
        self, amount: float, until: datetime, label: str, key: str, admit: Admit, now: datetime
    ) -> tuple[Hold | None, list[str], float]:
        """Check and hold in one step: `admit(total held, held for key)` says why not; the
        hold is made only when it says nothing. Return (the hold or None, the reasons,
        the total held after). Raise HoldsFull, or OSError when the hold cannot be kept."""
        ...

    def release(self, hold_id: str) -> bool: ...


class Reservations:
    """Amounts held by jobs that passed pre-flight and have not finished yet, at most
    `capacity` at once. Expiry is a heap, the sum is kept: a check costs O(1) when nothing
    changed. With a `path` the holds survive a restart (a JSON file written atomically on
    every change: the same $15 is not granted twice). Thread-safe: the tick reads the sum
    for the permit's headroom while the server changes it."""

    def __init__(
        self,
        capacity: int = MAX_HOLDS,
        path: Path | None = None,
        on_change: Callable[[float], None] | None = None,
    ) -> None:
        self.capacity = capacity
        self.path = path
        # Told the total held after every change, so the permit's headroom follows at once.
        self.on_change = on_change
        self._lock = threading.RLock()
        self._holds: dict[str, Hold] = {}
        self._expiry: list[tuple[datetime, str]] = []
        self._total = 0.0
        for hold in _load_holds(path)[:capacity]:
            self._holds[hold.id] = hold
            heapq.heappush(self._expiry, (hold.until, hold.id))
        self._recount()

    def _save(self) -> None:
        if self.path is None:
            return
        data = [
            {
                "id": h.id,
                "amount": h.amount,
                "until": h.until.isoformat(),
                "label": h.label,
                "key": h.key,
            }
            for h in self._holds.values()
        ]
        atomicfile.write(self.path, json.dumps({"holds": data}).encode(), 0o600)

    def _expire(self, now: datetime) -> None:
        with self._lock:
            self._expire_locked(now)

    def _expire_locked(self, now: datetime) -> None:
        heap, changed = self._expiry, False
        while heap and heap[0][0] <= now:
            _, hold_id = heapq.heappop(heap)
            hold = self._holds.get(hold_id)
            if hold is not None and hold.until <= now:
                del self._holds[hold_id]
                changed = True
        if changed:
            self._recount()
            self._save()

    def _recount(self) -> None:
        # Summed afresh on every change (at most `capacity` terms), so adding and removing
        # never leaves a float residue: no holds is exactly 0.0.
        self._total = math.fsum(h.amount for h in self._holds.values())

    def total(self, now: datetime) -> float:
        with self._lock:
            self._expire_locked(now)
            return self._total

    def by_key(self, now: datetime) -> dict[str, float]:
        """What the holds made for keys add up to, by key hash."""
        with self._lock:
            self._expire_locked(now)
            out: dict[str, float] = {}
            for h in self._holds.values():
                if h.key:
                    out[h.key] = out.get(h.key, 0.0) + h.amount
            return out

    def total_for(self, key: str, now: datetime) -> float:
        """What the holds made for `key` (its hash) add up to."""
        with self._lock:
            self._expire_locked(now)
            return math.fsum(h.amount for h in self._holds.values() if h.key == key)

    def count(self, now: datetime) -> int:
        self._expire(now)
        return len(self._holds)

    def full(self, now: datetime) -> bool:
        return self.count(now) >= self.capacity

    def next_expiry(self, now: datetime) -> datetime | None:
        self._expire(now)
        return min((h.until for h in self._holds.values()), default=None)

    def active(self, now: datetime) -> list[Hold]:
        """Every active hold, the soonest to expire first."""
        with self._lock:
            self._expire_locked(now)
            return sorted(self._holds.values(), key=lambda h: (h.until, h.id))

    def reserve(
        self, amount: float, until: datetime, label: str, key: str, admit: Admit, now: datetime
    ) -> tuple[Hold | None, list[str], float]:
        """See Holds.reserve."""
        with self._lock:
            self._expire_locked(now)
            held_for_key = (
                math.fsum(h.amount for h in self._holds.values() if h.key == key) if key else 0.0
            )
            reasons = admit(self._total, held_for_key)
            if reasons:
                return None, reasons, self._total
            if len(self._holds) >= self.capacity:
                raise HoldsFull(
                    self.capacity, min(h.until for h in self._holds.values()), self._total
                )
            hold = self.add(amount, until, label, key)
            return hold, [], self._total

    def add(self, amount: float, until: datetime, label: str = "", key: str = "") -> Hold:
        """Hold `amount` until `until`. The caller checks `full` first (ValueError if full).
        OSError when the holds cannot be saved (the hold is then not made)."""
        with self._lock:
            if len(self._holds) >= self.capacity:
                raise ValueError(f"already {len(self._holds)} reservations held")
            hold = Hold(uuid.uuid4().hex[:16], amount, until, label, key)
            self._holds[hold.id] = hold
            try:
                self._save()
            except OSError:
                del self._holds[hold.id]
                raise
            heapq.heappush(self._expiry, (until, hold.id))
            self._recount()
        if self.on_change is not None:
            self.on_change(self._total)
        return hold

    def release(self, hold_id: str) -> bool:
        with self._lock:
            released = self._release_locked(hold_id)
        if released and self.on_change is not None:
            self.on_change(self._total)
        return released

    def _release_locked(self, hold_id: str) -> bool:
        if self._holds.pop(hold_id, None) is None:
            return False
        self._recount()
        self._save()
        if len(self._expiry) > 2 * len(self._holds) + 64:
            # Released holds leave their heap entries behind; keep the heap bounded.
            self._expiry = [(h.until, h.id) for h in self._holds.values()]
            heapq.heapify(self._expiry)
        return True


class HoldsUnreadable(Exception):
    """The saved reservations exist but cannot be read: starting without them would grant
    the same money twice, so the daemon refuses to start and says which file."""


def _load_holds(path: Path | None) -> list[Hold]:
    """The holds saved at `path` (none when there is no file). Raise HoldsUnreadable when
    the file is there but unreadable or not what we write."""
    if path is None:
        return []
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise HoldsUnreadable(f"cannot read {path}: {exc.strerror}") from None
    try:
        saved = json.loads(raw)
        holds = [
            Hold(
                str(h["id"]),
                float(h["amount"]),
                datetime.fromisoformat(h["until"]),
                h["label"],
                str(h.get("key", "")),
            )
            for h in saved["holds"]
        ]
    except (ValueError, KeyError, TypeError) as exc:
        raise HoldsUnreadable(f"{path} is not a reservations file ({exc})") from None
    if any(not math.isfinite(h.amount) or h.amount < 0 or h.until.tzinfo is None for h in holds):
        raise HoldsUnreadable(f"{path} holds an amount or time that is not valid")
    return holds


# -- answers ------------------------------------------------------------------------------


def _dumps(content: Any) -> bytes:
    return json.dumps(content, separators=(",", ":"), allow_nan=False).encode()


def _json(content: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_dumps(content), status_code, headers, media_type="application/json")


async def _send(send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]]) -> None:
    """A whole JSON answer in two ASGI messages, without a Response object."""
    headers = [
        (b"content-type", JSON_TYPE),
        (b"content-length", str(len(body)).encode()),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _num(value: float | None) -> str:
    """A finite float, or None, as JSON."""
    return "null" if value is None else repr(float(value))


class TokenAuth:
    """Pure ASGI middleware: with a token configured, every request needs
    `Authorization: Bearer <token>` (compared in constant time)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = b""
            for name, value in scope["headers"]:
                if name == b"authorization":
                    given = value
                    break
            if not hmac.compare_digest(given, self.expected):
                await _send(
                    send,
                    401,
                    b'{"error":"missing or wrong bearer token"}',
                    [(b"www-authenticate", b"Bearer")],
                )
                return
        await self.app(scope, receive, send)


@dataclass(frozen=True)
class _Prepared:
    """What a pre-flight answer needs from one view, computed once per view."""

    view: View
    fixed: tuple[str, ...]  # reasons that do not depend on the request or the clock
    fresh_until: datetime | None  # the data is fresh up to this instant
    rooms: Sequence[preflight.Room]
    runway: float | None
    headroom: str  # JSON of headroom_usd, then `,"runway_days":` and its value
    keys: dict[str, KeyRow]  # by name and by full hash

    @classmethod
    def of(cls, v: View) -> _Prepared:
        fixed = []
        if not v.armed:
            fixed.append(f"the permit is revoked: {v.permit_reason}")
        elif v.state == UNKNOWN:
            # The permit decision already says so; never answer go on an unknown state.
            fixed.append("no successful poll since start: the state is unknown")
        last = v.poll.last_success
        m = v.metrics
        return cls(
            view=v,
            fixed=tuple(fixed),
            fresh_until=None if last is None else last + v.budget.stale_after,
            rooms=v.rooms,
            runway=m.runway_days if m is not None else None,
            # headroom_usd, and runway_days beside it (gate --url checks both)
            headroom=f'{_num(money(v.headroom))},"runway_days":'
            f"{_num(rounded(m.runway_days, 2) if m is not None else None)}",
            keys={k.hash: k for k in v.keys} | {k.name: k for k in v.keys},  # names win
        )

    def key_reasons(self, name: str, cost: float, reserved: float) -> list[str]:
        """Why a job on key `name` may not launch, beyond the account's reasons."""
        shown = name[:80]
        if not self.view.keys_watched:
            return [
                f"key {shown!r}: the watchdog keeps no per-key permits (it needs a management key)"
            ]
        row = self.keys.get(name)
        if row is None:
            return [
                f"key {shown!r}: the watchdog keeps no permit for it (not a key of the "
                "account, or not listed yet)"
            ]
        if not row.armed:
            return [f"key {shown!r}: {row.reason}"]
        if row.headroom is not None and cost + reserved > row.headroom + 1e-9:
            left = max(0.0, row.headroom - reserved)
            return [
                f"key {shown!r}: a {usd(cost)} job exceeds the {usd(left)} left before its "
                "nearest limit"
            ]
        return []

    def reasons(
        self, now: datetime, cost: float, reserved: float, runway_floor: float | None
    ) -> list[str]:
        reasons = list(self.fixed)
        lapsed = self.view.ran_out(now) if self.view.armed else None
        if lapsed is not None:
            reasons.append(f"the permit is revoked: {lapsed}")
        if self.fresh_until is None or now > self.fresh_until:
            age = self.view.data_age(now)
            reasons.append(
                "no successful poll yet"
                if age is None
                else f"the data is stale: last successful poll {age:.0f} s ago"
            )
        if self.rooms:
            reasons += preflight.shortfalls(self.rooms, cost, reserved)
        runway = self.runway
        if runway_floor is not None and runway is None:
            reasons.append(
                "runway unknown (no balance known: a management key or a key limit that never "
                f"resets gives one), so at least {runway_floor:g} days cannot be promised"
            )
        elif runway_floor is not None and runway is not None and runway < runway_floor:
            reasons.append(f"credit lasts {days(runway)}, under the {runway_floor:g} asked for")
        return reasons


class _StatusCache:
    """The /status body without the reservation figures, serialized once per view and
    second (and again at the instant the data turns stale)."""

    def __init__(self) -> None:
        self.key: tuple[View, int, bool] | None = None
        self.head = b""

    def head_for(self, v: View, now: datetime) -> bytes:
        key = (v, int(now.timestamp()), v.fresh(now))
        cached = self.key
        if cached is None or cached[0] is not v or cached[1:] != key[1:]:
            self.head = _dumps(v.to_json(now))[:-1]  # without the closing brace
            self.key = key
        return self.head


# -- the app ------------------------------------------------------------------------------


class _Preflight:
    """GET/POST /preflight as a plain ASGI app: the path every job takes before it starts."""

    def __init__(
        self, view: Callable[[], View], clock: Callable[[], datetime], holds: Holds
    ) -> None:
        self.view = view
        self.clock = clock
        self.holds = holds
        self.prepared: _Prepared | None = None

    def prepare(self, v: View) -> _Prepared:
        prepared = self.prepared
        if prepared is None or prepared.view is not v:
            prepared = self.prepared = _Prepared.of(v)
        return prepared

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        if method not in ("GET", "HEAD", "POST"):
            await _send(
                send, 405, b'{"error":"method not allowed"}', [(b"allow", b"GET, HEAD, POST")]
            )
            return
        post = method == "POST"
        if post and getattr(self.holds, "blocking", False):
            # A reservation in the shared database: off the event loop, which other
            # requests keep using while it waits for the units' lock or the network.
            loop = asyncio.get_running_loop()
            status, body, extra = await loop.run_in_executor(
                None, self.answer, post, scope["query_string"]
            )
        else:
            status, body, extra = self.answer(post, scope["query_string"])
        await _send(send, status, body, extra)

    def answer(self, post: bool, query: bytes) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        """Status, JSON body and extra headers of one pre-flight."""
        p, now = self.prepare(self.view()), self.clock()
        params = dict(parse_qsl(query.decode("latin-1"), keep_blank_values=True)) if query else {}
        try:
            cost = _cost(params.get("cost"))
            runway_floor = _number(params.get("min_runway_days"), "min_runway_days")
            hold_for = _hold(params.get("hold")) if post else DEFAULT_HOLD
        except ValueError as exc:
            return 400, _dumps({"error": str(exc)}), []
        holds = self.holds
        key = params.get("key")
        row = p.keys.get(key) if key is not None else None

        def admit(reserved: float, held_for_key: float) -> list[str]:
            reasons = p.reasons(now, cost, reserved, runway_floor)
            if key is not None:
                # Holds count per key by its hash: a rename keeps them, a name cannot
                # dodge them.
                held = held_for_key if row is not None else 0.0
                reasons += p.key_reasons(row.name if row is not None else key, cost, held)
            return reasons

        if not post:
            try:
                reserved = holds.total(now)
                held = holds.total_for(row.hash, now) if row is not None else 0.0
            except OSError as exc:  # the shared reservations cannot be read: we do not know
                return 503, _no_go(cost, p.headroom, 0.0, [_unreadable(exc)]), []
            reasons = admit(reserved, held)
            if reasons:
                return 409, _no_go(cost, p.headroom, reserved, reasons), []
            return 200, _go(cost, p.headroom, reserved, ""), []
        label = params.get("label", "")[:MAX_LABEL]
        try:
            hold, reasons, reserved = holds.reserve(
                cost, now + hold_for, label, row.hash if row else "", admit, now
            )
        except HoldsFull as full:
            until = full.next_expiry
            wait = 1 if until is None else max(1, math.ceil((until - now).total_seconds()))
            reason = (
                f"too many reservations: {full.capacity} are held; release the holds of "
                "finished jobs (DELETE /preflight/{id}) or wait for one to expire"
            )
            body = _no_go(cost, p.headroom, full.total, [reason])
            return 429, body, [(b"retry-after", str(wait).encode())]
        except OSError as exc:  # a hold that would not survive a restart is not granted
            reason = f"cannot save the reservation: {exc.strerror or exc}"
            return 503, _no_go(cost, p.headroom, 0.0, [reason]), []
        if hold is None:
            return 409, _no_go(cost, p.headroom, reserved, reasons), []
        reservation = _dumps(
            {"id": hold.id, "amount": hold.amount, "expires_at": hold.until.isoformat()}
        ).decode()
        return 200, _go(cost, p.headroom, reserved, f',"reservation":{reservation}'), []


def _unreadable(exc: OSError) -> str:
    return f"cannot read the reservations: {exc.strerror or exc}"


def _go(cost: float, headroom: str, reserved: float, more: str) -> bytes:
    return (
        f'{{"go":true,"cost":{_num(cost)},"headroom_usd":{headroom},'
        f'"reserved_usd":{_num(money(reserved))}{more}}}'
    ).encode()


def _no_go(cost: float, headroom: str, reserved: float, reasons: list[str]) -> bytes:
    return (
        f'{{"go":false,"cost":{_num(cost)},"headroom_usd":{headroom},'
        f'"reserved_usd":{_num(money(reserved))},"reasons":{json.dumps(reasons)}}}'
    ).encode()


class _Dispatch:
    """/preflight straight to its handler; everything else through Starlette's router."""

    def __init__(self, preflight_app: _Preflight, rest: ASGIApp) -> None:
        self.preflight = preflight_app
        self.rest = rest

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/preflight":
            await self.preflight(scope, receive, send)
            return
        await self.rest(scope, receive, send)


def create_app(
    *,
    view: Callable[[], View],
    clock: Callable[[], datetime],
    token: str = "",
    reservations: Holds | None = None,
    request_tick: Callable[[], Awaitable[None]] | None = None,
    instance: Callable[[], InstanceView | None] | None = None,
) -> ASGIApp:
    """The ASGI app. `view` returns the latest View; `request_tick` runs a tick now;
    `instance` says this instance's role when several share one database."""
    whoami = instance or (lambda: None)
    holds: Holds = reservations if reservations is not None else Reservations()
    status_cache = _StatusCache()

    async def healthz(request: Request) -> Response:
        v, now = view(), clock()
        age = v.data_age(now)
        failing = v.poll.failing_tick()
        lapsed = v.ran_out(now)
        if lapsed is not None:
            return _json({"ok": False, "reason": lapsed, "data_age_s": rounded(age)}, 503)
        if failing is not None:
            # Fresh data is no comfort when the tick cannot use it (a full disk, a bug).
            reason = f"the last tick failed ({failing}): {v.poll.last_error}"
            return _json({"ok": False, "reason": reason, "data_age_s": rounded(age)}, 503)
        started = v.poll.started_at
        if v.poll.last_success is not None and v.poll.last_success < started:
            # Data from before a restart is not this daemon's: not healthy until it polls.
            reason = "starting: no successful poll since start"
            return _json({"ok": False, "reason": reason, "data_age_s": rounded(age)}, 503)
        if v.fresh(now):
            return _json(
                {"ok": True, "data_age_s": rounded(age), "last_poll_at": iso(v.poll.last_success)}
            )
        if age is None:
            reason = "no successful poll yet"
        else:
            reason = (
                f"no successful poll for {age:.0f} s "
                f"(stale after {v.stale_after.total_seconds():g} s)"
            )
        if v.poll.last_error:
            reason += f"; last error: {v.poll.last_error}"
        return _json({"ok": False, "reason": reason, "data_age_s": rounded(age)}, 503)

    async def status(request: Request) -> Response:
        v, now = view(), clock()
        reserved, count = holds.total(now), holds.count(now)
        me = whoami()
        body = b'%s,"reserved_usd":%s,"reservations_count":%d%s}' % (
            status_cache.head_for(v, now),
            _num(money(reserved)).encode(),
            count,
            b"" if me is None else b',"instance":' + _dumps(me.json()),
        )
        return Response(body, media_type="application/json")

    async def list_holds(request: Request) -> Response:
        now = clock()
        try:
            offset = _count(request.query_params.get("offset"), "offset", 0, None)
            limit = _count(request.query_params.get("limit"), "limit", PAGE_LIMIT, PAGE_LIMIT)
        except ValueError as exc:
            return _json({"error": str(exc)}, 400)
        active = holds.active(now)
        page = active[offset : offset + limit]
        return _json(
            {
                "total": len(active),
                "reserved_usd": money(math.fsum(h.amount for h in active)),
                "offset": offset,
                "limit": limit,
                "holds": [
                    {
                        "id": h.id,
                        "amount": h.amount,
                        "expires_at": h.until.isoformat(),
                        "label": h.label,
                    }
                    for h in page
                ],
            }
        )

    async def release(request: Request) -> Response:
        hold_id = request.path_params["hold_id"]
        try:
            if getattr(holds, "blocking", False):
                loop = asyncio.get_running_loop()
                released = await loop.run_in_executor(None, holds.release, hold_id)
            else:
                released = holds.release(hold_id)
        except OSError as exc:
            return _json({"error": f"cannot release {hold_id}: {exc.strerror or exc}"}, 503)
        if released:
            return _json({"released": hold_id})
        return _json({"error": f"no reservation {hold_id} (expired or released)"}, 404)

    async def metrics(request: Request) -> Response:
        from watchdog.metrics import render

        now = clock()
        body, content_type = render(view().at(now), now, holds.total(now), whoami())
        return Response(body, media_type=content_type)

    async def page(request: Request) -> Response:
        from watchdog.page import render

        now = clock()
        return HTMLResponse(render(view().at(now), now, holds.total(now)))

    async def tick(request: Request) -> Response:
        if request_tick is None:
            return _json({"error": "ticks cannot be requested here"}, 503)
        await request_tick()
        v = view()
        return _json(
            {
                "state": v.state,
                "permit": "armed" if v.armed else "revoked",
                "permit_reason": "" if v.armed else v.permit_reason,
            }
        )

    rest = Starlette(
        routes=[
            Route("/status", status, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/", page, methods=["GET"]),
            Route("/preflight/holds", list_holds, methods=["GET"]),
            Route("/preflight/{hold_id}", release, methods=["DELETE"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/tick", tick, methods=["POST"]),
        ]
    )
    app: ASGIApp = _Dispatch(_Preflight(view, clock, holds), rest)
    if token:
        app = TokenAuth(app, token)
    return app


# -- parameters ---------------------------------------------------------------------------


def _number(text: str | None, name: str) -> float | None:
    """A query parameter that is a number of 0 or more, or None when not given."""
    if text is None or text == "":
        return None
    try:
        value = float(text) if len(text) <= 40 else math.nan
    except ValueError:
        value = math.nan
    if math.isnan(value):
        raise ValueError(f"{name} must be a number, not {text[:40]!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be 0 or more and finite, not {text[:40]!r}")
    return value


def _cost(text: str | None) -> float:
    cost = _number(text, "cost")
    if cost is not None and cost > MAX_COST:
        raise ValueError(f"cost must be at most {MAX_COST:.0f} USD, not {text!r}")
    return cost or 0.0


def _hold(text: str | None) -> timedelta:
    """`hold=`: "90s", "5m", "4h", "1d" or seconds, from 1 s to 24 h."""
    if text is None or text == "":
        return DEFAULT_HOLD
    shown = text[:40]
    try:
        hold = parse_duration(text)
    except ValueError:
        raise ValueError(
            f'hold must be a duration like "90s", "5m", "4h", "1d" or seconds, not {shown!r}'
        ) from None
    if not MIN_HOLD <= hold <= MAX_HOLD:
        raise ValueError(f"hold must be from 1s to 24h, not {shown!r}")
    return hold


def _count(text: str | None, name: str, default: int, most: int | None) -> int:
    if text is None or text == "":
        return default
    if not (text.isascii() and text.isdigit() and len(text) <= 9):
        raise ValueError(f"{name} must be a whole number of 0 or more, not {text[:20]!r}")
    value = int(text)
    if most is not None and value > most:
        raise ValueError(f"{name} must be at most {most}")
    return value


# -- serving ------------------------------------------------------------------------------


class StatusServer:
    """uvicorn serving the app on a socket we bind ourselves (so a busy port is our error
    message, not uvicorn's exit), without uvicorn's own signal handling (the daemon's)."""

    def __init__(
        self,
        app: ASGIApp,
        host: str,
        port: int,
        log: Any,
        *,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.log = log
        self.tls = tls  # (certificate, key): HTTPS
        self._server: Any = None
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None

    def bind(self) -> None:
        """Bind the listening socket. Raise OSError (port in use, no such address)."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted connections only
        # for sockets that say they are TCP; without it, Nagle's algorithm and delayed ACKs
        # hold every response ~40 ms (measured: 1,100 instead of 10,000+ requests/s).
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        sock.listen(512)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        self._socket = sock

    async def start(self) -> None:
        import uvicorn

        if self._socket is None:
            self.bind()
        config = uvicorn.Config(
            self.app,
            # No logging config of uvicorn's own: its records propagate to the root logger,
            # whose handler (watchdog.log) scrubs secrets and renders them like ours.
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            http="httptools",
            loop="none",
            server_header=False,
            date_header=False,
            ssl_certfile=str(self.tls[0]) if self.tls else None,
            ssl_keyfile=str(self.tls[1]) if self.tls else None,
        )
        if self.tls:
            config.load()  # the TLS context now: a bad pair is an error at start

        class _Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                yield  # the daemon handles SIGTERM/SIGINT itself

        self._server = _Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[self._socket]))
        while not self._server.started:
            if self._task.done():
                self._task.result()  # re-raise what stopped it
                raise RuntimeError("the status server stopped during start-up")
            await asyncio.sleep(0.005)
        scheme = "https" if self.tls else "http"
        self.log.info("server_listening", url=f"{scheme}://{_host(self.host)}:{self.port}/")

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
        if self._socket is not None:
            self._socket.close()


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
