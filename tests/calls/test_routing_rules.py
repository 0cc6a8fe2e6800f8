"""The pure routing chain (incoming calls and callbacks): who gets the call for a given searchCrmEntities answer."""

from __future__ import annotations

from calls.routing.rules import (
    CRM_RESPONSIBLE,
    LINE_DEFAULT,
    NAMED_AGENT,
    NONE,
    CrmCandidate,
    LineDefault,
    candidates_from_search,
    choose,
    merge_candidates,
    search_spellings,
)


def _item(entity_type: str, entity_id: int, user_id: int, *, timeman: str = "OPENED", inner: str | None = None):
    # Shaped like Bitrix24's answer: ids as strings inside ASSIGNED_BY, phone fields may be null.
    return {
        "CRM_ENTITY_TYPE": entity_type,
        "CRM_ENTITY_ID": entity_id,
        "ASSIGNED_BY_ID": user_id,
        "NAME": "Client",
        "ASSIGNED_BY": {
            "ID": str(user_id),
            "TIMEMAN_STATUS": timeman,
            "USER_PHONE_INNER": inner,
            "WORK_PHONE": None,
            "PERSONAL_PHONE": None,
            "PERSONAL_MOBILE": None,
        },
    }


EXTENSIONS = {7: "101", 8: "102", 9: None}


def _extension_of(user_id: int) -> str | None:
    return EXTENSIONS.get(user_id)


def _user_of(extension: str) -> int | None:
    return {v: k for k, v in EXTENSIONS.items() if v}.get(extension)


def test_first_responsible_with_extension_at_work_gets_the_call():
    found = candidates_from_search([_item("CONTACT", 797, 7), _item("COMPANY", 5, 8)])
    choice = choose(found, _extension_of, LineDefault(extension="600"), _user_of)
    assert choice.as_response() == {
        "extension": "101",
        "user_id": 7,
        "reason": CRM_RESPONSIBLE,
        "crm_entity": {"type": "CONTACT", "id": 797},
    }


def test_responsible_not_at_work_is_skipped_for_the_next_one():
    found = candidates_from_search([_item("CONTACT", 797, 7, timeman="CLOSED"), _item("LEAD", 12, 8)])
    choice = choose(found, _extension_of, LineDefault(extension="600"), _user_of)
    assert (choice.extension, choice.user_id, choice.crm_entity) == ("102", 8, ("LEAD", 12))


def test_paused_expired_and_unavailable_responsibles_are_not_at_work():
    for status in ("PAUSED", "EXPIRED", "UNAVAILABLE", "CLOSED"):
        found = candidates_from_search([_item("CONTACT", 1, 7, timeman=status)])
        assert choose(found, _extension_of, LineDefault(extension="600"), _user_of).reason == LINE_DEFAULT


def test_portal_without_time_tracking_still_routes_to_the_responsible():
    found = candidates_from_search([_item("CONTACT", 1, 7, timeman="NOT_INSTALLED")])
    assert choose(found, _extension_of, LineDefault(), _user_of).reason == CRM_RESPONSIBLE


def test_responsible_without_extension_falls_back_to_line_default_keeping_the_crm_entity():
    found = candidates_from_search([_item("CONTACT", 797, 9)])
    choice = choose(found, _extension_of, LineDefault(extension="600"), _user_of)
    assert choice.as_response() == {
        "extension": "600",
        "user_id": None,
        "reason": LINE_DEFAULT,
        "crm_entity": {"type": "CONTACT", "id": 797},
    }


def test_bitrix24_extension_is_used_when_our_map_does_not_know_the_user():
    found = candidates_from_search([_item("CONTACT", 797, 42, inner="142")])
    choice = choose(found, _extension_of, LineDefault(), _user_of)
    assert (choice.extension, choice.user_id, choice.reason) == ("142", 42, CRM_RESPONSIBLE)


def test_line_default_user_is_rung_on_their_extension():
    choice = choose([], _extension_of, LineDefault(user_id=8), _user_of)
    assert (choice.extension, choice.user_id, choice.reason, choice.crm_entity) == ("102", 8, LINE_DEFAULT, None)


def test_line_default_extension_names_its_owner():
    choice = choose([], _extension_of, LineDefault(extension="101"), _user_of)
    assert (choice.extension, choice.user_id) == ("101", 7)


def test_named_agents_come_after_the_responsible_and_before_the_line_default():
    closed = candidates_from_search([_item("LEAD", 3, 7, timeman="CLOSED")])
    # The first named agent has no extension: the next one with an extension takes it.
    choice = choose(closed, _extension_of, LineDefault(extension="600"), _user_of, named_agents=(9, None, 8))
    assert (choice.extension, choice.user_id, choice.reason, choice.crm_entity) == ("102", 8, NAMED_AGENT, ("LEAD", 3))
    at_work = candidates_from_search([_item("LEAD", 3, 7)])
    assert choose(at_work, _extension_of, LineDefault(), _user_of, named_agents=(8,)).reason == CRM_RESPONSIBLE
    nobody = choose(closed, _extension_of, LineDefault(extension="600"), _user_of, named_agents=(9,))
    assert (nobody.extension, nobody.reason) == ("600", LINE_DEFAULT)


def test_unknown_client_and_no_line_default_answers_none():
    assert choose([], _extension_of, LineDefault(), _user_of).as_response() == {
        "extension": None,
        "user_id": None,
        "reason": NONE,
        "crm_entity": None,
    }


def test_malformed_search_items_are_ignored():
    found = candidates_from_search(
        [{"CRM_ENTITY_TYPE": "CONTACT"}, "junk", {"CRM_ENTITY_TYPE": "X", "CRM_ENTITY_ID": 1}, _item("LEAD", 3, 7)]
    )
    assert found == [CrmCandidate("LEAD", 3, 7, "OPENED", "")]
    assert candidates_from_search({"unexpected": "shape"}) == []


def test_results_for_several_spellings_are_merged_without_repeats():
    first = candidates_from_search([_item("CONTACT", 1, 7)])
    second = candidates_from_search([_item("CONTACT", 1, 7), _item("COMPANY", 2, 8)])
    assert [(c.entity_type, c.entity_id) for c in merge_candidates([first, second])] == [
        ("CONTACT", 1),
        ("COMPANY", 2),
    ]


def test_home_country_numbers_are_also_searched_in_national_spellings():
    assert search_spellings("+74951234567", "RU") == ["+74951234567", "84951234567", "4951234567"]


def test_foreign_numbers_are_searched_as_e164_only():
    assert search_spellings("+14155550100", "RU") == ["+14155550100"]


def test_candidates_survive_a_cache_round_trip():
    candidate = candidates_from_search([_item("COMPANY", 5, 8, timeman="PAUSED", inner="102")])[0]
    assert CrmCandidate.from_json(candidate.to_json()) == candidate
