"""``POST /route`` answered from the cache: what a hit costs, and that nothing got weaker for it.

A hit takes the connection, its portal and its keys from process memory (checked against the shared
invalidation epoch), fetches the receipt and the cached answer in one cache round trip, and inserts
the ``RouteDecision``. These tests pin that cost, and that the shortcuts never serve something
stale: a rotated, revoked or disabled connection, a changed line, a forgotten number, a replayed
``webhook-id`` in either receipt store.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from click_to_call_fixtures import connect_pbx, line_routing
from django.core.cache import cache
from django.utils import timezone
from pbx_api_fixtures import make_tenant

from calls.connections import signing
from calls.connections.services import rotate_secret
from calls.models import (
    ConnectionSecret,
    ExtensionOverride,
    PbxConnection,
    PbxLine,
    PbxWebhookReceipt,
    RouteDecision,
)
from calls.routing.lookup import forget_number
from calls.settings.services import update_line_settings
from pbxsim.server import SimServer
from portals.models import Portal

LINE = "+74951234567"
OTHER_LINE = "+74957654321"
CLIENT = "+79165550123"
INTERNAL_CALLER = "205"  # an extension: routed without asking the CRM, so no lookup thread runs

RECEIPT_STORES = ["cache", "database"]


@pytest.fixture(autouse=True)
def _fresh_cache():
    # Portal and connection ids are reused between tests: cached answers must not leak.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def pbx_server():
    with SimServer() as server:
        yield server


def _answer(sent) -> tuple[int, dict]:
    return sent.response.status, sent.response.json()


def _fresh_shared_state() -> None:
    """Ids restart with every test database while the shared cache and this process's auth memory do
    not: an earlier test's entries for the same ids must not count against this one's queries."""
    from django.core.cache import cache

    cache.clear()  # also moves every auth-memory epoch, so no remembered connection survives


def _route(sim, client_number: str = CLIENT, line: str = LINE, **kwargs) -> tuple[int, dict]:
    return _answer(sim.route(client_number, line, **kwargs))


def _add_client(b24, phone: str = "8 (916) 555-01-23", owner: int = 2):
    return b24.crm.add_contact("Ivan", "Petrov", phones=[(phone, "WORK")], assigned_by_id=owner)


def _tables(queries: list[dict]) -> str:
    return "\n".join(q["sql"] for q in queries)


# --- what a hit costs ----------------------------------------------------------------------------


_TIMEOUT_GUARD = 2  # SET and RESET statement_timeout around a /route request (PostgreSQL only)


def _without_timeout_guard(queries: list[dict]) -> list[dict]:
    return [q for q in queries if "statement_timeout" not in q["sql"]]


@pytest.mark.usefixtures("transactional_db")
def test_cache_hit_is_one_insert_for_the_decision_and_no_read(
    installed_portal, pbx_server, client, settings, django_assert_max_num_queries
):
    settings.PBX_ROUTE_RECEIPTS = "cache"
    _fresh_shared_state()
    settings.PBX_AUTH_CACHE_SECONDS = 3600  # a loaded machine must not age the keys out between the two requests
    contact = _add_client(installed_portal.b24)
    pbx = connect_pbx(installed_portal.portal, pbx_server, client, lines=(LINE,))
    line_routing(pbx, LINE, default_extension="600")
    sim = pbx.simulator()
    first = _route(sim)
    # On PostgreSQL the request also sets and resets its own statement timeout (the hung-database guard).
    with django_assert_max_num_queries(1 + _TIMEOUT_GUARD) as captured:
        second = _route(sim, "8 916 555-01-23")
    assert first == second == (200, {"extension": "101", "user_id": 2, "reason": "crm_responsible",
                                     "crm_entity": {"type": "CONTACT", "id": contact.id}})
    queries = _without_timeout_guard(captured.captured_queries)
    assert len(queries) == 1
    assert queries[0]["sql"].startswith('INSERT INTO "calls_routedecision"')
    assert list(RouteDecision.objects.order_by("id").values_list("source", "user_id")) == [
        ("bitrix24", 2), ("cache", 2)]


@pytest.mark.usefixtures("transactional_db")
def test_with_receipts_in_the_database_a_hit_adds_only_the_receipt_read_and_insert(
    installed_portal, pbx_server, client, settings, django_assert_max_num_queries
):
    settings.PBX_ROUTE_RECEIPTS = "database"
    _fresh_shared_state()
    settings.PBX_AUTH_CACHE_SECONDS = 3600  # a loaded machine must not age the keys out between the two requests
    pbx = connect_pbx(installed_portal.portal, pbx_server, client, lines=(LINE,))
    line_routing(pbx, LINE, default_extension="600")
    sim = pbx.simulator()
    first = _route(sim)
    # receipt read, BEGIN, decision, receipt, COMMIT (where the backend logs BEGIN and COMMIT)
    with django_assert_max_num_queries(5 + _TIMEOUT_GUARD) as captured:
        second = _route(sim)
    assert first == second == (200, {"extension": "600", "user_id": None, "reason": "line_default",
                                     "crm_entity": None})
    assert len(_without_timeout_guard(captured.captured_queries)) <= 5
    sql = _tables(captured.captured_queries)
    for table in ("calls_pbxline", "calls_extensiondirectory", "calls_extensionoverride", "calls_pbxconnection"):
        assert table not in sql
    assert PbxWebhookReceipt.objects.count() == 2


# --- secrets and connection state: at once when saved, within the memory's age when updated -----


@pytest.fixture
def tenant_with_line(db, client):
    tenant = make_tenant(client)
    PbxLine.objects.create(connection=tenant.connection, number=LINE)
    line_routing_for(tenant.connection, default_extension="600")
    return tenant


@pytest.fixture
def later(monkeypatch):
    """Move the clock the authentication memory ages by: ``later(seconds)``."""
    from calls.pbx_api import authentication

    offset = 0.0
    real = authentication._monotonic

    def advance(seconds: float) -> None:
        nonlocal offset
        offset += seconds

    monkeypatch.setattr(authentication, "_monotonic", lambda: real() + offset)
    return advance


def line_routing_for(connection: PbxConnection, **fields):
    return set_line_routing(PbxLine.objects.get(connection=connection, number=LINE), **fields)


def set_line_routing(line: PbxLine, **fields):
    return update_line_settings(line.connection.portal_id, line.pk, fields)


def _internal(sim, **kwargs) -> tuple[int, dict]:
    return _route(sim, INTERNAL_CALLER, **kwargs)


def _set_enabled(connection: PbxConnection, enabled: bool) -> None:
    """The admin's way (a model save): applies to the next request in every process."""
    connection.enabled = enabled
    connection.save()


