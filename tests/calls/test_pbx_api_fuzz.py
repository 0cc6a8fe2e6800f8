"""Schemathesis against the served PBX API schema, each request signed like a PBX (issue 9, item 6): a
small, bounded run of schema-conforming and schema-violating requests on every operation, and not one
server error. The generated signature headers are replaced by real ones (``calls.connections.signing``
over the exact bytes sent), so the requests get past authentication into validation and storage.

Deterministic (``derandomize``): CI runs the same few hundred requests each time; the counts per
operation are printed (``-s``).
"""

from __future__ import annotations

import base64
import json
import uuid
from collections import Counter
from typing import Any

import hypothesis
import pytest
import schemathesis
from django.test import Client
from hypothesis import HealthCheck, Phase
from pbx_api_fixtures import make_tenant
from schemathesis import GenerationMode
from schemathesis.core import NOT_SET

from calls.connections import signing

EXAMPLES_PER_OPERATION_AND_MODE = 50
_SIGNATURE_HEADERS = {"webhook-id", "webhook-timestamp", "webhook-signature", "content-type", "content-length"}


def _body_bytes(case: Any) -> tuple[bytes, str]:
    """The generated body as the bytes to sign and send, and their Content-Type."""
    media_type = case.media_type or "application/json"
    body = case.body
    if body is NOT_SET:
        return b"", media_type
    if media_type == "multipart/form-data":
        boundary = f"fuzz-{uuid.uuid4().hex}"
        parts = b""
        for name, value in (body or {}).items() if isinstance(body, dict) else []:
            data = value if isinstance(value, bytes) else str(value).encode()
            parts += (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{name}.bin"\r\n'
                      "Content-Type: application/octet-stream\r\n\r\n").encode() + data + b"\r\n"
        return parts + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"
    if isinstance(body, bytes):
        return body, media_type
    if "json" in media_type:
        return json.dumps(body).encode(), media_type
    return str(body).encode(), media_type


def _header_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


@pytest.fixture
def served_schema(client) -> schemathesis.schemas.BaseSchema:
    response = client.get("/api/pbx/v1/schema/", {"format": "json"})
    assert response.status_code == 200
    return schemathesis.openapi.from_dict(response.json())


@pytest.mark.django_db(transaction=True)
def test_signed_fuzzing_of_the_served_schema_finds_no_server_error(served_schema, installed_portal, settings,
                                                                    tmp_path):
    settings.RECORDINGS_DIR = tmp_path
    client = Client(raise_request_exception=False)
    tenant = make_tenant(client, portal=installed_portal.portal,
                         originate_url="https://pbx.fuzz.example/originate", recording_hosts=["pbx.fuzz.example"])
    key = signing.decode_secret(tenant.secret)
    sent: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    server_errors: list[str] = []

    def send(case: Any) -> None:
        body, content_type = _body_bytes(case)
        headers = {k: _header_value(v) for k, v in (case.headers or {}).items() if k.lower() not in _SIGNATURE_HEADERS}
        headers.update(signing.sign_headers([key], body))
        response = client.generic(case.method, case.formatted_path, data=body, content_type=content_type,
                                  headers=headers, QUERY_STRING="&".join(f"{k}={v}" for k, v in (case.query or {}).items()))
        sent[f"{case.method} {case.path}"] += 1
        statuses[response.status_code] += 1
        if response.status_code >= 500:
            server_errors.append(f"{case.method} {case.formatted_path} {response.status_code}: "
                                 f"{base64.b64encode(body[:300]).decode()}")

    operations = [result.ok() for result in served_schema.get_all_operations()]
    assert {op.path.rsplit("/", 1)[-1] for op in operations} >= {"events", "recording", "lines", "route"}
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(mode, path_parameters={"connection_id": tenant.connection.public_id})

            @hypothesis.settings(max_examples=EXAMPLES_PER_OPERATION_AND_MODE, deadline=None, database=None,
                                 derandomize=True, phases=[Phase.explicit, Phase.generate],
                                 suppress_health_check=list(HealthCheck))
            @hypothesis.given(case=strategy)
            def run(case: Any) -> None:
                send(case)

            run()

    total = sum(sent.values())
    print(f"\nschemathesis: {total} signed requests, statuses {dict(sorted(statuses.items()))}, "
          f"per operation {dict(sent)}, server errors {len(server_errors)}")
    assert total >= 200
    assert statuses[401] < total / 10, "the signatures must get the requests past authentication"
    assert server_errors == []
