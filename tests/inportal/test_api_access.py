"""Who may call the in-portal API: a session of this portal for reads, a confirmed admin for writes."""

from __future__ import annotations

import time

import pytest
from inportal_fixtures import *  # noqa: F403  (fixtures)
from inportal_fixtures import FrameApi, open_page, viewer_checks

from calls.connections.services import create_connection
from calls.models import PbxConnection
from inportal.models import WizardState
from inportal.session import issue_session

pytestmark = pytest.mark.django_db

# Every endpoint, with a body that would be valid for a write. ``{cid}``: a connection of the first portal.
READS = [
    ("GET", "status"),
    ("GET", "wizard"),
    ("GET", "connections"),
    ("GET", "connections/{cid}"),
    ("GET", "connections/{cid}/check"),
]
WRITES = [
    ("POST", "repairs/resync_users", None),
    ("POST", "wizard", {"step": "lines"}),
    ("POST", "connections", {"name": "Another PBX"}),
    ("PATCH", "connections/{cid}", {"name": "Renamed"}),
    ("POST", "connections/{cid}/rotate", {"overlap_hours": 1}),
    ("POST", "connections/{cid}/test", None),
]
ENDPOINTS = [(m, p, None) for m, p in READS] + WRITES


@pytest.fixture
def connection(installed_portal) -> PbxConnection:
    return create_connection(portal=installed_portal.portal, name="Main PBX").connection


def _path(path: str, connection: PbxConnection) -> str:
    return path.format(cid=connection.public_id)


def _state(portal) -> tuple:
    """Everything an endpoint could change, to prove a refused request changed nothing."""
    connections = sorted(
        (c.public_id, c.name, c.enabled, c.is_default, c.originate_url, c.secrets.count())
        for c in PbxConnection.objects.filter(portal=portal)
    )
    wizard = list(WizardState.objects.filter(portal=portal).values_list("step", "done"))
    return connections, wizard


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
def test_no_session_forged_or_expired_sessions_are_refused(installed_portal, connection, method, path, body):
    portal = installed_portal.portal
    before = _state(portal)
    expired, _ = issue_session(portal_id=portal.pk, member_id=portal.member_id, user_id=1, is_admin=True, lang="en")
    valid, _ = issue_session(portal_id=portal.pk, member_id=portal.member_id, user_id=1, is_admin=True, lang="en")
    forged = valid[:-4] + ("AAAA" if not valid.endswith("AAAA") else "BBBB")
    cases = {"not_authenticated": None, "invalid_session": forged}
    for code, token in cases.items():
        response = FrameApi(token).request(method, _path(path, connection), body)
        assert response.status_code == 401, (code, response.content)
        assert response.json()["error"] == code
        assert "Bearer" in response["WWW-Authenticate"]
    with pytest.MonkeyPatch.context() as mp:
        real = time.time
        mp.setattr(time, "time", lambda: real() + 3601)
        response = FrameApi(expired).request(method, _path(path, connection), body)
    assert response.status_code == 401 and response.json()["error"] == "session_expired"
    assert _state(portal) == before


