"""What the call syncs keep in memory about a portal (calls.sync.portal_state): a change made in the app, in the
admin or by the extension sync applies to the very next call, as when every sync read the rows itself, and a
call only ever sees its own portal's rows."""

from __future__ import annotations

from call_scenario_fixtures import *  # noqa: F403  (fixtures: phone, recordings)
from call_scenario_fixtures import AGENTS, LINE, drive, make_phone_portal
from django.db import connection
from django.test.utils import CaptureQueriesContext

from calls.extensions import extension_map
from calls.lines.services import store_lines
from calls.models import PbxEvent, PortalCallSettings
from calls.settings import services
from calls.sync import portal_state, reconciler


def b24_call_of(phone, scenario) -> dict:
    return phone.b24_call(phone.call(scenario.call_id))


def first_call(phone) -> None:
    """A call of a running portal (its extension map read), so that the process remembers the portal as it was
    before the change."""
    extension_map.sync_extensions(phone.portal.pk)
    phone.play(phone.scenario("busy_outgoing", seed=100))
    drive()


def test_a_portal_setting_changed_in_the_app_applies_to_the_next_call(phone):
    first_call(phone)
    services.update_portal_settings(phone.portal.pk, {"crm_create": "off", "add_to_chat": False})
    scenario = phone.scenario("missed_call")
    phone.play(scenario)
    drive()
    b24 = b24_call_of(phone, scenario)
    assert (b24["crm_create"], str(b24["add_to_chat_on_register"])) == (False, "0")


def test_a_setting_changed_in_the_admin_applies_to_the_next_call(phone):
    first_call(phone)
    row, _ = PortalCallSettings.objects.get_or_create(portal=phone.portal)
    row.crm_create = "off"
    row.save()  # the Django admin saves the row through the ORM
    scenario = phone.scenario("missed_call")
    phone.play(scenario)
    drive()
    assert b24_call_of(phone, scenario)["crm_create"] is False


def test_a_user_who_turned_their_card_off_gets_none_from_the_next_call(phone):
    first_call(phone)
    services.update_user_settings(phone.portal.pk, AGENTS["101"], {"card_mode": "never"})
    scenario = phone.scenario("ring_group_second_answers")
    phone.send(*scenario.events[:2])  # started, ringing 101-103
    drive()
    call = phone.call(scenario.call_id)
    assert phone.b24.cards_visible(call.b24_call_id) == {AGENTS["102"], AGENTS["103"]}


def test_an_extension_moved_in_bitrix24_goes_to_its_new_user_once_the_extension_sync_read_it(phone):
    first_call(phone)
    phone.b24.users[AGENTS["101"]].uf_phone_inner = "111"
    phone.b24.users[AGENTS["103"]].uf_phone_inner = "101"
    extension_map.sync_extensions(phone.portal.pk)  # its writes are UPDATEs: no signal announces them
    scenario = phone.scenario("busy_outgoing", agents=("101",))
    phone.play(scenario)
    drive()
    assert b24_call_of(phone, scenario)["user_id"] == AGENTS["103"]


def test_a_line_the_pbx_no_longer_lists_is_no_company_line_for_the_next_call(phone):
    first_call(phone)
    scenario = phone.scenario("missed_call", seed=1)
    phone.play(scenario)
    drive()
    assert b24_call_of(phone, scenario)["line_number"] == LINE
    store_lines(phone.connection, [])  # PUT …/lines without it: an UPDATE of the line rows
    later = phone.scenario("missed_call", seed=2)
    phone.play(later)
    drive()
    assert not b24_call_of(phone, later)["line_number"]


def test_each_portal_s_calls_follow_that_portal_s_settings_only(sandbox, client, recordings, db, settings):
    settings.RECORDINGS_ALLOW_PRIVATE_HOSTS = True
    first = make_phone_portal(sandbox, client, recordings, domain="first.bitrix24.test")
    second = make_phone_portal(sandbox, client, recordings, domain="second.bitrix24.test")
    services.update_portal_settings(first.portal.pk, {"crm_create": "off"})
    for phone in (first, second, first, second):  # each remembered, one after the other
        phone.play(phone.scenario("missed_call", seed=len(phone.b24_calls())))
        drive()
    assert [c["crm_create"] for c in first.b24_calls()] == [False, False]
    assert [c["crm_create"] for c in second.b24_calls()] == [True, True]


def test_a_second_call_of_a_portal_reads_none_of_the_portal_s_rows(phone):
    first_call(phone)
    started = phone.scenario("ring_group_second_answers").events[0]
    phone.send(started)
    call_pk = reconciler.apply_pbx_event(PbxEvent.objects.get(event_id=started["event_id"]).pk)
    with CaptureQueriesContext(connection) as captured:
        assert reconciler.reconcile(call_pk, drain=False).outcome == "waiting"
    read = " ".join(q["sql"] for q in captured.captured_queries if q["sql"].startswith("SELECT"))
    for table in ("portals_portal", "portals_portalcredential", "calls_extensiondirectory",
                  "calls_portalcallsettings", "calls_usercallsettings"):
        assert f'"{table}"' not in read


def test_without_the_shared_cache_every_sync_reads_the_rows_itself(phone, monkeypatch):
    first_call(phone)

    class Down:
        def get(self, *args, **kwargs):
            raise ConnectionError("cache down")

        add = get

    monkeypatch.setattr(portal_state, "cache", Down())  # the epoch cannot be read (nor moved)
    PortalCallSettings.objects.update_or_create(portal=phone.portal, defaults={"crm_create": "off"})
    scenario = phone.scenario("missed_call")
    phone.play(scenario)
    drive()
    assert b24_call_of(phone, scenario)["crm_create"] is False
