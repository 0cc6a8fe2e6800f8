"""Structured logs: one JSON object per line with the ids of the work in hand, and no token or secret in
any line during an install, a call and a token refresh."""

from __future__ import annotations

import io
import json
import logging
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "calls"))

from call_scenario_fixtures import *  # noqa: F403  (fixture: recordings)
from call_scenario_fixtures import drive, make_phone_portal

import logcontext
from b24client.redact import RedactingFilter
from ops.logs.formatting import JsonFormatter
from portals.models import PortalCredential


@pytest.fixture
def json_log():
    """The production handler set-up (JSON formatter + redacting filter) on the root logger, at DEBUG."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield buffer
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def lines(buffer: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


def test_every_line_is_json_with_the_bound_ids():
    logcontext.clear()
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("tests.ops.logs")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        with logcontext.bound(portal_id=7, call_id="5b0c-uuid", pbx_call_id="pbx-42"):
            log.info("registered %s", "in Bitrix24", extra={"b24_method": "telephony.externalcall.register"})
        log.info("outside")
    finally:
        log.removeHandler(handler)
    first, second = lines(buffer)
    assert first["message"] == "registered in Bitrix24" and first["level"] == "INFO"
    assert (first["portal_id"], first["call_id"], first["pbx_call_id"]) == (7, "5b0c-uuid", "pbx-42")
    assert first["b24_method"] == "telephony.externalcall.register" and first["time"]
    assert "portal_id" not in second  # the block's ids do not outlive it


def test_no_token_or_secret_reaches_a_log_line_in_install_call_and_refresh(db, json_log, sandbox, client, recordings,
                                                                          settings):
    settings.RECORDINGS_ALLOW_PRIVATE_HOSTS = True
    settings.RECORDINGS_ALLOW_HTTP = True
    phone = make_phone_portal(sandbox, client, recordings)  # install through the installer page
    secrets = {settings.BITRIX24_CLIENT_SECRET, phone.secret, phone.secret.removeprefix("whsec_"),
               phone.portal.application_token}
    credential = PortalCredential.objects.get(portal=phone.portal)
    secrets |= {credential.access_token, credential.refresh_token}

    phone.play(phone.scenario("ring_group_second_answers"))
    sandbox.clock.advance(sandbox.access_lifetime + 60)  # the next Bitrix24 request refreshes the tokens
    drive()
    credential.refresh_from_db()
    assert credential.refreshed_count >= 1, "the flow did not refresh the tokens"
    secrets |= {credential.access_token, credential.refresh_token}

    # Code that carelessly logs a secret, in the message or in an extra field, is cleaned too.
    careless = logging.getLogger("tests.ops.careless")
    careless.warning("retrying with %s", {"access_token": credential.access_token})
    careless.info("payload", extra={"auth": {"refresh_token": credential.refresh_token}})

    text = json_log.getvalue()
    records = lines(json_log)
    assert len(records) > 10
    call = phone.call(phone.scenario("ring_group_second_answers").call_id)
    # The register goes in the batch its own sync sends (with the line add and the card).
    register = next(r for r in records if r["message"].startswith("bitrix24 batch") and r.get("call_id") == str(call.uuid))
    assert (register["portal_id"], register["call_id"], register["pbx_call_id"]) == (
        phone.portal.pk, str(call.uuid), call.pbx_call_id)
    assert any(r["message"] == "bitrix24 token refresh: ok" for r in records)
    secrets.discard("")
    leaked = sorted(s for s in secrets if s in text)
    assert not leaked, f"{len(leaked)} secret(s) reached the log"
    assert "[REDACTED]" in text