@pytest.mark.parametrize(("method", "path"), READS)
def test_reads_are_open_to_every_user_of_the_portal(sandbox, installed_portal, connection, method, path):
    page = open_page(sandbox, installed_portal.b24, user_id=2)  # Boris, not an admin

    response = FrameApi(page.token).request(method, _path(path, connection))

    assert response.status_code == 200, response.content


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
def test_a_non_admin_cannot_write_and_bitrix24_was_asked_with_their_token(sandbox, installed_portal, connection,
                                                                         method, path, body):
    b24 = installed_portal.b24
    page = open_page(sandbox, b24, user_id=2)
    before = _state(installed_portal.portal)
    asked_before = len(viewer_checks(b24))

    response = FrameApi(page.token, auth_id=page.auth_id).request(method, _path(path, connection), body)

    assert response.status_code == 403, response.content
    assert response.json()["error"] == "admin_required"
    checks = viewer_checks(b24)[asked_before:]
    assert [c["user_id"] for c in checks] == [2]  # user.admin asked with Boris's own token
    assert _state(installed_portal.portal) == before


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
def test_an_admin_session_without_a_current_auth_id_cannot_write(sandbox, installed_portal, connection,
                                                                 method, path, body):
    page = open_page(sandbox, installed_portal.b24, user_id=1)
    before = _state(installed_portal.portal)

    missing = FrameApi(page.token).request(method, _path(path, connection), body)
    sandbox.clock.advance(3601)  # the AUTH_ID the page had has expired (the session token has not)
    stale = FrameApi(page.token, auth_id=page.auth_id).request(method, _path(path, connection), body)

    assert (missing.status_code, missing.json()["error"]) == (401, "bitrix24_auth_required")
    assert (stale.status_code, stale.json()["error"]) == (401, "bitrix24_auth_expired")
    assert _state(installed_portal.portal) == before


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
def test_an_auth_id_of_another_user_or_portal_cannot_write(sandbox, installed_portal, other_portal, connection,
                                                           method, path, body):
    page = open_page(sandbox, installed_portal.b24, user_id=2)  # Boris's session ...
    admin_token = sandbox.issue_token(installed_portal.b24, 1)["access_token"]  # ... with the admin's AUTH_ID
    foreign = sandbox.issue_token(other_portal.b24, 1)["access_token"]
    before = _state(installed_portal.portal)

    borrowed = FrameApi(page.token, auth_id=admin_token).request(method, _path(path, connection), body)
    elsewhere = FrameApi(open_page(sandbox, installed_portal.b24, user_id=1).token,
                         auth_id=foreign).request(method, _path(path, connection), body)

    assert (borrowed.status_code, borrowed.json()["error"]) == (403, "bitrix24_auth_mismatch")
    assert (elsewhere.status_code, elsewhere.json()["error"]) == (403, "bitrix24_auth_refused")
    assert _state(installed_portal.portal) == before


@pytest.mark.parametrize(("method", "path", "body"), [e for e in ENDPOINTS if "{cid}" in e[1]])
def test_another_portals_session_cannot_reach_this_portals_connection(other_api, connection, method, path, body):
    before = _state(connection.portal)

    response = other_api.request(method, _path(path, connection), body)

    assert response.status_code == 404, response.content
    assert response.json()["error"] == "not_found"
    assert _state(connection.portal) == before


def test_another_portals_session_sees_only_its_own_data(other_api, installed_portal, connection):
    assert other_api.get("connections").json() == []
    listed = other_api.post("connections", {"name": "Theirs"})
    assert listed.status_code == 201
    assert list(PbxConnection.objects.filter(portal=installed_portal.portal).values_list("name", flat=True)) == [
        "Main PBX"]
    other_api.post("wizard", {"step": "lines"})
    assert not WizardState.objects.filter(portal=installed_portal.portal).exists()


def test_the_session_is_refreshed_with_a_fresh_auth_id(sandbox, installed_portal):
    page = open_page(sandbox, installed_portal.b24, user_id=2)
    sandbox.clock.advance(3000)
    fresh = sandbox.issue_token(installed_portal.b24, 2)["access_token"]

    response = FrameApi(page.token, auth_id=fresh).post("session")

    assert response.status_code == 200, response.content
    data = response.json()
    assert data["user"]["id"] == 2 and data["isAdmin"] is False and data["lang"] == "en"
    assert FrameApi(data["session"]).get("status").status_code == 200


def test_a_refresh_with_another_portals_auth_id_is_refused(sandbox, installed_portal, other_portal):
    page = open_page(sandbox, installed_portal.b24, user_id=1)
    foreign = sandbox.issue_token(other_portal.b24, 1)["access_token"]

    response = FrameApi(page.token, auth_id=foreign).post("session")

    assert (response.status_code, response.json()["error"]) == (403, "session_mismatch")


def test_a_refresh_without_a_valid_auth_id_is_refused(installed_portal):
    assert FrameApi(None).post("session").json()["error"] == "bitrix24_auth_required"
    response = FrameApi(None, auth_id="not-a-token").post("session")
    assert (response.status_code, response.json()["error"]) == (401, "bitrix24_auth_refused")
