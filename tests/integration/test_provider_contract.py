"""Our test doubles answer as OpenRouter's published API does, or the tests prove nothing.

Every answer of the fake server (tests/fake_openrouter.py), every fault body the tests
queue on it, every fixture body the respx tests serve, and the example bodies the unit
tests parse are held to the required fields and JSON types of OpenRouter's OpenAPI
document, as tests/spec/openrouter_required.json records them (with where each comes
from). The respx bodies are recorded as served: the respx test modules run once in a
child pytest with `httpx.Client.send` wrapped, so a fixture built in a test body is
checked too. The requests we send are held to the spec's request schema as well.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fake_openrouter import (
    API_KEY,
    DEFAULT_WORKSPACE_ID,
    KEY_HASH,
    MANAGEMENT_KEY,
    FakeOpenRouter,
    Fault,
    activity_row,
    budget_exceeded,
    budget_row,
    key_row,
    workspace_row,
)
from watchdog.providers.openrouter import OpenRouterProvider

ROOT = Path(__file__).resolve().parents[2]
SPEC: dict[str, Any] = json.loads((ROOT / "tests/spec/openrouter_required.json").read_text())
ENDPOINTS: dict[str, dict[str, Any]] = SPEC["endpoints"]

WORKSPACES_TESTS = "tests/integration/test_openrouter_workspaces.py::"
# Fixtures that break the shape on purpose, to prove the client refuses it. Everything
# else must be the API's shape. (test id without parameters: reason)
DELIBERATE = {
    WORKSPACES_TESTS + "test_a_key_row_without_its_workspace_gets_the_one_asked_for": (
        "a /keys row without workspace_id: the workspace asked for is filled in"
    ),
    WORKSPACES_TESTS + "test_an_unreadable_workspace_listing_is_a_bad_response": (
        "workspace listings without a list, an id or a numeric total: must be a BadResponse"
    ),
    "tests/integration/test_openrouter_http.py::test_json_without_usage_is_a_bad_response": (
        "a /key body without usage: must be a BadResponse"
    ),
    "tests/integration/test_openrouter_http.py::test_html_instead_of_json_is_a_bad_response": (
        "an HTML maintenance page"
    ),
    "tests/integration/test_openrouter_http.py::test_a_nan_budget_is_a_bad_response": (
        "a budget whose limit_usd is the string 'NaN': must be a BadResponse"
    ),
}
# Fault bodies of tests/e2e/test_faults.py that are broken on purpose, by name.
DELIBERATE_FAULTS = {"slower than the timeout", "HTML instead of JSON", "JSON missing fields"}
# Test modules that serve respx fixtures and are not ours to edit: their known gaps are
# listed here, so the gap stays visible (strict: fixing them makes this fail until the
# entry goes).
KNOWN_GAPS: dict[str, str] = {}


# -- the checker ------------------------------------------------------------------------------


def type_ok(value: Any, allowed: list[str]) -> bool:
    for name in allowed:
        if name == "null" and value is None:
            return True
        if name == "boolean" and isinstance(value, bool):
            return True
        if isinstance(value, bool):
            continue
        if name == "number" and isinstance(value, int | float):
            return True
        if name == "integer" and isinstance(value, int):
            return True
        if name == "string" and isinstance(value, str):
            return True
        if name == "object" and isinstance(value, dict):
            return True
        if name == "array" and isinstance(value, list):
            return True
    return False


def fields_problems(
    where: str, data: Any, required: Mapping[str, list[str]], optional: Mapping[str, list[str]]
) -> list[str]:
    if not isinstance(data, dict):
        return [f"{where}: not an object"]
    problems = [f"{where}: required '{n}' missing" for n in required if n not in data]
    for name, allowed in {**optional, **required}.items():
        if name in data and not type_ok(data[name], allowed):
            problems.append(f"{where}: '{name}' is {data[name]!r}, the spec says {allowed}")
    return problems


def error_problems(body: Any) -> list[str]:
    spec = SPEC["error"]
    if not isinstance(body, dict):
        return ["error body: not an object"]
    problems = fields_problems("error envelope", body, {"error": ["object"]}, {})
    problems += fields_problems("error envelope", body, {}, spec["envelope"]["optional"])
    if isinstance(body.get("error"), dict):
        problems += fields_problems("error", body["error"], spec["required"], spec["optional"])
    return problems


def endpoint_for(method: str, path: str) -> str | None:
    path = re.sub(r"^.*?/api/v1", "", path.split("?")[0])
    path = re.sub(r"^/keys/[^/]+$", "/keys/{hash}", path)
    path = re.sub(r"^/workspaces/[^/]+/budgets/[^/]+$", "/workspaces/{id}/budgets/{interval}", path)
    path = re.sub(r"^/workspaces/[^/]+/budgets$", "/workspaces/{id}/budgets", path)
    name = f"{method} {path}"
    return name if name in ENDPOINTS else None


def body_problems(method: str, path: str, status: int, body: Any) -> list[str]:
    """Why this answer is not what the spec allows (empty: it is)."""
    if status >= 400:
        return error_problems(body)
    name = endpoint_for(method, path)
    if name is None:
        return [f"{method} {path}: not an endpoint of the spec data"]
    spec = ENDPOINTS[name]
    if not isinstance(body, dict) or "data" not in body:
        return [f"{name}: no 'data' member"]
    envelope = spec["envelope"]
    problems: list[str] = [
        f"{name}: envelope member '{member}' missing"
        for member in envelope["required"]
        if member not in body
    ]
    for member, allowed in envelope.get("fields", {}).items():
        if member in body and not type_ok(body[member], allowed):
            problems.append(f"{name}: envelope '{member}' is {body[member]!r}, not {allowed}")
    data = body["data"]
    items = data if envelope["data"] == "array" else [data]
    if envelope["data"] == "array" and not isinstance(data, list):
        return [f"{name}: 'data' is not an array"]
    for index, item in enumerate(items):
        problems += fields_problems(f"{name} [{index}]", item, spec["required"], spec["optional"])
        for field, allowed in spec.get("enums", {}).items():
            if isinstance(item, dict) and field in item and item[field] not in allowed:
                problems.append(f"{name} [{index}]: '{field}' is {item[field]!r}, not {allowed}")
    return problems


def request_problems(method: str, path: str, body: Any) -> list[str]:
    name = endpoint_for(method, path)
    spec = ENDPOINTS[name].get("request") if name else None
    if spec is None:
        return [f"{method} {path}: no request schema"]
    problems = fields_problems(f"{name} request", body, spec["required"], spec["optional"])
    for field, allowed in spec["enums"].items():
        if isinstance(body, dict) and field in body and body[field] not in allowed:
            problems.append(f"{name} request: '{field}' is {body[field]!r}, not {allowed}")
    return problems


def query_problems(method: str, path: str, query: Mapping[str, list[str]]) -> list[str]:
    """Why the query parameters of a request are not the spec's: a parameter the endpoint
    does not document, or outside its enum or its minimum and maximum."""
    name = endpoint_for(method, path)
    documented: dict[str, Any] = ENDPOINTS[name].get("query", {}) if name else {}
    problems = []
    for param, values in query.items():
        spec = documented.get(param)
        if spec is None:
            problems.append(f"{method} {path}: query '{param}' is not documented")
            continue
        for value in values:
            if "enum" in spec and value not in spec["enum"]:
                problems.append(f"{method} {path}: {param}={value!r}, not {spec['enum']}")
            if "maximum" in spec and not spec["minimum"] <= int(value) <= spec["maximum"]:
                problems.append(f"{method} {path}: {param}={value} out of range")
            if spec.get("format") == "uuid" and not re.fullmatch(r"[0-9a-f-]{36}", value):
                problems.append(f"{method} {path}: {param}={value!r} is not a UUID")
    return problems


def test_the_checker_refuses_what_the_spec_refuses() -> None:
    """The checker itself: a missing required field, a wrong type, a bool for a number."""
    row = key_row("h", "n")
    assert body_problems("GET", "/api/v1/keys", 200, {"data": [row]}) == []
    del row["byok_usage"]
    assert body_problems("GET", "/api/v1/keys", 200, {"data": [row]}) == [
        "GET /keys [0]: required 'byok_usage' missing"
    ]
    assert body_problems("GET", "/api/v1/credits", 200, {"data": {"total_credits": True}})
    assert body_problems("GET", "/api/v1/keys/x", 200, {"data": dict(key_row("h", "n"), usage="1")})
    assert error_problems({"error": {"code": "403", "message": "x"}})
    assert error_problems({"error": {"code": 403, "message": "x"}}) == []
    assert request_problems("PATCH", "/keys/x", {"limit_reset": "hourly"})
    assert body_problems("GET", "/workspaces", 200, {"data": []}) == [
        "GET /workspaces: envelope member 'total_count' missing"
    ]
    ws = workspace_row(DEFAULT_WORKSPACE_ID, "default", "Default")
    assert body_problems("GET", "/workspaces", 200, {"data": [ws], "total_count": 1}) == []
    assert body_problems("GET", "/workspaces", 200, {"data": [ws], "total_count": "1"})
    budget = budget_row(DEFAULT_WORKSPACE_ID, "monthly", 5)
    path = f"/workspaces/{DEFAULT_WORKSPACE_ID}/budgets/monthly"
    assert body_problems("PUT", path, 200, {"data": budget}) == []
    assert body_problems("GET", path, 200, {"data": dict(budget, reset_interval="lifetime")})
    assert request_problems("PUT", path, {"limit_usd": "5"})
    assert request_problems("PUT", path, {}) == [
        "PUT /workspaces/{id}/budgets/{interval} request: required 'limit_usd' missing"
    ]
    assert query_problems("GET", "/workspaces", {"limit": ["101"]})
    assert query_problems("GET", "/keys", {"workspace_id": ["default"]})
    assert query_problems("GET", "/activity", {"group_by": ["key"]})


def test_the_spec_data_says_where_it_comes_from() -> None:
    source = SPEC["source"]
    assert source["repository"] == "OpenRouterTeam/docs"
    assert re.fullmatch(r"[0-9a-f]{40}", source["commit"])
    for name, spec in ENDPOINTS.items():
        assert spec["where"], name
        assert spec["required"], name
    assert set(ENDPOINTS) >= {
        "GET /key",
        "GET /credits",
        "GET /keys",
        "GET /keys/{hash}",
        "PATCH /keys/{hash}",
        "GET /activity",
        "GET /workspaces",
        "GET /workspaces/{id}/budgets",
        "GET /workspaces/{id}/budgets/{interval}",
        "PUT /workspaces/{id}/budgets/{interval}",
    }


# -- the unit tests' example bodies ----------------------------------------------------------


def test_the_example_bodies_the_parser_tests_use_are_the_spec_s() -> None:
    from tests.unit import test_openrouter_parse as parse

    examples = [
        ("GET", "/key", parse.KEY_EXAMPLE),
        ("GET", "/auth/key", parse.LEGACY_EXAMPLE),
        ("GET", "/keys", parse.KEYS_EXAMPLE),
        ("GET", "/credits", parse.CREDITS_EXAMPLE),
        ("GET", "/activity", parse.ACTIVITY_EXAMPLE),
        ("GET", "/workspaces", parse.WORKSPACES_EXAMPLE),
        ("GET", "/workspaces/production/budgets/monthly", parse.BUDGET_EXAMPLE),
        ("PUT", "/workspaces/production/budgets/monthly", parse.BUDGET_EXAMPLE),
    ]
    for method, path, body in examples:
        assert body_problems(method, path, 200, body) == [], path


# -- the fake server ----------------------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeOpenRouter]:
    server = FakeOpenRouter().start()
    yield server
    server.stop()


def answers(fake: FakeOpenRouter) -> list[tuple[str, str, httpx.Response]]:
    """The fake's answer to every endpoint, in every state the tests put it in."""
    seen: list[tuple[str, str, httpx.Response]] = []

    def call(method: str, path: str, key: str = MANAGEMENT_KEY, **kwargs: Any) -> httpx.Response:
        response = httpx.request(
            method,
            f"{fake.base_url}{path}",
            headers={"Authorization": f"Bearer {key}"},
            timeout=5,
            **kwargs,
        )
        seen.append((method, path, response))
        return response

    states: list[Callable[[], None]] = [
        lambda: None,
        lambda: fake.spend(3.0, byok=1.25),
        lambda: setattr(fake.account, "include_byok_in_limit", True),
        lambda: setattr(fake.account, "limit", 50.0),
        *[lambda r=r: setattr(fake.account, "limit_reset", r) for r in ("daily", "weekly")],
        lambda: setattr(fake.account, "expires_at", "2027-12-31T23:59:59Z"),
        lambda: fake.other_keys.extend(
            key_row(f"k{i:03}", f"key {i}", disabled=i % 7 == 0) for i in range(230)
        ),
    ]
    for change in states:
        change()
        call("GET", "/key", API_KEY)
        call("GET", "/key")
        call("GET", "/credits")
        for query in ("", "?include_disabled=true", "?include_disabled=true&offset=100"):
            call("GET", f"/keys{query}")
        call("GET", "/keys?include_disabled=true&offset=200")
        call("GET", f"/keys/{KEY_HASH}")
        call("GET", "/activity")
    # Workspaces: a second one with keys of its own, its budgets, activity by key.
    team = "5a1e0000-0000-4000-8000-00000000000b"
    fake.add_workspace(team, "team", "Team")
    fake.other_keys.append(key_row("t1", "team key", workspace_id=team, limit=5.0))
    fake.spend_key("t1", 1.5, byok=0.5)
    fake.activity.append(
        dict(
            activity_row(date(2026, 11, 1), "openai/gpt-4.1", "OpenAI", 0.5, 2, 10, 5),
            api_key_hash="t1",
        )
    )
    for query in ("", "?offset=0&limit=100", "?offset=1&limit=1", "?limit=101", "?offset=-1"):
        call("GET", f"/workspaces{query}")
    call("GET", "/workspaces", API_KEY)  # 403: not a management key
    call("GET", f"/keys?workspace_id={team}&include_disabled=true&offset=0")
    call("GET", "/keys?workspace_id=team")  # 400: not an id
    call("GET", "/keys/t1")
    call("PATCH", "/keys/t1", json={"limit": 10, "limit_reset": "weekly"})
    for query in (
        "?api_key_hash=t1",
        f"?api_key_hash={KEY_HASH}&date=2026-11-01",
        f"?workspace_id={team}",
        "?group_by=workspace",
        "?date=yesterday",  # 400
        "?workspace_id=00000000-0000-4000-8000-00000000dead",  # 404
    ):
        call("GET", f"/activity{query}")
    for where in (team, "team", DEFAULT_WORKSPACE_ID):
        budgets = f"/workspaces/{where}/budgets"
        call("GET", f"{budgets}/monthly")  # 404 at first
        call("PUT", f"{budgets}/monthly", json={"limit_usd": 100})
        call("PUT", f"{budgets}/daily", json={"limit_usd": 10, "include_byok_in_budgets": True})
        call("PUT", f"{budgets}/weekly", json={"limit_usd": 200})  # 400: above monthly
        call("PUT", f"{budgets}/lifetime", json={"limit_usd": 1000})
        call("GET", f"{budgets}/lifetime")
        call("GET", budgets)
        call("GET", f"{budgets}/hourly")  # 400
    call("PUT", f"/workspaces/{team}/budgets/monthly", json={"limit_usd": "a lot"})  # 400
    call("GET", "/workspaces/nowhere/budgets")  # 404
    call("GET", "/keys/k007")
    call("PATCH", "/keys/k007", json={"disabled": False})
    call("PATCH", f"/keys/{KEY_HASH}", json={"limit": 20, "limit_reset": "monthly"})
    call("PATCH", f"/keys/{KEY_HASH}", json={"disabled": True})
    call("GET", "/key", API_KEY)  # 401: disabled
    call("PATCH", f"/keys/{KEY_HASH}", json={"include_byok_in_limit": False, "name": "n"})
    call("PATCH", f"/keys/{KEY_HASH}", json={"limit": None, "limit_reset": None})
    call("PATCH", f"/keys/{KEY_HASH}", json={"limit_reset": "hourly"})  # 400
    call("PATCH", f"/keys/{KEY_HASH}", content=b"[1]")  # 400
    call("PATCH", "/keys/unknown", json={"disabled": True})  # 404
    call("GET", "/keys/unknown")  # 404
    call("GET", "/keys?offset=-1")  # 400
    call("GET", "/credits", API_KEY)  # 403
    call("GET", "/key", "sk-or-v1-nobody")  # 401
    call("GET", "/nowhere")  # 404
    fake.account.legacy_only = True
    call("GET", "/key", API_KEY)  # 404
    call("GET", "/auth/key", API_KEY)
    return seen


