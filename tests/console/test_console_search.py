"""Search finds a call by any of its ids and by its number however it is spelled, and portals by member_id or
domain."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "calls"))

from call_scenario_fixtures import *  # noqa: F403  (fixtures: phone, recordings)
from call_scenario_fixtures import drive

from console.search import search


def test_every_way_of_naming_a_call_or_a_portal_finds_it(phone):
    scenario = phone.scenario("missed_call", call_id="pbx-77")
    phone.play(scenario)
    other = phone.scenario("missed_call", seed=2, call_id="pbx-78", client_number="+74957770000")
    phone.play(other)
    drive()
    call = phone.call("pbx-77")
    assert call.client_number == "+79165550123" and call.b24_call_id

    for query in (str(call.uuid), call.b24_call_id, "pbx-77", "+79165550123", "+7 916 555-01-23",
                  "8 (916) 555 01 23", "9165550123", " 7-916-555-0123 "):
        found = search(query)
        assert [c.pk for c in found.calls] == [call.pk], query
    assert [p.pk for p in search(phone.portal.member_id).portals] == [phone.portal.pk]
    assert [p.pk for p in search("calls.bitrix24").portals] == [phone.portal.pk]
    assert search("+7 999 000-00-00").calls == []
    assert search("").calls == [] and search("").portals == []
    assert search("12345").calls == []  # too short to be a number: no match on every line ending in it
