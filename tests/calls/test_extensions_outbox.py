"""The extension directory's user.get pages go through the portal's outbox as housekeeping: behind the live
calls' cards, in their batches, one read per portal however many calls want it, the answers taken in once
every page is answered."""

from __future__ import annotations

from datetime import timedelta

import pytest
from call_scenario_fixtures import *  # noqa: F403  (fixtures: phone, recordings)
from call_scenario_fixtures import AGENTS
from django.utils import timezone
from outbox_fixtures import *  # noqa: F403  (the autouse fixture: the install's requests left out)
from outbox_fixtures import new_call, register_command, show_command, write

from b24sandbox.state import User
from calls.extensions import extension_map
from calls.extensions import tasks as extension_tasks
from calls.models import ExtensionDirectory, OutboxCommand
from calls.outbox import sender

Kind = OutboxCommand.Kind


@pytest.fixture
def big_staff(phone):
    """70 more agents, 200-269: the portal's users take two user.get pages."""
    for n in range(70):
        phone.b24.users[100 + n] = User(100 + n, f"Agent{n}", "Big", f"agent{n}@example.com",
                                        uf_phone_inner=str(200 + n))
    return phone


def user_get_commands(phone) -> list[dict]:
    """Every user.get Bitrix24 ran, alone or inside a batch, with the request it came in."""
    found = []
    for n, e in enumerate(phone.b24.request_log):
        if e["method"] == "user.get":
            found.append({"request": n, "batched": False})
        elif e["method"] == "batch":
            found += [{"request": n, "batched": True} for c in (e["params"].get("cmd") or {}).values()
                      if str(c).partition("?")[0].lower() == "user.get"]
    return found


def batch_kinds(phone) -> list[list[str]]:
    """The kinds of each batch's commands, in the order Bitrix24 ran them."""
    kinds = dict(OutboxCommand.objects.values_list("pk", "kind"))
    return [[kinds[int(key[1:])] for key in e["response"]["result"]["result"]]
            for e in phone.b24.request_log if e["method"] == "batch"]


def test_a_portal_of_two_pages_is_read_whole_through_the_outbox(big_staff):
    directory = extension_map.sync_extensions(big_staff.portal.pk)
    assert directory.user_count == 76 and directory.users_by_extension["269"] == 169
    assert directory.users_by_extension["101"] == AGENTS["101"]
    assert len(user_get_commands(big_staff)) == 2  # the first page, then the one after it was full
    assert directory.reading_since is None
    assert not OutboxCommand.objects.filter(kind=Kind.HOUSEKEEPING, applied_at=None).exists()

    big_staff.b24.request_log.clear()
    extension_map.sync_extensions(big_staff.portal.pk)  # the next read knows there are two pages
    assert [c["batched"] for c in user_get_commands(big_staff)] == [True, True]
    assert len(big_staff.b24.request_log) == 1


def test_a_refresh_a_call_wants_goes_behind_the_live_cards_once_however_many_calls_want_it(big_staff, settings):
    settings.CALLS_EXTENSIONS_MISS_INTERVAL = 60
    phone = big_staff
    extension_map.sync_extensions(phone.portal.pk)
    phone.b24.users[170] = User(170, "Newcomer", "Big", "new@example.com", uf_phone_inner="300")
    phone.b24.request_log.clear()

    busy = sender.take_lease(phone.portal.pk)  # a burst: the portal's sender is busy with calls
    calls = [new_call(phone, n) for n in range(3)]
    for call in calls:
        write(call, register_command(call), show_command(call, [AGENTS["102"]]))
    for _ in range(4):  # calls naming an extension the map does not know, each past the miss interval
        ExtensionDirectory.objects.update(attempted_at=timezone.now() - timedelta(minutes=5))
        assert "300" not in extension_map.users_by_extension(phone.portal.pk, need=["300"])
    assert user_get_commands(phone) == []  # no call waited for it
    assert OutboxCommand.objects.filter(kind=Kind.HOUSEKEEPING, applied_at=None).count() == 2  # one read

    sender.release_lease(phone.portal.pk, busy)
    sender.drain(phone.portal.pk)
    # One request: each call's card (after the register it names), and the pages last.
    assert batch_kinds(phone) == [[Kind.REGISTER, Kind.SHOW] * 3 + [Kind.HOUSEKEEPING] * 2]

    directory = extension_map.sync_extensions(phone.portal.pk)  # what the sync task does then: takes them in
    assert directory.users_by_extension["300"] == 170 and directory.reading_since is None
    assert len(user_get_commands(phone)) == 2 and len(phone.b24.request_log) == 1


def test_a_read_left_waiting_is_taken_in_by_the_sync_task_later(big_staff, monkeypatch,
                                                                django_capture_on_commit_callbacks):
    queued: list[tuple] = []
    monkeypatch.setattr(extension_tasks.sync_extensions, "apply_async",
                        lambda args, countdown=None: queued.append((args, countdown)))
    busy = sender.take_lease(big_staff.portal.pk)
    with django_capture_on_commit_callbacks(execute=True):
        directory = extension_map.sync_extensions(big_staff.portal.pk)
    assert directory.reading_since is not None and directory.synced_at is None
    assert queued == [((big_staff.portal.pk,), 2.0)]
    sender.release_lease(big_staff.portal.pk, busy)

    queued.clear()
    with django_capture_on_commit_callbacks(execute=True):
        extension_tasks.sync_extensions(big_staff.portal.pk)  # the task: sends, and writes the second page
    directory.refresh_from_db()
    assert directory.users_by_extension["269"] == 169 and directory.reading_since is None
    assert queued == []


def test_a_page_that_failed_ends_the_read_and_the_last_good_map_stays(big_staff, sandbox):
    extension_map.sync_extensions(big_staff.portal.pk)
    sandbox.faults.add("error500", portal=big_staff.b24, method="batch", times=1)
    directory = extension_map.sync_extensions(big_staff.portal.pk)
    assert directory.users_by_extension["269"] == 169 and "500" in directory.last_error
    assert directory.reading_since is None
    big_staff.b24.request_log.clear()
    directory = extension_map.sync_extensions(big_staff.portal.pk)  # the next read sends its pages again
    assert directory.last_error == "" and len(user_get_commands(big_staff)) == 2