def test_revoked_secret_is_refused_and_the_new_one_accepted_on_the_next_route(tenant_with_line):
    tenant = tenant_with_line
    assert _internal(tenant.sim)[0] == 200
    new = rotate_secret(tenant.connection, overlap=timedelta(0)).secret
    assert _internal(tenant.sim, secrets=[tenant.secret])[0] == 401
    assert _internal(tenant.sim, secrets=[new]) == (200, {"extension": "600", "user_id": None,
                                                          "reason": "line_default", "crm_entity": None})


def test_rotation_overlap_ends_on_time_although_the_keys_are_remembered(tenant_with_line, monkeypatch):
    tenant = tenant_with_line
    new = rotate_secret(tenant.connection).secret
    assert _internal(tenant.sim, secrets=[tenant.secret])[0] == 200
    assert _internal(tenant.sim, secrets=[new])[0] == 200
    # A day later: nothing was saved meanwhile, the remembered old key has simply expired.
    from calls.pbx_api import authentication

    day_later = timezone.now() + timedelta(hours=24, seconds=1)
    monkeypatch.setattr(authentication.timezone, "now", lambda: day_later)
    assert _internal(tenant.sim, secrets=[tenant.secret])[0] == 401
    assert _internal(tenant.sim, secrets=[new])[0] == 200


def test_a_key_added_without_any_signal_is_accepted_at_once(tenant_with_line):
    """Another process issued it (or a script inserted it): no cached key matches, the database does."""
    tenant = tenant_with_line
    assert _internal(tenant.sim)[0] == 200
    key = b"k" * 32
    ConnectionSecret.objects.bulk_create(
        [ConnectionSecret(connection=tenant.connection, key=base64.b64encode(key).decode("ascii"))]
    )
    assert _internal(tenant.sim, secrets=[signing.encode_secret(key)])[0] == 200
    assert _internal(tenant.sim, secrets=[signing.encode_secret(b"w" * 32)])[0] == 401


def test_disabling_the_connection_refuses_the_next_route_and_enabling_lets_it_through(tenant_with_line):
    tenant = tenant_with_line
    assert _internal(tenant.sim)[0] == 200
    _set_enabled(tenant.connection, False)
    assert _internal(tenant.sim)[1]["error"] == "connection_disabled"
    _set_enabled(tenant.connection, True)
    assert _internal(tenant.sim)[0] == 200


def test_a_queryset_update_applies_within_the_memorys_age(tenant_with_line, settings, later):
    settings.PBX_AUTH_CACHE_SECONDS = 5
    tenant = tenant_with_line
    assert _internal(tenant.sim)[0] == 200
    PbxConnection.objects.filter(pk=tenant.connection.pk).update(enabled=False)  # sends no signal
    later(5)
    assert _internal(tenant.sim)[1]["error"] == "connection_disabled"


