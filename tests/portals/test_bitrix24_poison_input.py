"""Poison input from the Bitrix24 side (issue 9, item 6): NUL in a form-encoded PHP-array event, the
installer's or the app page's POST is a 400 with nothing stored, never a 500 (PostgreSQL refuses NUL)."""

from __future__ import annotations

import time
from urllib.parse import quote

import pytest

from portals.models import Bitrix24Event, Portal


def _event_body(portal, *, extra: str = "", event: str = "ONCRMLEADADD", member_id: str | None = None) -> bytes:
    member = member_id if member_id is not None else quote(portal.member_id)
    body = (
        f"event={event}&event_handler_id=7&data[FIELDS][ID]=1&ts={int(time.time())}"
        f"&auth[member_id]={member}&auth[domain]={quote(portal.domain)}"
        f"&auth[application_token]={quote(portal.application_token)}"
    )
    return (body + (f"&{extra}" if extra else "")).encode()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("extra", "event", "member_id"),
    [
        ("data[FIELDS][TITLE]=a%00b", "ONCRMLEADADD", None),
        ("data[%00]=1", "ONCRMLEADADD", None),
        ("", "ONCRM%00LEADADD", None),
        ("", "ONCRMLEADADD", "member%00"),
        ("data[PHONE_NUMBER]=%2B7495%00", "ONEXTERNALCALLSTART", None),
        # Invalid UTF-8 (an encoded surrogate) and a decoded one as the body's own bytes.
        ("data[FIELDS][TITLE]=%ED%A0%80", "ONCRMLEADADD", None),
    ],
    ids=["nul-value", "nul-key", "nul-event", "nul-member-id", "nul-telephony", "surrogate-escape"],
)
def test_a_bitrix24_event_with_nul_is_a_400_and_stores_nothing(installed_portal, post_event, extra, event,
                                                                 member_id):
    response = post_event(_event_body(installed_portal.portal, extra=extra, event=event, member_id=member_id))

    assert response.status_code == 400, response.content
    assert not Bitrix24Event.objects.exists()


@pytest.mark.django_db
def test_a_bitrix24_event_with_raw_surrogate_bytes_is_a_400(installed_portal, post_event):
    body = _event_body(installed_portal.portal) + b"&data[FIELDS][TITLE]=\xed\xa0\x80"

    response = post_event(body)

    assert response.status_code == 400
    assert not Bitrix24Event.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/bitrix24/install/", "/bitrix24/app/"])
@pytest.mark.parametrize("field", ["member_id", "AUTH_ID", "DOMAIN"])
def test_an_iframe_post_with_nul_is_a_400_and_creates_nothing(client, path, field):
    fields = {"DOMAIN": "nul.bitrix24.test", "PROTOCOL": "1", "LANG": "en", "APP_SID": "x",
              "AUTH_ID": "token", "AUTH_EXPIRES": "3600", "REFRESH_ID": "refresh", "member_id": "m-1"}
    fields[field] += "\x00"

    response = client.post(path, fields, secure=True, headers={"host": "app.test"})

    assert response.status_code == 400
    assert not Portal.objects.exists()
