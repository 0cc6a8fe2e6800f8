"""Which Bitrix24 user is behind a PBX extension.

The portal-wide map comes from the users' ``UF_PHONE_INNER`` (read with ``user.get``, every page) and
is kept per portal in the database (``ExtensionDirectory``). Per-connection ``ExtensionOverride`` rows
win over it (two PBXs may both have a "101"). The map is refreshed when it is older than
``CALLS_EXTENSIONS_TTL`` and when a call names an extension the map does not know (at most once per
``CALLS_EXTENSIONS_MISS_INTERVAL``, so a PBX full of unmapped extensions cannot hammer ``user.get``).

A failed sync keeps the last good map: one broken ``user.get`` must never hide every agent's call
card. Users without an extension are skipped (an empty key would collect every such user), and an
extension shared by several active users goes to the lowest user id, recorded as a conflict.

The pages are read through the portal's outbox (``calls.outbox``), as housekeeping: the live calls' cards,
registers and finishes go first, and the pages share their batches. A read (``reading_since``) writes as many
pages as the last one found users (usually one request for all), a page after a full one once that is
answered, and takes the answers in once every page is answered; one read per portal at a time, however many
calls want it. What is not answered at once is taken in later by the sync task (``signals.reading``). A
lost answer costs nothing but the page read again.

The calls' syncs keep the directory in process memory (``calls.sync.portal_state``): every write of it here
is an UPDATE, which no signal announces, so each one moves the portal's epoch itself (``forget_portal_facts``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from b24client import errors as b24errors
from calls.extensions import signals
from calls.extensions.conf import extension_settings
from calls.models import ExtensionDirectory, ExtensionOverride, OutboxCommand
from calls.outbox import errors as outbox_errors
from calls.outbox import packing
from calls.outbox import selectors as outbox_selectors
from calls.outbox import sender as outbox_sender
from calls.outbox import services as outbox_services
from calls.outbox.conf import outbox_settings
from calls.policy_epoch import forget_portal_facts

logger = logging.getLogger(__name__)


def _clean_extension(value: Any) -> str:
    return str(value).strip() if value is not None else ""


def build_map(users: Iterable[dict[str, Any]]) -> tuple[dict[str, int], dict[str, list[int]]]:
    """``({extension: user_id}, {extension: [user ids sharing it]})`` from ``user.get`` items."""
    owners: dict[str, list[int]] = {}
    for user in users:
        if not _active(user):
            continue
        ext = _clean_extension(user.get("UF_PHONE_INNER"))
        if not ext:
            continue
        try:
            user_id = int(user["ID"])
        except (KeyError, TypeError, ValueError):
            continue
        owners.setdefault(ext, []).append(user_id)
    mapping = {ext: min(ids) for ext, ids in owners.items()}
    conflicts = {ext: sorted(ids) for ext, ids in owners.items() if len(ids) > 1}
    return mapping, conflicts


def _active(user: dict[str, Any]) -> bool:
    return str(user.get("ACTIVE", True)).lower() not in {"false", "0", "n", ""}


def employee_list(users: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The users as the app's employee page lists them (what ``ExtensionDirectory.users`` holds)."""
    listed = []
    for user in users:
        try:
            user_id = int(user["ID"])
        except (KeyError, TypeError, ValueError):
            continue
        name = " ".join(str(user.get(k) or "").strip() for k in ("NAME", "LAST_NAME")).strip()
        photo = user.get("PERSONAL_PHOTO")
        listed.append({"id": user_id, "name": name or str(user.get("EMAIL") or user_id), "active": _active(user),
                       "photo": photo if isinstance(photo, str) and photo else None,
                       "extension": _clean_extension(user.get("UF_PHONE_INNER")) or None})
    return sorted(listed, key=lambda u: u["id"])


PAGE = 50  # user.get's page: a shorter one is the last
USER_GET = "user.get"
_PAGE_KEY = "users:page:"
# A read still open after this is closed as failed (its pages are read again by the next one).
_READ_GIVES_UP_AFTER = timedelta(minutes=15)
_LOOK_AGAIN_SECONDS = 2.0  # the sync task looks at an open read's pages again after this