def test_uninstalling_the_portal_refuses_routes_within_the_memorys_age(tenant_with_line, settings, later):
    settings.PBX_AUTH_CACHE_SECONDS = 5
    tenant = tenant_with_line
    assert _internal(tenant.sim)[0] == 200
    # What portals.events.mark_uninstalled does: a queryset update.
    Portal.objects.filter(pk=tenant.portal.pk).update(status=Portal.Status.UNINSTALLED)
    later(5)
    assert _internal(tenant.sim)[1]["error"] == "portal_uninstalled"


def test_a_reinstalled_portal_is_let_in_at_once(tenant_with_line):
    tenant = tenant_with_line
    Portal.objects.filter(pk=tenant.portal.pk).update(status=Portal.Status.UNINSTALLED)
    assert _internal(tenant.sim)[0] == 409
    portal = Portal.objects.get(pk=tenant.portal.pk)
    portal.status = Portal.Status.ACTIVE
    portal.save()  # the install flow saves the portal
    assert _internal(tenant.sim)[0] == 200


def test_another_tenants_secret_never_routes_on_this_connection(tenant_with_line, client):
    other = make_tenant(client)
    assert _internal(tenant_with_line.sim)[0] == 200
    assert _internal(other.sim)[0] == 200
    assert _internal(tenant_with_line.sim, secrets=[other.secret])[0] == 401
    assert _internal(other.sim, secrets=[tenant_with_line.secret])[0] == 401


# --- the webhook-id rule, in either receipt store -------------------------------------------------


@pytest.mark.parametrize("receipts", RECEIPT_STORES)
def test_replayed_webhook_id_gets_the_identical_answer_and_is_not_routed_again(tenant_with_line, settings, receipts):
    settings.PBX_ROUTE_RECEIPTS = receipts
    tenant = tenant_with_line
    first = _internal(tenant.sim, webhook_id="msg-route-1")
    line_routing_for(tenant.connection, default_extension="700")
    assert _internal(tenant.sim, webhook_id="msg-route-1") == first == (
        200, {"extension": "600", "user_id": None, "reason": "line_default", "crm_entity": None})
    assert RouteDecision.objects.count() == 1
    assert PbxWebhookReceipt.objects.count() == (1 if receipts == "database" else 0)
    # A new message is routed with the new setting.
    assert _internal(tenant.sim)[1]["extension"] == "700"


@pytest.mark.parametrize("receipts", RECEIPT_STORES)
def test_replayed_webhook_id_is_answered_even_after_the_connection_was_disabled(tenant_with_line, settings, receipts):
    settings.PBX_ROUTE_RECEIPTS = receipts
    tenant = tenant_with_line
    first = _internal(tenant.sim, webhook_id="msg-route-2")
    _set_enabled(tenant.connection, False)
    assert _internal(tenant.sim, webhook_id="msg-route-2") == first
    assert _internal(tenant.sim)[0] == 409


@pytest.mark.parametrize("receipts", RECEIPT_STORES)
def test_replayed_bad_request_gets_the_same_400_even_with_a_good_body(tenant_with_line, settings, receipts):
    settings.PBX_ROUTE_RECEIPTS = receipts
    tenant = tenant_with_line
    bad = _answer(tenant.sim.request("POST", "route", b'{"line_number": "+74951234567"}', webhook_id="msg-bad"))
    assert bad[0] == 400
    assert _internal(tenant.sim, webhook_id="msg-bad") == bad
    assert RouteDecision.objects.count() == 0


@pytest.mark.parametrize("receipts", RECEIPT_STORES)
def test_a_409_is_not_remembered_so_the_retry_after_enabling_is_routed(tenant_with_line, settings, receipts):
    settings.PBX_ROUTE_RECEIPTS = receipts
    tenant = tenant_with_line
    _set_enabled(tenant.connection, False)
    assert _internal(tenant.sim, webhook_id="msg-retry")[0] == 409
    _set_enabled(tenant.connection, True)
    assert _internal(tenant.sim, webhook_id="msg-retry")[0] == 200
    assert RouteDecision.objects.count() == 1


@pytest.mark.parametrize("receipts", RECEIPT_STORES)
def test_a_401_is_not_remembered_so_nobody_can_poison_a_webhook_id(tenant_with_line, settings, receipts):
    settings.PBX_ROUTE_RECEIPTS = receipts
    tenant = tenant_with_line
    assert _internal(tenant.sim, webhook_id="msg-poison", secrets=[signing.encode_secret(b"w" * 32)])[0] == 401
    assert _internal(tenant.sim, webhook_id="msg-poison")[0] == 200