def test_every_answer_of_the_fake_is_the_spec_s(fake: FakeOpenRouter) -> None:
    problems = []
    statuses = set()
    for method, path, response in answers(fake):
        statuses.add(response.status_code)
        for problem in body_problems(method, path, response.status_code, response.json()):
            problems.append(f"{method} {path} -> {response.status_code}: {problem}")
    assert problems == []
    assert statuses == {200, 400, 401, 403, 404}


def test_every_fault_body_the_tests_queue_is_the_spec_s() -> None:
    from tests.e2e.test_faults import FAULTS

    faults = [(name, fault) for name, fault, _ in FAULTS]
    faults += [("default", Fault()), ("budget", budget_exceeded())]
    for name, fault in faults:
        if name in DELIBERATE_FAULTS:
            continue
        assert fault.status >= 400, f"{name}: a 2xx fault that is not declared deliberate"
        if fault.content_type != "application/json":
            assert fault.status >= 500, f"{name}: only a gateway answers {fault.status} in HTML"
            continue
        assert error_problems(json.loads(fault.body)) == [], name


# -- what the fake does, as the spec says -----------------------------------------------


def test_the_fake_lists_disabled_keys_only_when_asked(fake: FakeOpenRouter) -> None:
    fake.account.disabled = True
    headers = {"Authorization": f"Bearer {MANAGEMENT_KEY}"}
    plain = httpx.get(f"{fake.base_url}/keys", headers=headers).json()["data"]
    asked = httpx.get(f"{fake.base_url}/keys?include_disabled=true", headers=headers).json()
    assert plain == []
    assert [r["hash"] for r in asked["data"]] == [KEY_HASH]


