"""The PBX API keeps its contract: every request body is in the published schema, every error (unknown
paths and oversized forms included) is the JSON error body, and field errors are in English whatever the
server's or the caller's language."""

from __future__ import annotations

import uuid

import pytest
from pbx_api_fixtures import *  # noqa: F403  (fixtures)


@pytest.fixture
def schema(client) -> dict:
    response = client.get("/api/pbx/v1/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def _operation(schema: dict, suffix: str, method: str) -> dict:
    [path] = [p for p in schema["paths"] if p.endswith(suffix)]
    return schema["paths"][path][method]


@pytest.mark.django_db
@pytest.mark.parametrize(("suffix", "method"), [("/lines", "put"), ("/route", "post"), ("/events", "post")])
def test_every_pbx_request_body_is_in_the_served_schema(schema, suffix, method):
    body = _operation(schema, suffix, method)["requestBody"]
    assert "application/json" in body["content"]
    assert body["content"]["application/json"]["schema"]


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/pbx/v1/nothing-here", "/api/pbx/v1/connections/abc/unknown",
                                  "/api/pbx/v2/connections/abc/events"])
def test_unknown_pbx_paths_answer_the_json_error_body(client, path):
    response = client.post(path, data=b"{}", content_type="application/json")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"] == "not_found"


@pytest.mark.django_db
def test_field_errors_are_in_english_even_for_a_russian_speaking_caller(tenant, settings):
    assert settings.LANGUAGE_CODE == "ru"  # the server's own default
    sent = tenant.sim.send_events({"event_id": "e1", "type": "call.started"},
                                  headers={"Accept-Language": "ru-RU,ru;q=0.9"})

    assert sent.response.status == 400
    messages = [m for field in sent.response.json()["fields"].values() for m in field]
    assert "This field is required." in messages
    assert not any(ch in "абвгдеёжзийклмнопрстуфхцчшщъыьэюя" for m in messages for ch in m.lower())


@pytest.mark.django_db
def test_a_multipart_upload_with_too_many_fields_is_the_json_error_body(tenant, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    boundary = f"b-{uuid.uuid4().hex}"
    parts = "".join(f'--{boundary}\r\nContent-Disposition: form-data; name="f{n}"\r\n\r\nx\r\n' for n in range(20))
    body = (parts + f"--{boundary}--\r\n").encode()

    sent = tenant.sim.request("POST", "calls/call-1/recording", body,
                              content_type=f"multipart/form-data; boundary={boundary}")

    assert sent.response.status == 400
    assert sent.response.headers["Content-Type"] == "application/json"
    assert sent.response.json()["error"] == "invalid_body"