@pytest.mark.parametrize("receipts", RECEIPT_STORES)
def test_the_same_webhook_id_on_another_tenants_connection_is_routed_there(tenant_with_line, client, settings,
                                                                          receipts):
    settings.PBX_ROUTE_RECEIPTS = receipts
    other = make_tenant(client)
    _internal(tenant_with_line.sim, webhook_id="msg-shared")
    assert _internal(other.sim, webhook_id="msg-shared") == (200, {"extension": None, "user_id": None,
                                                                   "reason": "none", "crm_entity": None})
    assert RouteDecision.objects.filter(connection=other.connection).count() == 1


# --- cached answers follow the settings they were built from --------------------------------------


@pytest.fixture
def pbx(installed_portal, pbx_server, client, transactional_db):
    pbx = connect_pbx(installed_portal.portal, pbx_server, client, lines=(LINE, OTHER_LINE))
    line_routing(pbx, LINE, default_extension="600")
    line_routing(pbx, OTHER_LINE, default_extension="700")
    return pbx


def _last_source() -> str:
    return RouteDecision.objects.order_by("-id").values_list("source", flat=True).first()


def test_a_changed_line_fallback_reaches_the_next_answer(pbx):
    sim = pbx.simulator()
    assert _route(sim)[1]["extension"] == "600"
    assert _route(sim)[1]["extension"] == "600"
    assert _last_source() == "cache"
    set_line_routing(PbxLine.objects.get(connection=pbx.connection, number=LINE), default_extension="650")
    assert _route(sim)[1]["extension"] == "650"


def test_turning_crm_routing_off_for_a_line_reaches_the_next_answer(installed_portal, pbx):
    _add_client(installed_portal.b24)
    sim = pbx.simulator()
    assert _route(sim)[1]["reason"] == "crm_responsible"
    assert _route(sim)[1]["reason"] == "crm_responsible"
    set_line_routing(PbxLine.objects.get(connection=pbx.connection, number=LINE), route_to_responsible=False)
    assert _route(sim)[1] == {"extension": "600", "user_id": None, "reason": "line_default",
                              "crm_entity": None}
    assert _last_source() == "not_asked"


def test_a_deleted_line_has_no_fallback_on_the_next_answer(pbx):
    sim = pbx.simulator()
    assert _route(sim)[1]["extension"] == "600"
    PbxLine.objects.filter(connection=pbx.connection, number=LINE).delete()
    assert _route(sim)[1] == {"extension": None, "user_id": None, "reason": "none", "crm_entity": None}


def test_answers_are_kept_apart_per_line_and_per_connection(installed_portal, pbx, pbx_server, client):
    _add_client(installed_portal.b24)
    installed_portal.b24.users[2].timeman_status = "CLOSED"  # the manager is away: lines' fallbacks apply
    second = connect_pbx(installed_portal.portal, pbx_server, client, name="Branch PBX", lines=(LINE,))
    line_routing(second, LINE, default_extension="800")
    for _ in range(2):  # a miss, then a hit
        assert _route(pbx.simulator())[1]["extension"] == "600"
        assert _route(pbx.simulator(), line=OTHER_LINE)[1]["extension"] == "700"
        assert _route(second.simulator())[1]["extension"] == "800"


def test_an_extension_override_on_one_connection_changes_only_its_answers(installed_portal, pbx, pbx_server, client):
    _add_client(installed_portal.b24)
    second = connect_pbx(installed_portal.portal, pbx_server, client, name="Branch PBX", lines=(LINE,))
    assert _route(pbx.simulator())[1]["extension"] == "101"
    assert _route(second.simulator())[1]["extension"] == "101"
    ExtensionOverride.objects.create(connection=second.connection, extension="7101", user_id=2)
    assert _route(pbx.simulator())[1]["extension"] == "101"
    assert _route(second.simulator())[1]["extension"] == "7101"


def test_a_forgotten_number_is_looked_up_again_although_its_answer_was_cached(installed_portal, pbx):
    _add_client(installed_portal.b24)
    sim = pbx.simulator()
    _route(sim)
    _route(sim)
    assert _last_source() == "cache"
    installed_portal.b24.crm.add_contact("Anna", phones=[("+7 916 555-01-23", "WORK")], assigned_by_id=3)
    forget_number(installed_portal.portal.pk, "8 916 555 01 23")
    assert _route(sim)[1]["user_id"] in (2, 3)
    assert _last_source() == "bitrix24"


def test_invalidation_receivers_are_connected_in_a_process_that_only_set_django_up():
    """``manage.py shell`` or a script that edits a line must still drop cached answers."""
    code = (
        "import django; django.setup()\n"
        "from django.db.models.signals import post_delete, post_save\n"
        "from calls.models import LineSettings, PbxLine\n"
        "assert all(s.has_listeners(m) for s in (post_save, post_delete) for m in (LineSettings, PbxLine))\n"
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "telephony_app.settings"}
    done = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
