"""netguard: what counts as a public address, and resolving a host once to one."""

from __future__ import annotations

import pytest

from netguard import AddressRefused, ResolutionFailed, address_is_public, pick_public_address


@pytest.mark.parametrize("address", [
    "127.0.0.1", "10.0.0.5", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
    "224.0.0.1", "240.0.0.1", "255.255.255.255", "198.18.0.1", "192.0.2.10",
    "::1", "::", "fe80::1", "fe80::1%eth0", "fc00::1", "fd12:3456::1", "ff02::1", "2001:db8::1", "2001::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.5",
    # What this Python's tables count as global but is not:
    "::7f00:1",  # IPv4-compatible 127.0.0.1 (deprecated ::/96)
    "::a00:5",  # IPv4-compatible 10.0.0.5
    "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe",  # NAT64 of 127.0.0.1 and 169.254.169.254
    "64:ff9b:1::a00:5",  # local-use NAT64 (RFC 8215)
    "2002:7f00:1::1", "2002:a00:5::",  # 6to4 of 127.0.0.1 and 10.0.0.5
    "fec0::1", "fec0:1::5",  # site-local (deprecated)
    "::ffff:0:7f00:1",  # IPv4-translated 127.0.0.1
    "3fff::1", "5f00::1",  # documentation (RFC 9637), SRv6 SIDs (RFC 9602)
])
def test_internal_special_and_embedded_internal_addresses_are_not_public(address):
    assert not address_is_public(address)


@pytest.mark.parametrize("address", [
    "93.184.215.14", "8.8.8.8", "2001:4860:4860::8888", "2a00:1450:4001:82a::200e",
    "::ffff:93.184.215.14", "64:ff9b::808:808", "2002:808:808::1",  # embedding a public IPv4 address
])
def test_public_addresses_are_public(address):
    assert address_is_public(address)


def test_a_host_is_resolved_once_and_every_answer_must_be_public():
    asked: list[tuple[str, int]] = []

    def resolver(host: str, port: int) -> list[str]:
        asked.append((host, port))
        return {"pbx.example.com": ["93.184.215.14"], "mixed.example.com": ["93.184.215.14", "10.0.0.5"],
                "rebind.example.com": ["::7f00:1"]}[host]

    assert pick_public_address("PBX.Example.com.", 443, resolver=resolver) == "93.184.215.14"
    assert asked == [("pbx.example.com", 443)]
    with pytest.raises(AddressRefused, match=r"10\.0\.0\.5"):
        pick_public_address("mixed.example.com", 443, resolver=resolver)
    with pytest.raises(AddressRefused):
        pick_public_address("rebind.example.com", 443, resolver=resolver)
    with pytest.raises(AddressRefused):
        pick_public_address("[::1]", 443, resolver=resolver)
    # An allow-listed private network (an on-premise host) and the explicit development switch.
    assert pick_public_address("mixed.example.com", 443, private_networks=["10.0.0.0/24"],
                               resolver=resolver) == "93.184.215.14"
    assert pick_public_address("127.0.0.1", 80, allow_private=True, resolver=resolver) == "127.0.0.1"


def test_a_host_that_does_not_resolve_is_a_resolution_failure():
    def resolver(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    with pytest.raises(ResolutionFailed):
        pick_public_address("nowhere.example.com", 443, resolver=resolver)
    with pytest.raises(ResolutionFailed):
        pick_public_address("empty.example.com", 443, resolver=lambda h, p: [])