def sync_extensions(portal_id: int, *, raise_retryable: bool = False, behind_others: bool = False
                    ) -> ExtensionDirectory:
    """Read every user from Bitrix24 and store the map of the active ones; on failure keep the last good one.

    Starts a read unless one is open, sends the portal's due commands (the pages among them) and takes in
    what is answered; an open read is looked at again by the sync task. ``behind_others``: a call wants the
    map refreshed: the pages are sent at once only if nothing else of the portal waits (no call's card waits
    for a refresh it does not need). With ``raise_retryable`` a failure that may pass (Bitrix24 down, rate
    limit, pages still waiting) is raised after it was recorded: used when there is no good map yet, so the
    caller retries rather than go on without one.
    """
    directory, _ = ExtensionDirectory.objects.get_or_create(portal_id=portal_id)
    if directory.reading_since is None:
        _start_reading(portal_id, directory)
    failure: b24errors.Bitrix24Error | None = None
    # A page after a full one is written once that is answered: a few rounds here read a grown portal.
    for _round in range(outbox_settings().inline_requests):
        pages = _open_pages(portal_id)
        pending = sum(p.status == OutboxCommand.Status.PENDING for p in pages.values())
        if pending and (not behind_others or outbox_selectors.due_count(portal_id, timezone.now()) <= pending):
            outbox_sender.drain(portal_id, max_requests=outbox_settings().inline_requests)
            pages = _open_pages(portal_id)
        failure, more = _take_in(portal_id, directory, pages)
        if not more:
            break
    directory.refresh_from_db()
    if directory.reading_since is not None:
        signals.reading.send(sender=ExtensionDirectory, portal_id=portal_id, look_again_in=_LOOK_AGAIN_SECONDS)
        failure = failure or b24errors.RateLimited(_LOOK_AGAIN_SECONDS, "USERS_BEING_READ",
                                                   "the user.get pages wait in the portal's outbox", method=USER_GET)
    # A portal that cannot be called is no reason to retry: the caller learns it from the portal's status.
    if (failure is not None and raise_retryable and directory.synced_at is None and failure.retryable
            and failure.code != outbox_errors.PORTAL_UNAVAILABLE):
        raise failure
    return directory


def _page_command(start: int) -> outbox_services.NewCommand:
    # Dismissed users too: the employee page shows them (with their overrides); the map skips them.
    return outbox_services.NewCommand(f"{_PAGE_KEY}{start}", OutboxCommand.Kind.HOUSEKEEPING, USER_GET,
                                      {"start": start}, packing.PRIORITY_HOUSEKEEPING)


def _start_reading(portal_id: int, directory: ExtensionDirectory) -> None:
    # As many pages as the last read found users, and one more: a page after the last full one is read in the
    # same request, so an unchanged portal is read in one.
    pages = directory.user_count // PAGE + 1
    now = timezone.now()
    with transaction.atomic():
        # The directory's row is the read's lock: of two workers starting one, the second finds it started.
        if ExtensionDirectory.objects.filter(pk=directory.pk, reading_since=None).update(reading_since=now,
                                                                                        attempted_at=now):
            forget_portal_facts([portal_id])
            outbox_services.enqueue(portal_id, None, [_page_command(n * PAGE) for n in range(pages)])
    directory.refresh_from_db()


def _open_pages(portal_id: int) -> dict[int, OutboxCommand]:
    """The open read's pages by ``start``: written, their answers not taken in yet."""
    rows = OutboxCommand.objects.filter(portal_id=portal_id, call=None, applied_at=None,
                                        key__startswith=_PAGE_KEY)
    return {int(r.params.get("start") or 0): r for r in rows}


def _take_in(portal_id: int, directory: ExtensionDirectory,
             pages: dict[int, OutboxCommand]) -> tuple[b24errors.Bitrix24Error | None, bool]:
    """Store the map once every page is answered (or the failure); write the page after a full one. Returns
    the failure, or what holds the read back while it is open, and whether it wrote a page."""
    if not pages:
        if directory.reading_since is not None:  # nothing left of it (pruned, a crash between writes)
            ExtensionDirectory.objects.filter(pk=directory.pk).update(reading_since=None)
            forget_portal_facts([portal_id])
        return None, False
    now = timezone.now()
    users: list[Any] = []
    start = 0
    while True:
        page = pages.get(start)
        if page is None:  # the one after a full page: read next
            try:
                with transaction.atomic():
                    outbox_services.enqueue(portal_id, None, [_page_command(start)])
            except IntegrityError:
                pass  # another worker taking the same answers in wrote it a moment ago
            return None, True
        if page.status == OutboxCommand.Status.FAILED:
            return _close(directory, pages, outbox_errors.exception_of(page.error, USER_GET)), False
        if page.status != OutboxCommand.Status.DONE:
            if directory.reading_since and now - directory.reading_since > _READ_GIVES_UP_AFTER:
                return _close(directory, pages, b24errors.Transient(
                    "USERS_NOT_READ", f"user.get pages not answered in {_READ_GIVES_UP_AFTER}", method=USER_GET)), False
            return _waiting(page, now), False
        items = page.result if isinstance(page.result, list) else []
        users.extend(u for u in items if isinstance(u, dict))
        if len(items) < PAGE:
            break
        start += PAGE
    mapping, conflicts = build_map(users)
    with transaction.atomic():
        ExtensionDirectory.objects.filter(pk=directory.pk).update(
            users_by_extension=mapping, conflicts=conflicts, user_count=len(users), users=employee_list(users),
            synced_at=now, attempted_at=now, last_error="", reading_since=None,
        )
        forget_portal_facts([portal_id])
        outbox_services.mark_applied(p.pk for p in pages.values())
    if conflicts:
        logger.warning("portal %s: extensions shared by several users: %s", portal_id, conflicts)
    return None, False


