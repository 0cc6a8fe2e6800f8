"""PHP-style keys: parsing Bitrix24's form posts and building batch query strings."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from b24client import phparray

# docs/bitrix24-contract.md §4.3: the ONEXTERNALCALLSTART body exactly as Bitrix24 posts it.
EVENT_BODY = (
    "event=ONEXTERNALCALLSTART&event_handler_id=1055&data%5BPHONE_NUMBER%5D=%2B494951234567"
    "&data%5BPHONE_NUMBER_INTERNATIONAL%5D=%2B494951234567&data%5BEXTENSION%5D=&data%5BUSER_ID%5D=1269"
    "&data%5BCALL_LIST_ID%5D=0&data%5BLINE_NUMBER%5D=7&data%5BIS_MOBILE%5D=0"
    "&data%5BCALL_ID%5D=externalCall.89350264e026dace3f2b14d1f438257c.1773236989&data%5BCRM_ENTITY_TYPE%5D=CONTACT"
    "&data%5BCRM_ENTITY_ID%5D=797&ts=1773236988&auth%5Baccess_token%5D=s7p6eclrvim9da28dt9ch94ekreb52sv"
    "&auth%5Bexpires%5D=1773240588&auth%5Bexpires_in%5D=3600&auth%5Bscope%5D=telephony%2Ccrm%2Cuser_basic%2Cplacement"
    "&auth%5Bdomain%5D=some-domain.bitrix24.com&auth%5Bserver_endpoint%5D=https%3A%2F%2Foauth.bitrix.info%2Frest%2F"
    "&auth%5Bstatus%5D=F&auth%5Bclient_endpoint%5D=https%3A%2F%2Fsome-domain.bitrix24.com%2Frest%2F"
    "&auth%5Bmember_id%5D=a223c6b9410f85df78e9377d6c4f7213&auth%5Buser_id%5D=1269"
    "&auth%5Bapplication_token%5D=51610fefc120afg4b628cc82d6298cce"
)


def test_parses_the_documented_event_body_into_nested_dicts_of_strings():
    parsed = phparray.parse(EVENT_BODY)

    assert parsed["event"] == "ONEXTERNALCALLSTART"
    assert parsed["data"]["PHONE_NUMBER"] == "+494951234567"
    assert parsed["data"]["EXTENSION"] == "" and parsed["data"]["USER_ID"] == "1269"
    assert parsed["auth"]["member_id"] == "a223c6b9410f85df78e9377d6c4f7213"
    assert parsed["auth"]["client_endpoint"] == "https://some-domain.bitrix24.com/rest/"
    assert parsed["auth"]["scope"] == "telephony,crm,user_basic,placement"


def test_append_keys_and_numeric_keys_become_lists():
    parsed = phparray.parse("USER_ID[]=1&USER_ID[]=2&fields[PHONE][0][VALUE]=%2B1&fields[PHONE][1][VALUE]=%2B2")
    assert parsed == {"USER_ID": ["1", "2"], "fields": {"PHONE": [{"VALUE": "+1"}, {"VALUE": "+2"}]}}


def test_sparse_numeric_keys_stay_a_dict():
    assert phparray.parse("a[0]=x&a[2]=y") == {"a": {"0": "x", "2": "y"}}


def test_accepts_pairs_bytes_and_querydict_style_lists():
    assert phparray.parse([("auth[member_id]", "m")]) == {"auth": {"member_id": "m"}}
    assert phparray.parse(b"a[b]=1") == {"a": {"b": "1"}}
    assert phparray.parse({"PLACEMENT_OPTIONS[x]": ["1"], "ids[]": ["1", "2"]}) == {
        "PLACEMENT_OPTIONS": {"x": "1"}, "ids": ["1", "2"]}


def test_malformed_keys_are_kept_flat_and_too_deep_keys_are_refused():
    assert phparray.parse("a[b=1&c]d=2") == {"a[b": "1", "c]d": "2"}
    with pytest.raises(phparray.PhpArrayError):
        phparray.parse("a" + "[x]" * 40 + "=1")


def test_encode_follows_http_build_query():
    assert phparray.encode({"fields": {"TITLE": "t", "PHONE": [{"VALUE": "+1"}]}, "flag": True, "off": False,
                            "none": None, "empty": [], "n": 2.0}) == [
        ("fields[TITLE]", "t"), ("fields[PHONE][0][VALUE]", "+1"), ("flag", "1"), ("off", "0"), ("n", "2")]


def test_build_query_keeps_batch_references_raw_and_encodes_everything_else():
    q = phparray.build_query({"ID": "$result[get_user][UF_DEPARTMENT][0]", "NAME": "a&b=c $result", "X": "+1"},
                             keep_batch_references=True)
    assert q == "ID=$result[get_user][UF_DEPARTMENT][0]&NAME=a%26b%3Dc%20%24result&X=%2B1"
    assert "%24result" in phparray.build_query({"ID": "$result[a][ID]"})


_names = st.text(alphabet=st.characters(min_codepoint=48, max_codepoint=122, blacklist_characters="[]"), min_size=1,
                 max_size=8).filter(lambda s: not s.isdigit())
_leaf = st.text(max_size=10)
_tree = st.recursive(_leaf, lambda kids: st.dictionaries(_names, kids, min_size=1, max_size=4)
                     | st.lists(kids, min_size=1, max_size=4), max_leaves=20)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(_names, _tree, min_size=1, max_size=5))
def test_encode_then_parse_round_trips(data):
    wire = urlencode(phparray.encode(data))
    assert phparray.parse(wire) == data
    assert phparray.parse(parse_qsl(wire, keep_blank_values=True)) == data
