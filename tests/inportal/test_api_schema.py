"""The in-portal API's own OpenAPI schema (apart from the PBX API's)."""

from __future__ import annotations

import pytest
from drf_spectacular.drainage import GENERATOR_STATS, reset_generator_stats
from drf_spectacular.validation import validate_schema

from inportal.api.urls import api_v1

SCHEMA_URL = "/bitrix24/app/api/v1/schema/"


@pytest.fixture
def schema(client) -> dict:
    reset_generator_stats()
    response = client.get(SCHEMA_URL, HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def test_schema_is_valid_openapi_for_this_api_only(schema):
    validate_schema(schema)
    assert schema["info"]["title"] == "In-portal app API"
    paths = set(schema["paths"])
    assert len(paths) == len(api_v1)
    assert all(p.startswith("/bitrix24/app/api/v1/") for p in paths)
    assert not any(p.startswith("/api/pbx/") for p in paths)


def test_schema_generation_has_no_warnings_or_errors(schema):
    assert not GENERATOR_STATS._warn_cache and not GENERATOR_STATS._error_cache, (
        GENERATOR_STATS._warn_cache, GENERATOR_STATS._error_cache)


def test_every_operation_documents_the_session_and_writes_the_admin_check(schema):
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if path.endswith("/session"):
                assert operation.get("security") in (None, [], [{}]), path  # AUTH_ID only
                continue
            assert {"frameSession": []} in operation["security"], (path, method)
            headers = {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}
            if method in ("post", "put", "patch", "delete"):
                assert "X-Bitrix24-Auth" in headers, (path, method)
                assert "403" in operation["responses"], (path, method)
