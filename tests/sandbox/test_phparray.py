"""PHP-style parameters both ways (docs/bitrix24-contract.md §2.1 PHP keys, §4.3 http_build_query)."""

from sandbox_fixtures import *  # noqa: F403  (fixtures)

from b24sandbox.phparray import flatten, http_build_query, parse_query, php_json_array


def test_php_keys_parse_into_nested_arrays_and_sequential_keys_become_lists():
    parsed = parse_query("fields[PHONE][0][VALUE]=%2B7495&fields[PHONE][0][VALUE_TYPE]=WORK&USER_ID[]=1&USER_ID[]=2&a=")
    assert parsed == {"fields": {"PHONE": [{"VALUE": "+7495", "VALUE_TYPE": "WORK"}]}, "USER_ID": ["1", "2"], "a": ""}


def test_http_build_query_stringifies_every_scalar_and_omits_nulls_and_empty_arrays_4_3():
    pairs = dict(flatten({"data": {"A": 1, "B": True, "C": False, "D": None, "E": [], "F": ""}, "ts": 17}))
    assert pairs == {"data[A]": "1", "data[B]": "1", "data[C]": "0", "data[F]": "", "ts": "17"}
    assert http_build_query({"auth": {"scope": "crm,user"}}) == "auth%5Bscope%5D=crm%2Cuser"


def test_php_json_array_renders_empty_as_list_and_sequential_keys_as_list_2_4():
    assert php_json_array({}) == []
    assert php_json_array({0: "a", 1: "b"}) == ["a", "b"]
    assert php_json_array({0: "a", 2: "c"}) == {"0": "a", "2": "c"}
    assert php_json_array({"x": 1}) == {"x": 1}
