"""The published OpenAPI schema of the PBX API."""

from __future__ import annotations

import pytest
import yaml
from drf_spectacular.drainage import GENERATOR_STATS, reset_generator_stats
from drf_spectacular.validation import validate_schema

from calls.pbx_api.events import EVENT_TYPES

SCHEMA_URL = "/api/pbx/v1/schema/"


@pytest.fixture
def schema(client) -> dict:
    response = client.get(SCHEMA_URL, HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def test_schema_is_served_and_valid_openapi(schema):
    validate_schema(schema)  # raises on an invalid document
    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"] == "PBX API"


def test_schema_is_also_served_as_yaml_by_default(client):
    response = client.get(SCHEMA_URL)
    assert response.status_code == 200
    assert yaml.safe_load(response.content)["paths"]


def test_schema_covers_exactly_the_public_pbx_endpoints(schema):
    assert set(schema["paths"]) == {
        "/api/pbx/v1/connections/{connection_id}/events",
        "/api/pbx/v1/connections/{connection_id}/calls/{call_id}/recording",
        "/api/pbx/v1/connections/{connection_id}/lines",
        "/api/pbx/v1/connections/{connection_id}/route",
    }


def test_events_body_is_one_event_or_an_array_of_up_to_100(schema):
    body = schema["paths"]["/api/pbx/v1/connections/{connection_id}/events"]["post"]["requestBody"]
    one_of = body["content"]["application/json"]["schema"]["oneOf"]
    assert one_of[0] == {"$ref": "#/components/schemas/PbxEvent"}
    assert one_of[1]["type"] == "array"
    assert one_of[1]["maxItems"] == 100


def test_every_event_type_is_documented_with_a_discriminator(schema):
    event = schema["components"]["schemas"]["PbxEvent"]
    assert event["discriminator"]["propertyName"] == "type"
    assert set(event["discriminator"]["mapping"]) == set(EVENT_TYPES)
    started = schema["components"]["schemas"]["CallStarted"]
    assert {"event_id", "call_id", "occurred_at", "direction", "client_number"} <= set(started["required"])
    assert "no_funds" in schema["components"]["schemas"]["DispositionEnum"]["enum"]
    assert schema["components"]["schemas"]["CallEnded"]["properties"]["disposition"] == {
        "$ref": "#/components/schemas/DispositionEnum"
    }


def test_schema_generation_raises_no_warnings_or_errors(client):
    reset_generator_stats()
    assert client.get(SCHEMA_URL).status_code == 200
    assert dict(GENERATOR_STATS._warn_cache) == {}
    assert dict(GENERATOR_STATS._error_cache) == {}


def test_signature_headers_and_error_responses_are_documented(schema):
    operation = schema["paths"]["/api/pbx/v1/connections/{connection_id}/events"]["post"]
    headers = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
    assert headers == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert {"202", "400", "401", "404", "409", "413"} <= set(operation["responses"])
    assert set(schema["components"]["schemas"]["Error"]["required"]) == {"error", "detail", "fields"}


def test_recording_upload_documents_raw_audio_and_multipart(schema):
    operation = schema["paths"]["/api/pbx/v1/connections/{connection_id}/calls/{call_id}/recording"]["post"]
    assert set(operation["requestBody"]["content"]) == {"audio/*", "multipart/form-data"}


def test_docs_page_is_served(client):
    response = client.get("/api/pbx/v1/docs/")
    assert response.status_code == 200
    assert b"/api/pbx/v1/schema/" in response.content
