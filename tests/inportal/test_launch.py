"""The pages Bitrix24 frames: the app page and the installer land in one shell with a session."""

from __future__ import annotations

import pytest
from conftest import DjangoTransport, install_through_ui
from inportal_fixtures import boot_of, capture_frame_posts, open_page

from inportal.session import read_session
from portals.models import PortalCredential

pytestmark = pytest.mark.django_db


def test_the_app_page_is_the_shell_with_a_session_for_the_viewer(sandbox, installed_portal):
    page = open_page(sandbox, installed_portal.b24, user_id=1)

    html = page.response.content.decode()
    boot = page.boot
    assert '<html lang="en">' in html  # the sandbox portal's users speak English
    assert "/static/inportal/app.js" in html and "/static/inportal/app.css" in html
    assert boot["lang"] == "en" and boot["isAdmin"] is True
    assert boot["user"]["id"] == 1 and boot["user"]["name"]
    assert boot["portal"] == {"domain": "acme.bitrix24.test", "memberId": installed_portal.b24.member_id,
                              "status": "active"}
    assert boot["apiBase"] == "/bitrix24/app/api/v1/"
    assert boot["wizard"]["done"] is False and boot["mode"] == "wizard"
    assert boot["installFinished"] is True
    session = read_session(boot["session"])
    assert (session.portal_id, session.user_id, session.is_admin) == (installed_portal.portal.pk, 1, True)
    policy = page.response["Content-Security-Policy"]
    assert "frame-ancestors 'self' https://acme.bitrix24.test" in policy and "script-src 'self'" in policy
    assert not page.response.has_header("X-Frame-Options")
    assert not page.response.cookies
    # The page carries the viewer's session, never the app's own tokens.
    cred = PortalCredential.objects.get(portal=installed_portal.portal)
    assert cred.access_token not in html and cred.refresh_token not in html
    assert page.auth_id not in html


@pytest.mark.parametrize(("lang", "expected"), [("ru", "ru"), ("en", "en"), ("de", "en"), ("ua", "en")])
def test_bitrix24_lang_picks_russian_or_english(sandbox, installed_portal, lang, expected):
    installed_portal.b24.lang = lang
    page = open_page(sandbox, installed_portal.b24, user_id=2)

    assert page.boot["lang"] == expected
    assert f'<html lang="{expected}">' in page.response.content.decode()


def test_russian_page_title_is_translated(sandbox, installed_portal):
    installed_portal.b24.lang = "ru"
    html = open_page(sandbox, installed_portal.b24).response.content.decode()

    assert "<title>Коннектор АТС для Битрикс24</title>" in html  # noqa: RUF001


def test_a_non_admin_gets_the_app_not_the_wizard(sandbox, installed_portal):
    boot = open_page(sandbox, installed_portal.b24, user_id=2).boot  # Boris

    assert boot["isAdmin"] is False and boot["mode"] == "app"
    assert read_session(boot["session"]).is_admin is False


def test_a_forged_application_token_gets_no_session(sandbox, installed_portal):
    b24 = installed_portal.b24
    seen = capture_frame_posts(sandbox)
    sandbox.open_app(b24, user_id=2)
    url, body = seen[-1]
    forged = body.replace(b24.app.application_token.encode(), b"0" * 32)

    response = DjangoTransport()(url, forged, {})

    assert response.status_code == 403
    assert b"app-boot" not in response.content


def test_an_auth_id_of_another_portal_gets_no_session(sandbox, installed_portal, install_portal):
    other = install_portal("other.bitrix24.test").b24
    b24 = installed_portal.b24
    seen = capture_frame_posts(sandbox)
    sandbox.open_app(b24, user_id=1)
    url, body = seen[-1]
    foreign = sandbox.issue_token(other, 1)["access_token"]
    from urllib.parse import parse_qs, urlencode

    fields = {k: v[0] for k, v in parse_qs(body.decode()).items()}
    fields["AUTH_ID"] = foreign

    response = DjangoTransport()(url, urlencode(fields).encode(), {})

    assert response.status_code == 403
    assert b"app-boot" not in response.content


def test_the_installer_leads_the_admin_into_the_wizard(sandbox):
    b24 = sandbox.create_portal("fresh.bitrix24.test", lang="ru")

    installed = install_through_ui(sandbox, b24, finish=False)

    response = installed.install_response
    boot = boot_of(response)
    html = response.content.decode()
    assert boot["mode"] == "wizard" and boot["installFinished"] is False and boot["isAdmin"] is True
    assert boot["lang"] == "ru" and '<html lang="ru">' in html
    assert "frame-ancestors 'self' https://fresh.bitrix24.test" in response["Content-Security-Policy"]
    for raw in ("ONEXTERNALCALLSTART", "ONAPPUNINSTALL", "event.bind"):
        assert raw not in html


def test_the_wizard_is_resumed_until_finished_then_the_app_opens(sandbox, installed_portal):
    from inportal_fixtures import FrameApi

    page = open_page(sandbox, installed_portal.b24, user_id=1)
    api = FrameApi(page.token, auth_id=page.auth_id)
    assert api.post("wizard", {"step": "employees"}).status_code == 200

    again = open_page(sandbox, installed_portal.b24, user_id=1).boot
    assert again["mode"] == "wizard" and again["wizard"]["step"] == "employees"

    assert api.post("wizard", {"done": True}).json()["done"] is True
    assert open_page(sandbox, installed_portal.b24, user_id=1).boot["mode"] == "app"


def test_a_refused_page_says_why_in_the_viewers_language(client):
    response = client.post("/bitrix24/app/?LANG=ru&DOMAIN=acme.bitrix24.test&PROTOCOL=1",
                           {"member_id": "f" * 32, "AUTH_ID": "x"}, secure=True, headers={"host": "app.test"})

    assert response.status_code == 401
    assert "приложение ещё не установлено на этом Битрикс24" in response.content.decode()  # noqa: RUF001
    assert "frame-ancestors 'self' https://acme.bitrix24.test" in response["Content-Security-Policy"]