def test_the_fake_pages_by_offset_100_at_a_time(fake: FakeOpenRouter) -> None:
    fake.other_keys.extend(key_row(f"k{i:03}", f"key {i}") for i in range(150))
    headers = {"Authorization": f"Bearer {MANAGEMENT_KEY}"}
    pages = [
        httpx.get(f"{fake.base_url}/keys?offset={o}", headers=headers).json()["data"]
        for o in (0, 100, 200)
    ]
    assert [len(p) for p in pages] == [100, 51, 0]


def test_a_patch_changes_only_the_fields_it_sends(fake: FakeOpenRouter) -> None:
    """The old fake re-enabled the key on any PATCH without `disabled`, and ignored
    `limit` and `limit_reset`."""
    fake.account.disabled = True
    headers = {"Authorization": f"Bearer {MANAGEMENT_KEY}"}
    url = f"{fake.base_url}/keys/{KEY_HASH}"
    row = httpx.patch(url, headers=headers, json={"limit": 10, "limit_reset": "daily"})
    data = row.json()["data"]
    assert fake.account.disabled is True and data["disabled"] is True
    assert (data["limit"], data["limit_reset"]) == (10, "daily")
    assert data["limit_remaining"] == 10 - fake.account.usage_daily
    fake.spend(1.0, byok=2.0)
    httpx.patch(url, headers=headers, json={"include_byok_in_limit": True})
    got = httpx.get(f"{fake.base_url}/key", headers={"Authorization": f"Bearer {API_KEY}"})
    assert got.status_code == 401  # still disabled
    data = httpx.get(url, headers=headers).json()["data"]
    a = fake.account
    assert data["limit_remaining"] == pytest.approx(10 - a.usage_daily - a.byok_usage_daily)
    assert (
        httpx.patch(url, headers=headers, json={"disabled": False}).json()["data"]["disabled"]
        is False
    )