def _waiting(page: OutboxCommand, now: datetime) -> b24errors.RateLimited:
    """A page not answered yet: no failure (what holds it back, if anything, says why), due again when it is."""
    held = page.error if isinstance(page.error, dict) else {}
    wait = max(_LOOK_AGAIN_SECONDS, (page.due_at - now).total_seconds())
    return b24errors.RateLimited(wait, str(held.get("code") or "USERS_BEING_READ"),
                                 str(held.get("description") or "the user.get pages wait in the portal's outbox"),
                                 held.get("status"), method=USER_GET)


def _close(directory: ExtensionDirectory, pages: dict[int, OutboxCommand],
           exc: b24errors.Bitrix24Error) -> b24errors.Bitrix24Error:
    """The read failed: recorded, the last good map kept; the next read writes its pages again."""
    with transaction.atomic():
        ExtensionDirectory.objects.filter(pk=directory.pk).update(
            attempted_at=timezone.now(), last_error=str(exc)[:2000], reading_since=None)
        forget_portal_facts([directory.portal_id])
        outbox_services.mark_applied(p.pk for p in pages.values())
    logger.warning("extension sync for portal %s failed, keeping the map of %s: %s",
                   directory.portal_id, directory.synced_at, exc)
    return exc


def _stale(directory: ExtensionDirectory, now) -> bool:
    return directory.synced_at is None or now - directory.synced_at > extension_settings().ttl


def _may_retry(directory: ExtensionDirectory, now) -> bool:
    return directory.attempted_at is None or now - directory.attempted_at > extension_settings().miss_interval


_LOAD: Any = object()


def users_by_extension(portal_id: int, connection_id: int | None = None, *,
                       need: Iterable[str] = (), directory: ExtensionDirectory | None = _LOAD,
                       overrides: Mapping[str, int] | None = None) -> dict[str, int]:
    """The extension → user map for a call on ``connection_id``, refreshed if stale or missing ``need``.

    ``directory``: the portal's row (or None: it has none yet) and ``overrides``: the connection's
    ``ExtensionOverride`` map, when the caller read them already.
    """
    now = timezone.now()
    if directory is _LOAD:
        directory = ExtensionDirectory.objects.filter(portal_id=portal_id).first()
    if overrides is None:
        overrides = _overrides(connection_id)
    wanted = {e for e in (_clean_extension(x) for x in need) if e} - set(overrides)
    if directory is None or directory.synced_at is None:
        directory = sync_extensions(portal_id, raise_retryable=True)
    elif _stale(directory, now) and _may_retry(directory, now):
        directory = sync_extensions(portal_id, behind_others=True)
    elif wanted - set(directory.users_by_extension) and _may_retry(directory, now):
        directory = sync_extensions(portal_id, behind_others=True)
    mapping = {str(k): int(v) for k, v in (directory.users_by_extension or {}).items()}
    mapping.update(overrides)
    return mapping


def extension_of_user_refreshed(portal_id: int, user_id: int, connection_id: int | None = None) -> str | None:
    """``extension_of_user``; on a miss the directory is read again from Bitrix24 first (a user who set
    their extension a minute ago), under the rule an unknown extension in a call follows: at most once
    per ``CALLS_EXTENSIONS_MISS_INTERVAL`` per portal."""
    found = extension_of_user(portal_id, user_id, connection_id)
    if found:
        return found
    directory = ExtensionDirectory.objects.filter(portal_id=portal_id).only("attempted_at").first()
    if directory is None or _may_retry(directory, timezone.now()):
        sync_extensions(portal_id)
        found = extension_of_user(portal_id, user_id, connection_id)
    return found


def _overrides(connection_id: int | None) -> dict[str, int]:
    if connection_id is None:
        return {}
    rows = ExtensionOverride.objects.filter(connection_id=connection_id).values_list("extension", "user_id")
    return {_clean_extension(ext): int(user_id) for ext, user_id in rows if _clean_extension(ext)}


def overrides_of_portal(portal_id: int) -> dict[int, dict[str, int]]:
    """Every connection's ``ExtensionOverride`` map of the portal: ``{connection id: {extension: user id}}``."""
    found: dict[int, dict[str, int]] = {}
    rows = ExtensionOverride.objects.filter(connection__portal_id=portal_id).values_list("connection_id", "extension",
                                                                                        "user_id")
    for connection_id, ext, user_id in rows:
        if _clean_extension(ext):
            found.setdefault(connection_id, {})[_clean_extension(ext)] = int(user_id)
    return found


def extension_of_user(portal_id: int, user_id: int, connection_id: int | None = None) -> str | None:
    """The extension a Bitrix24 user answers on (override first), for click-to-call and routing."""
    if connection_id is not None:
        override = (ExtensionOverride.objects.filter(connection_id=connection_id, user_id=user_id)
                    .order_by("extension").values_list("extension", flat=True).first())
        if override:
            return override
    mapping = users_by_extension(portal_id)
    matches = sorted(ext for ext, uid in mapping.items() if uid == int(user_id))
    return matches[0] if matches else None
