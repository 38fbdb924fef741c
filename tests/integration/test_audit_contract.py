"""The price list the audit reads, as OpenRouter's OpenAPI document gives it: the fake's
answers to GET /models and GET /models/{author}/{slug}/endpoints hold the spec's required
fields and types (tests/spec/openrouter_required.json), nested objects included, and the
client reads them without a key."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fake_openrouter import AUDIT_PRICES, MANAGEMENT_KEY, FakeOpenRouter
from tests.integration.test_provider_contract import ENDPOINTS, error_problems, fields_problems
from watchdog.core.audit import Price
from watchdog.providers.openrouter import OpenRouterProvider

MODELS = ENDPOINTS["GET /models"]
ENDPOINT_LIST = ENDPOINTS["GET /models/{author}/{slug}/endpoints"]


@pytest.fixture
def fake() -> Iterator[FakeOpenRouter]:
    server = FakeOpenRouter().start()
    server.audit_account()
    yield server
    server.stop()


def models_problems(body: Any) -> list[str]:
    envelope = MODELS["envelope"]
    if not isinstance(body, dict):
        return ["GET /models: not an object"]
    problems = [
        f"GET /models: required '{n}' missing" for n in envelope["required"] if n not in body
    ]
    problems += fields_problems("GET /models", body, {}, envelope["fields"])
    links = body.get("links")
    problems += fields_problems("GET /models links", links, envelope["links"]["required"], {})
    for index, item in enumerate(body.get("data") or []):
        where = f"GET /models [{index}]"
        problems += fields_problems(where, item, MODELS["required"], MODELS["optional"])
        pricing = MODELS["pricing"]
        problems += fields_problems(
            f"{where} pricing", item.get("pricing"), pricing["required"], pricing["optional"]
        )
    return problems


def endpoints_problems(body: Any) -> list[str]:
    name = "GET /models/{author}/{slug}/endpoints"
    if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
        return [f"{name}: 'data' is not an object"]
    data = body["data"]
    problems = fields_problems(name, data, ENDPOINT_LIST["required"], ENDPOINT_LIST["optional"])
    spec, pricing = ENDPOINT_LIST["endpoints"], ENDPOINT_LIST["pricing"]
    for index, item in enumerate(data.get("endpoints") or []):
        where = f"{name} endpoints[{index}]"
        problems += fields_problems(where, item, spec["required"], spec["optional"])
        problems += fields_problems(
            f"{where} pricing", item.get("pricing"), pricing["required"], pricing["optional"]
        )
    return problems


def test_the_spec_data_for_the_price_list_says_where_it_comes_from() -> None:
    assert MODELS["where"] == "#/components/schemas/Model"
    assert {"prompt", "completion"} == set(MODELS["pricing"]["required"])
    assert "input_cache_read" in MODELS["pricing"]["optional"]
    assert ENDPOINT_LIST["endpoints"]["required"]["provider_name"] == ["string"]
    assert set(ENDPOINT_LIST["pricing"]["required"]) == {"prompt", "completion"}


def test_the_checker_refuses_what_the_spec_refuses() -> None:
    assert models_problems({"data": [{"id": "a/b"}], "total_count": 1, "links": {"next": None}})
    assert models_problems({"data": []}) == [
        "GET /models: required 'total_count' missing",
        "GET /models: required 'links' missing",
        "GET /models links: not an object",
    ]
    assert endpoints_problems({"data": {"endpoints": [{"pricing": {"prompt": 1}}]}})


def test_every_price_list_answer_of_the_fake_is_the_spec_s(fake: FakeOpenRouter) -> None:
    problems: list[str] = []
    for query in ("", "?output_modalities=all", "?offset=0&limit=2", "?offset=2&limit=2"):
        got = httpx.get(f"{fake.base_url}/models{query}")
        assert got.status_code == 200
        problems += models_problems(got.json())
    for model in AUDIT_PRICES:
        got = httpx.get(f"{fake.base_url}/models/{model}/endpoints")
        assert got.status_code == 200
        problems += endpoints_problems(got.json())
    missing = httpx.get(f"{fake.base_url}/models/no/such-model/endpoints")
    assert missing.status_code == 404 and error_problems(missing.json()) == []
    bad = httpx.get(f"{fake.base_url}/models?offset=-1&limit=5")
    assert bad.status_code == 400 and error_problems(bad.json()) == []
    assert problems == []


def test_the_fake_pages_the_list_only_when_asked(fake: FakeOpenRouter) -> None:
    whole = httpx.get(f"{fake.base_url}/models").json()
    assert len(whole["data"]) == whole["total_count"] == len(AUDIT_PRICES)
    assert whole["links"]["next"] is None
    page = httpx.get(f"{fake.base_url}/models?offset=0&limit=3").json()
    assert len(page["data"]) == 3 and page["links"]["next"] == "/api/v1/models?offset=3&limit=3"


def test_the_client_reads_the_price_list_without_a_key(fake: FakeOpenRouter) -> None:
    client = OpenRouterProvider(fake.base_url, None, MANAGEMENT_KEY, attempts=1)
    try:
        listed = client.list_models()
        endpoints = client.model_endpoints("anthropic/claude-sonnet-4")
        unknown = client.model_endpoints("no/such-model")
    finally:
        client.close()
    assert listed["openai/gpt-4.1"] == pytest.approx(Price(2e-6, 8e-6, 0.5e-6))
    assert endpoints is not None
    assert {e.provider for e in endpoints} == {"Anthropic", "Amazon Bedrock", "Google Vertex"}
    assert unknown is None
    public = [(path, headers) for _, path, headers in fake.requests if "/models" in path]
    assert len(public) == 3
    assert all("authorization" not in {k.lower() for k in headers} for _, headers in public)
    queries = [q for _, path, q in fake.queries if path.endswith("/models")]
    assert queries == [{"output_modalities": ["all"]}]


def test_the_client_follows_the_list_s_pages(fake: FakeOpenRouter) -> None:
    """Should the list come in pages (links.next), every page is read."""
    original = fake._models

    def paged(query: dict[str, list[str]]) -> tuple[int, Any]:
        if "limit" not in query:
            query = {**query, "offset": ["0"], "limit": ["2"]}
        return original(query)

    fake._models = paged  # type: ignore[method-assign]
    client = OpenRouterProvider(fake.base_url, None, MANAGEMENT_KEY, attempts=1)
    try:
        listed = client.list_models()
    finally:
        client.close()
    assert set(listed) == set(AUDIT_PRICES)
    offsets = [q.get("offset") for _, path, q in fake.queries if path.endswith("/models")]
    assert offsets == [None, ["2"]]
