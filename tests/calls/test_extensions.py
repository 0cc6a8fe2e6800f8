"""Extension -> Bitrix24 user: the per-portal UF_PHONE_INNER map read from user.get (every page), kept when
a sync fails, refreshed on TTL and on a miss, with per-connection overrides on top."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from b24client import errors as b24errors
from calls.connections.services import create_connection
from calls.extensions import extension_map
from calls.models import ExtensionDirectory, ExtensionOverride


def user_get_calls(b24) -> int:
    return sum(1 for e in b24.request_log if e.get("method", "").lower() == "user.get")


@pytest.fixture
def staff_portal(sandbox, db):
    from conftest import install_through_ui

    from b24sandbox.state import User

    users = [
        User(1, "Anna", "Admin", "a@example.com", is_admin=True, uf_phone_inner="100"),
        User(2, "Boris", "Agent", "b@example.com", uf_phone_inner=" 101 "),
        User(3, "Clara", "Agent", "c@example.com", uf_phone_inner="102"),
        User(4, "Dmitry", "Former", "d@example.com", active=False, uf_phone_inner="103"),
        User(5, "Elena", "Nophone", "e@example.com", uf_phone_inner=None),
        User(6, "Fedor", "Empty", "f@example.com", uf_phone_inner=""),
        User(7, "Galina", "Shares", "g@example.com", uf_phone_inner="102"),
    ]
    b24 = sandbox.create_portal("staff.bitrix24.test", users=users)
    return install_through_ui(sandbox, b24)


def test_map_skips_users_without_extension_and_dismissed_users_and_flags_shared_extensions(staff_portal):
    directory = extension_map.sync_extensions(staff_portal.portal.pk)
    assert directory.users_by_extension == {"100": 1, "101": 2, "102": 3}
    assert directory.conflicts == {"102": [3, 7]}
    assert "" not in directory.users_by_extension
    assert directory.synced_at is not None and directory.last_error == ""


def test_sync_reads_every_page_of_a_large_portal(install_portal):
    installed = install_portal("big.bitrix24.test", seed="demo")
    active_with_ext = {u.uf_phone_inner: u.id for u in sorted(installed.b24.users.values(), key=lambda u: -u.id)
                       if u.active and u.uf_phone_inner and u.user_type == "employee"}
    assert max(active_with_ext.values()) > 50  # more than one user.get page
    mapping = extension_map.users_by_extension(installed.portal.pk)
    assert mapping == {ext: uid for ext, uid in active_with_ext.items()}


def test_a_failed_sync_keeps_the_last_good_map(staff_portal, sandbox):
    extension_map.sync_extensions(staff_portal.portal.pk)
    sandbox.faults.add("error500", portal=staff_portal.b24, method="user.get", times=None)
    directory = extension_map.sync_extensions(staff_portal.portal.pk)
    assert directory.users_by_extension == {"100": 1, "101": 2, "102": 3}
    assert "500" in directory.last_error
    assert extension_map.users_by_extension(staff_portal.portal.pk)["101"] == 2


def test_without_any_good_map_a_retryable_failure_is_raised_for_the_caller_to_retry(staff_portal, sandbox):
    sandbox.faults.add("overload", portal=staff_portal.b24, method="user.get", times=None)
    with pytest.raises(b24errors.Transient):
        extension_map.users_by_extension(staff_portal.portal.pk)
    assert ExtensionDirectory.objects.get(portal=staff_portal.portal).last_error


def test_an_unknown_extension_triggers_one_refresh_per_interval(staff_portal, settings):
    settings.CALLS_EXTENSIONS_MISS_INTERVAL = 60
    extension_map.sync_extensions(staff_portal.portal.pk)
    from b24sandbox.state import User

    staff_portal.b24.users[8] = User(8, "Hanna", "New", "h@example.com", uf_phone_inner="108")
    ExtensionDirectory.objects.update(attempted_at=timezone.now() - timedelta(minutes=5))
    before = user_get_calls(staff_portal.b24)
    assert extension_map.users_by_extension(staff_portal.portal.pk, need=["108"])["108"] == 8
    assert user_get_calls(staff_portal.b24) == before + 1
    # a PBX full of unmapped extensions does not hammer user.get
    extension_map.users_by_extension(staff_portal.portal.pk, need=["999"])
    extension_map.users_by_extension(staff_portal.portal.pk, need=["998"])
    assert user_get_calls(staff_portal.b24) == before + 1


def test_a_stale_map_is_refreshed_after_its_ttl(staff_portal, settings):
    settings.CALLS_EXTENSIONS_TTL = 600
    extension_map.sync_extensions(staff_portal.portal.pk)
    staff_portal.b24.users[2].uf_phone_inner = "201"
    assert "101" in extension_map.users_by_extension(staff_portal.portal.pk)  # still fresh
    old = timezone.now() - timedelta(minutes=11)
    ExtensionDirectory.objects.update(synced_at=old, attempted_at=old)
    mapping = extension_map.users_by_extension(staff_portal.portal.pk)
    assert mapping.get("201") == 2 and "101" not in mapping


def test_connection_overrides_win_and_stay_per_connection(staff_portal):
    first = create_connection(portal=staff_portal.portal, name="PBX A").connection
    second = create_connection(portal=staff_portal.portal, name="PBX B").connection
    ExtensionOverride.objects.create(connection=first, extension="101", user_id=3)
    ExtensionOverride.objects.create(connection=first, extension="555", user_id=1)
    extension_map.sync_extensions(staff_portal.portal.pk)
    a = extension_map.users_by_extension(staff_portal.portal.pk, first.pk)
    b = extension_map.users_by_extension(staff_portal.portal.pk, second.pk)
    assert (a["101"], a["555"]) == (3, 1)
    assert b["101"] == 2 and "555" not in b
    assert extension_map.extension_of_user(staff_portal.portal.pk, 1, first.pk) == "555"
    assert extension_map.extension_of_user(staff_portal.portal.pk, 2) == "101"
    assert extension_map.extension_of_user(staff_portal.portal.pk, 5) is None


def test_maps_of_two_portals_never_mix(staff_portal, install_portal):
    other = install_portal("other.bitrix24.test")
    extension_map.sync_extensions(staff_portal.portal.pk)
    extension_map.sync_extensions(other.portal.pk)
    mine = extension_map.users_by_extension(staff_portal.portal.pk)
    theirs = extension_map.users_by_extension(other.portal.pk)
    assert mine["102"] == 3
    assert theirs == {u.uf_phone_inner: u.id for u in other.b24.users.values()
                      if u.active and u.uf_phone_inner and u.user_type == "employee"}
