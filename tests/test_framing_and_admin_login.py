"""Clickjacking: only the pages Bitrix24 frames may be framed, and only by the portal; the admin has
login throttling and can live on its own path and host."""

from __future__ import annotations

import importlib

import pytest
from django.contrib.auth import get_user_model
from django.urls import clear_url_caches

PASSWORD = "correct horse battery staple"


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/bitrix24/oauth/start/", "/admin/login/", "/api/pbx/v1/docs/", "/console/login/",
                                  "/bitrix24/oauth/start/?portal=nowhere"])
def test_pages_that_are_not_for_bitrix24_refuse_to_be_framed(client, path):
    response = client.get(path, secure=True)

    assert response.status_code in (200, 400)
    assert response["X-Frame-Options"] == "DENY"


@pytest.mark.django_db
def test_the_pages_bitrix24_frames_may_be_framed_by_that_portal_only(sandbox, installed_portal):
    installer = installed_portal.install_response
    app_page = sandbox.open_app(installed_portal.b24, 1)

    for response in (installer, app_page):
        assert response.status_code == 200
        assert "X-Frame-Options" not in response  # it cannot name the portal; frame-ancestors does
        assert response["Content-Security-Policy"].startswith("frame-ancestors 'self' https://acme.bitrix24.test")


@pytest.fixture
def admin_user(db):
    return get_user_model().objects.create_superuser("vendor-admin", "admin@example.com", PASSWORD)


def _login(client, password: str, ip: str = "198.51.100.7", **headers):
    return client.post("/admin/login/?next=/admin/", {"username": "vendor-admin", "password": password},
                       REMOTE_ADDR=ip, secure=True, headers=headers)


def test_the_admin_login_locks_an_address_out_after_five_wrong_passwords(admin_user, client):
    for _ in range(4):
        assert _login(client, "guess").status_code == 200  # the form again, "please enter a correct..."
    assert _login(client, "guess").status_code == 429  # the fifth wrong password locks the address out

    locked = _login(client, PASSWORD)  # even the right password: the address is locked out

    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session
    # Another address is not affected.
    other = _login(client, PASSWORD, ip="198.51.100.8")
    assert other.status_code == 302 and other["Location"] == "/admin/"


def test_behind_a_trusted_proxy_the_forwarded_client_address_is_what_gets_locked(admin_user, client, settings):
    settings.TRUSTED_PROXY_HOPS = 1
    proxy = "10.0.0.2"
    for _ in range(5):
        # What the client itself puts in X-Forwarded-For (the first entry) is not believed.
        _login(client, "guess", ip=proxy, x_forwarded_for=f"203.0.113.{_}, 198.51.100.9")

    assert _login(client, PASSWORD, ip=proxy, x_forwarded_for="198.51.100.9").status_code == 429
    ok = _login(client, PASSWORD, ip=proxy, x_forwarded_for="198.51.100.10")
    assert ok.status_code == 302  # the proxy's other clients still get in


@pytest.fixture
def admin_at(settings):
    """Re-read the URLconf with the admin on another path (ADMIN_URL is read when urls are loaded)."""
    import telephony_app.urls

    def move(path: str) -> None:
        settings.ADMIN_URL = path
        importlib.reload(telephony_app.urls)
        clear_url_caches()

    yield move
    settings.ADMIN_URL = "admin/"
    importlib.reload(telephony_app.urls)
    clear_url_caches()


def test_the_admin_can_live_on_its_own_path(admin_user, client, admin_at):
    admin_at("ops-7f3c/")

    assert client.get("/admin/login/", secure=True).status_code == 404
    assert client.get("/ops-7f3c/login/", secure=True).status_code == 200


def test_with_an_admin_host_the_admin_is_a_404_on_every_other_host(admin_user, client, settings):
    settings.ADMIN_HOST = "admin.app.test"
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "admin.app.test"]

    assert client.get("/admin/login/", secure=True, headers={"host": "app.test"}).status_code == 404
    assert client.get("/admin/login/", secure=True, headers={"host": "admin.app.test"}).status_code == 200
    assert client.get("/bitrix24/oauth/start/", secure=True, headers={"host": "app.test"}).status_code == 200