def test_the_fake_answers_a_used_up_workspace_budget_as_openrouter_does(
    fake: FakeOpenRouter,
) -> None:
    fake.fault(budget_exceeded(count=1))
    got = httpx.get(f"{fake.base_url}/key", headers={"Authorization": f"Bearer {API_KEY}"})
    assert got.status_code == 403
    assert "budget" in got.json()["error"]["message"]


def test_the_requests_the_client_sends_are_the_spec_s(fake: FakeOpenRouter) -> None:
    client = OpenRouterProvider(fake.base_url, API_KEY, MANAGEMENT_KEY, attempts=1)
    try:
        client.fetch()
        client.set_key_disabled(KEY_HASH, True)
        client.set_key_disabled(KEY_HASH, False)
    finally:
        client.close()
    for key_hash, body in fake.patches:
        assert request_problems("PATCH", f"/keys/{key_hash}", body) == []
    queries = [q for m, p, q in fake.queries if p.endswith("/keys")]
    assert queries and all(q["include_disabled"] == ["true"] for q in queries)
    assert all(int(q["offset"][0]) >= 0 for q in queries)
    assert all(q["workspace_id"] == [DEFAULT_WORKSPACE_ID] for q in queries)


def test_the_new_requests_the_client_sends_are_the_spec_s(fake: FakeOpenRouter) -> None:
    """Key limits, workspace budgets, per-key activity, and their query parameters."""
    team = "5a1e0000-0000-4000-8000-00000000000b"
    fake.add_workspace(team, "team", "Team")
    fake.other_keys.append(key_row("t1", "team key", workspace_id=team))
    client = OpenRouterProvider(
        fake.base_url, API_KEY, MANAGEMENT_KEY, attempts=1, workspaces=("default", "team")
    )
    try:
        client.fetch()
        client.update_key_limit("t1", 25.0, "weekly")
        client.update_key_limit(KEY_HASH, None, None)
        client.activity(api_key_hash="t1", day=date(2026, 11, 1))
        client.activity()
        assert client.workspace_budget("team", "daily") is None
        client.set_workspace_budget("team", "monthly", 50.0)
        client.set_workspace_budget(team, "lifetime", 500.0)
        client.workspace_budgets("team")
    finally:
        client.close()
    for key_hash, body in fake.patches:
        assert request_problems("PATCH", f"/keys/{key_hash}", body) == []
    assert [b for _, _, b in fake.budget_puts] == [{"limit_usd": 50.0}, {"limit_usd": 500.0}]
    for where, interval, body in fake.budget_puts:
        assert request_problems("PUT", f"/workspaces/{where}/budgets/{interval}", body) == []
    problems = [p for m, path, q in fake.queries for p in query_problems(m, path, q)]
    assert problems == []
    asked = {(m, endpoint_for(m, path)) for m, path, _ in fake.queries}
    assert {
        ("GET", "GET /workspaces"),
        ("GET", "GET /workspaces/{id}/budgets/{interval}"),
        ("PUT", "PUT /workspaces/{id}/budgets/{interval}"),
        ("GET", "GET /workspaces/{id}/budgets"),
    } <= asked


