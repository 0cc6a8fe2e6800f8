"""Numbers as PBX dial plans write them become what Bitrix24 expects; extensions stay extensions."""

from __future__ import annotations

import pytest

from calls import phones


@pytest.mark.parametrize(
    ("raw", "country", "expected"),
    [
        ("8 (495) 123-45-67", "RU", "+74951234567"),
        ("84951234567", "RU", "+74951234567"),
        ("+7 495 123 4567", "RU", "+74951234567"),
        ("7-916-555-01-23", "RU", "+79165550123"),
        ("0049 30 1234567", "RU", "+49301234567"),
        ("+1-415-555-0100", "RU", "+14155550100"),
        ("(415) 555-0100", "US", "+14155550100"),
        ("030 1234567", "DE", "+49301234567"),
        ("+44 20 7946 0958", "DE", "+442079460958"),
    ],
)
def test_external_numbers_become_e164_with_the_portals_default_country(raw, country, expected):
    assert phones.normalize_lenient(raw, country) == expected


@pytest.mark.parametrize("raw", ["101", " 2001 ", "55"])
def test_internal_extensions_stay_unnormalised(raw):
    assert phones.normalize_lenient(raw, "RU") == raw.strip()
    assert phones.is_extension(raw)


def test_a_known_extension_longer_than_usual_is_still_an_extension():
    assert phones.is_extension("1234567", known={"1234567"})
    assert not phones.is_extension("1234567")
    assert phones.normalize_lenient("1234567", "RU", known_extensions={"1234567"}) == "1234567"


def test_a_number_libphonenumber_cannot_parse_is_kept_as_digits_not_lost():
    assert phones.normalize_lenient("+12", "RU") == "+12"
    assert phones.normalize_lenient("anonymous", "RU") == "anonymous"
    assert phones.normalize_lenient("", "RU") == ""
    assert phones.normalize_lenient(None, "RU") == ""


def test_strict_normalisation_rejects_what_is_not_a_valid_number():
    assert phones.normalize_strict("8 (495) 123-45-67", "RU") == "+74951234567"
    with pytest.raises(phones.InvalidPhoneNumber):
        phones.normalize_strict("12345", "RU")
    with pytest.raises(phones.InvalidPhoneNumber):
        phones.normalize_strict("", "RU")
