"""Secrets never reach logs or the REST call log."""

from __future__ import annotations

import logging

from b24client import redact


def test_dicts_lose_secret_values_but_keep_identifying_fields():
    data = {"auth": {"access_token": "AT", "refresh_token": "RT", "member_id": "m1", "application_token": "APP",
                     "domain": "acme.bitrix24.com"},
            "AUTH_ID": "a", "REFRESH_ID": "r", "APPLICATION_TOKEN": "x", "client_secret": "s", "code": "c",
            "CODE": "app_code", "data": [{"CALL_ID": "c1", "password": "p"}]}

    out = redact.redact(data)

    assert out["auth"] == {"access_token": "[REDACTED]", "refresh_token": "[REDACTED]", "member_id": "m1",
                           "application_token": "[REDACTED]", "domain": "acme.bitrix24.com"}
    assert {out[k] for k in ("AUTH_ID", "REFRESH_ID", "APPLICATION_TOKEN", "client_secret", "code")} == {"[REDACTED]"}
    assert out["CODE"] == "app_code" and out["data"][0] == {"CALL_ID": "c1", "password": "[REDACTED]"}
    assert data["auth"]["access_token"] == "AT"  # input untouched


def test_rest_auth_string_is_redacted():
    assert redact.redact({"auth": "token", "ID": 1}) == {"auth": "[REDACTED]", "ID": 1}


def test_oauth_urls_and_webhook_urls_are_redacted():
    url = redact.redact_url("https://oauth.bitrix.info/oauth/token/?grant_type=refresh_token&client_id=app.1"
                            "&client_secret=SECRET&refresh_token=RT")
    assert "SECRET" not in url and "RT" not in url and "client_id=app.1" in url
    hook = redact.redact_url("https://acme.bitrix24.com/rest/1/8g9l071eismy9q2l/crm.deal.add")
    assert "8g9l071eismy9q2l" not in hook and hook.endswith("/crm.deal.add")


def test_free_text_with_form_bodies_and_json_is_redacted():
    text = ('posted event=X&auth%5Baccess_token%5D=AT1&auth%5Bmember_id%5D=m1 then '
            '{"refresh_token": "RT1", "status": "F"}')
    out = redact.redact_text(text)
    assert "AT1" not in out and "RT1" not in out and "m1" in out and '"status": "F"' in out


def test_logging_filter_redacts_formatted_messages_and_tracebacks(caplog):
    logger = logging.getLogger("test.redact")
    handler_filter = redact.RedactingFilter()
    caplog.handler.addFilter(handler_filter)
    try:
        logger.warning("refresh failed for %s", "https://oauth.bitrix.info/oauth/token/?client_secret=S3CR3T&x=1")
        try:
            raise RuntimeError("body was auth[access_token]=LEAKED")
        except RuntimeError:
            logger.exception("boom")
    finally:
        caplog.handler.removeFilter(handler_filter)

    assert "S3CR3T" not in caplog.text and "LEAKED" not in caplog.text
    assert "refresh failed" in caplog.text and "RuntimeError" in caplog.text


def test_passwords_inside_connection_urls_are_masked():
    text = "connect postgres://app:s3cr%2Ft@db:5432/x and redis://:r3d1s@cache:6379/1, not https://user@host/"
    assert redact.redact_text(text) == (
        "connect postgres://app:[REDACTED]@db:5432/x and redis://:[REDACTED]@cache:6379/1, not https://user@host/"
    )