# -- every respx fixture body, as served -------------------------------------------------------


def respx_modules() -> list[str]:
    found = []
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        if path.name == Path(__file__).name:
            continue
        if re.search(r"^import respx|^from respx", path.read_text(), re.MULTILINE):
            found.append(str(path.relative_to(ROOT)))
    return found


def record_respx(out: str, modules: list[str]) -> int:
    """Run `modules` under pytest with every response recorded (child process)."""
    original = httpx.Client.send
    records: list[dict[str, Any]] = []

    def send(self: httpx.Client, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        response = original(self, request, **kwargs)
        response.read()
        test = os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0]
        records.append(
            {
                "test": test,
                "method": request.method,
                "path": request.url.path,
                "request": request.content.decode(errors="replace"),
                "status": response.status_code,
                "content_type": response.headers.get("content-type", ""),
                "body": response.text,
            }
        )
        return response

    httpx.Client.send = send  # type: ignore[method-assign]
    try:
        code = pytest.main(["-q", "-p", "no:cacheprovider", "-p", "no:randomly", *modules])
    finally:
        httpx.Client.send = original  # type: ignore[method-assign]
        Path(out).write_text(json.dumps(records))
    return int(code)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("respx") / "served.json"
    code = (
        "import sys; from tests.integration.test_provider_contract import record_respx; "
        f"sys.exit(record_respx({str(out)!r}, sys.argv[1:]))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    run = subprocess.run(
        [sys.executable, "-c", code, *respx_modules()],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    records: list[dict[str, Any]] = json.loads(out.read_text()) if out.exists() else []
    assert records, run.stdout[-3000:] + run.stderr[-3000:]
    return records


def respx_problems(records: list[dict[str, Any]], module: str) -> list[str]:
    problems = []
    for r in records:
        test = r["test"].split("[")[0]
        if not test.startswith(module + "::") or test in DELIBERATE:
            continue
        where = f"{test}: {r['method']} {r['path']} -> {r['status']}"
        try:
            body = json.loads(r["body"])
        except ValueError:
            if r["status"] < 500:
                problems.append(f"{where}: not JSON ({r['content_type'] or 'no type'})")
            continue
        problems += [
            f"{where}: {p}" for p in body_problems(r["method"], r["path"], r["status"], body)
        ]
        if r["method"] in ("PATCH", "PUT") and r["request"]:
            problems += [
                f"{where}: {p}"
                for p in request_problems(r["method"], r["path"], json.loads(r["request"]))
            ]
    return problems


@pytest.mark.parametrize(
    "module",
    [
        pytest.param(m, marks=pytest.mark.xfail(reason=KNOWN_GAPS[m], strict=True))
        if m in KNOWN_GAPS
        else m
        for m in respx_modules()
    ],
)
def test_every_respx_fixture_body_is_the_spec_s(served: list[dict[str, Any]], module: str) -> None:
    mine = [r for r in served if r["test"].startswith(module + "::")]
    assert mine, f"{module}: no response recorded"
    assert respx_problems(served, module) == []


def test_the_respx_modules_include_the_client_tests() -> None:
    modules = respx_modules()
    assert "tests/integration/test_openrouter_http.py" in modules
    assert "tests/integration/test_provider_identity.py" in modules
