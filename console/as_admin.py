"""A portal's in-portal app as its admin sees it, read-only: the status areas, the calls list and what could
not be delivered, built by the in-portal app's own selectors in the portal's language. The repairs the admin
could run are named, not offered (the console never acts for the portal)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.utils import translation

from inportal.activity.selectors import call_row, search_calls, undelivered, user_of
from inportal.people import names_of
from inportal.status.areas import Area, portal_status
from inportal.wizard.selectors import wizard_of
from portals.models import Portal

RECENT_CALLS = 25


@dataclass
class AdminView:
    portal: Portal
    lang: str
    areas: list[Area] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    undelivered: list[Any] = field(default_factory=list)
    wizard: dict[str, Any] = field(default_factory=dict)


def admin_view(portal: Portal) -> AdminView:
    with translation.override(portal.lang or "ru"):
        calls = list(search_calls(portal)[:RECENT_CALLS])
        names = names_of(portal, {u for u in (user_of(c) for c in calls) if u})
        return AdminView(portal=portal, lang=portal.lang, areas=portal_status(portal),
                         calls=[call_row(c, names) for c in calls], undelivered=undelivered(portal),
                         wizard=wizard_of(portal.pk))
