"""The status page: one verdict per area (green / amber / red), what it means and what to do.

Read side only. What Bitrix24 itself knows (event bindings, the app's external lines, the default
outgoing line, the app's id) comes from one ``batch`` with the app's own token; the rest is ours.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone
from django.utils.timesince import timesince
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from b24client import errors as b24errors
from calls.models import DeadLetter, ExtensionDirectory, PbxConnection, PbxLine
from portals.errors import PortalUnavailable
from portals.install import BOUND_EVENTS, events_handler_url
from portals.models import Portal, RestCallLog
from portals.services import bitrix24_client_for

from ..conf import inportal_settings

logger = logging.getLogger(__name__)

GREEN, AMBER, RED = "green", "amber", "red"
AREA_IDS = ("tokens", "events", "pbx", "bitrix24", "extensions", "lines", "default_line")


@dataclass
class Action:
    id: str
    label: str


@dataclass
class Area:
    id: str
    state: str
    title: str
    detail: str
    action: Action | None = None
    at: str | None = None  # ISO time the verdict rests on (last request, last sync), when there is one
    facts: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["action"] = asdict(self.action) if self.action else None
        return data


def _ago(when: datetime) -> str:
    return _("%(time)s ago") % {"time": timesince(when, timezone.now())}


def _action(action_id: str) -> Action:
    labels = {
        "rebind_events": _("Connect the events again"),
        "resync_users": _("Read employees again"),
        "readd_lines": _("Add the lines again"),
    }
    return Action(action_id, labels[action_id])


def _event_purpose(event: str) -> str:
    return {
        "ONEXTERNALCALLSTART": _("click-to-call"),
        "ONEXTERNALCALLBACKSTART": _("callback requests from CRM forms"),
        "ONAPPUNINSTALL": _("removing the app"),
        "ONAPPUPDATE": _("app updates"),
    }.get(event, event.lower())


# ------------------------------------------------------------------------------- what Bitrix24 knows


@dataclass
class LiveFacts:
    """The answers of the status batch; ``error`` when Bitrix24 could not be asked at all."""

    bindings: list[dict[str, Any]] | None = None
    lines: list[dict[str, Any]] | None = None
    outgoing_line: str | None = None
    app_id: str | None = None
    failures: dict[str, str] = field(default_factory=dict)
    error: str = ""


def live_facts(portal: Portal) -> LiveFacts:
    facts = LiveFacts()
    try:
        client = bitrix24_client_for(portal.pk)
        answer = client.batch({
            "events": ("event.get", {}),
            "lines": ("telephony.externalLine.get", {}),
            "outgoing": ("voximplant.line.outgoing.get", {}),
            "app": ("app.info", {}),
        })
    except PortalUnavailable as exc:
        facts.error = exc.reason or exc.status
        return facts
    except b24errors.Bitrix24Error as exc:
        logger.info("status of portal %s: Bitrix24 not reachable (%s)", portal.pk, exc.code)
        facts.error = f"{exc.code}: {exc.description}".strip(": ")
        return facts
    for key, exc in answer.errors.items():
        facts.failures[str(key)] = f"{exc.code}: {exc.description}".strip(": ")
    if "events" not in answer.errors:
        facts.bindings = [b for b in (answer.result.get("events") or []) if isinstance(b, dict)]
    if "lines" not in answer.errors:
        facts.lines = [line for line in (answer.result.get("lines") or []) if isinstance(line, dict)]
    if "outgoing" not in answer.errors:
        facts.outgoing_line = str(answer.result.get("outgoing") or "")
    if "app" not in answer.errors:
        facts.app_id = str((answer.result.get("app") or {}).get("ID") or "") or None
    return facts


# ------------------------------------------------------------------------------------------ the areas


def tokens_area(portal: Portal, live: LiveFacts) -> Area:
    title = _("Access to Bitrix24")
    if portal.status != Portal.Status.ACTIVE:
        detail = {
            Portal.Status.TOKENS_DEAD: _("Bitrix24 no longer accepts the connector's access. Reinstall the app "
                                         "from the Bitrix24 Marketplace to reconnect it."),
            Portal.Status.PAYMENT_REQUIRED: _("The app's subscription on this Bitrix24 has ended. Renew it in the "
                                              "Bitrix24 Marketplace."),
            Portal.Status.DISABLED: _("The connector's vendor has switched this Bitrix24 off. Contact support."),
            Portal.Status.UNINSTALLED: _("The app was removed from this Bitrix24. Install it again."),
            Portal.Status.INSTALLING: _("The installation has not finished. Open the app again."),
        }.get(portal.status, _("The connector cannot act in Bitrix24."))
        return Area("tokens", RED, title, detail, facts={"status": portal.status, "reason": portal.dead_reason})
    missing = sorted(set(settings.BITRIX24_APP_SCOPES) - set(portal.scopes or []))
    if missing:
        return Area("tokens", AMBER, title,
                    _("The app lacks these permissions: %(scopes)s. Reinstall the app to grant them.")
                    % {"scopes": ", ".join(missing)}, facts={"missing_scopes": missing})
    if live.error:
        return Area("tokens", AMBER, title, _("Bitrix24 did not answer just now (%(error)s). Try again in a minute.")
                    % {"error": live.error})
    return Area("tokens", GREEN, title, _("The connector can work in Bitrix24 with the permissions it needs."),
                facts={"scopes": sorted(portal.scopes or [])})


def events_area(portal: Portal, live: LiveFacts) -> Area:
    title = _("Bitrix24 events")
    if live.bindings is None:
        return Area("events", AMBER, title, _("Could not ask Bitrix24 which events reach the connector."),
                    facts={"error": live.error or live.failures.get("events", "")})
    handler = events_handler_url()
    bound = {str(b.get("event") or "").upper() for b in live.bindings if b.get("handler") == handler}
    missing = [e for e in BOUND_EVENTS if e not in bound]
    if missing:
        return Area("events", RED, title,
                    _("Bitrix24 does not tell the connector about: %(what)s.")
                    % {"what": ", ".join(_event_purpose(e) for e in missing)},
                    _action("rebind_events"), facts={"missing": missing})
    if not portal.install_finished:
        return Area("events", AMBER, title,
                    _("Bitrix24 sends events only after the installation is finished: finish the setup wizard."))
    return Area("events", GREEN, title, _("Bitrix24 tells the connector about click-to-call, callback requests, "
                                          "updates and removal."))


def pbx_area(portal: Portal) -> Area:
    title = _("PBX")
    connections = list(PbxConnection.objects.filter(portal=portal))
    if not connections:
        return Area("pbx", RED, title, _("No PBX is connected. Create a connection and enter its address and secret "
                                         "in the PBX."))
    enabled = [c for c in connections if c.enabled]
    if not enabled:
        return Area("pbx", RED, title, _("Every PBX connection is switched off. Switch one on."))
    seen = [c for c in enabled if c.last_signed_request_at]
    if not seen:
        return Area("pbx", AMBER, title, _("The PBX has not sent a signed request yet. Enter the events URL and the "
                                           "secret in the PBX, then make a test call."))
    latest = max(seen, key=lambda c: c.last_signed_request_at)
    at = latest.last_signed_request_at
    silent = timedelta(hours=inportal_settings().pbx_silent_hours)
    facts = {"connection": latest.public_id}
    if timezone.now() - at > silent:
        return Area("pbx", AMBER, title,
                    _("The last request from the PBX “%(name)s” came %(ago)s. Check that it is running and online.")
                    % {"name": latest.name, "ago": _ago(at)}, at=at.isoformat(), facts=facts)
    return Area("pbx", GREEN, title, _("The PBX “%(name)s” last called the connector %(ago)s.")
                % {"name": latest.name, "ago": _ago(at)}, at=at.isoformat(), facts=facts)


def bitrix24_area(portal: Portal) -> Area:
    title = _("Calls in Bitrix24")
    open_letters = DeadLetter.objects.filter(portal=portal, resolved_at=None).count()
    calls_log = RestCallLog.objects.filter(portal=portal, method__istartswith="telephony.externalcall.")
    last_ok = calls_log.filter(status=200, error="").order_by("-created_at").first()
    last_failed = calls_log.exclude(status=200, error="").order_by("-created_at").first()
    facts = {"undelivered": open_letters}
    if open_letters:
        return Area("bitrix24", RED, title,
                    ngettext("%(count)s call could not be delivered to Bitrix24. See Activity → Not delivered.",
                             "%(count)s calls could not be delivered to Bitrix24. See Activity → Not delivered.",
                             open_letters) % {"count": open_letters}, facts=facts)
    if last_failed and (last_ok is None or last_failed.created_at > last_ok.created_at):
        return Area("bitrix24", AMBER, title,
                    _("The last call update to Bitrix24 failed %(ago)s (%(error)s); the connector keeps retrying.")
                    % {"ago": _ago(last_failed.created_at), "error": last_failed.error or last_failed.status},
                    at=last_failed.created_at.isoformat(), facts=facts)
    if last_ok is None:
        return Area("bitrix24", AMBER, title, _("No call has reached Bitrix24 yet. Make a test call."), facts=facts)
    return Area("bitrix24", GREEN, title, _("The last call update reached Bitrix24 %(ago)s.")
                % {"ago": _ago(last_ok.created_at)}, at=last_ok.created_at.isoformat(), facts=facts)


def extensions_area(portal: Portal) -> Area:
    title = _("Employees and extensions")
    directory = ExtensionDirectory.objects.filter(portal=portal).first()
    if directory is None or directory.synced_at is None:
        if directory is not None and directory.last_error:
            return Area("extensions", RED, title, _("Employees could not be read from Bitrix24: %(error)s")
                        % {"error": directory.last_error[:300]}, _action("resync_users"))
        return Area("extensions", AMBER, title, _("Employees have not been read from Bitrix24 yet."),
                    _action("resync_users"))
    facts = {"users": directory.user_count, "extensions": len(directory.users_by_extension),
             "shared": directory.conflicts}
    if directory.last_error and directory.attempted_at and directory.attempted_at > directory.synced_at:
        return Area("extensions", AMBER, title,
                    _("The last reading of employees failed (%(error)s); the list read %(ago)s is used.")
                    % {"error": directory.last_error[:300], "ago": _ago(directory.synced_at)},
                    _action("resync_users"), at=directory.synced_at.isoformat(), facts=facts)
    if directory.conflicts:
        shared = ", ".join(sorted(directory.conflicts))
        return Area("extensions", AMBER, title,
                    _("Several employees share the extension(s) %(extensions)s: calls go to the first of them. "
                      "Give each employee their own extension.") % {"extensions": shared},
                    at=directory.synced_at.isoformat(), facts=facts)
    if not directory.users_by_extension:
        return Area("extensions", AMBER, title,
                    _("No employee has an extension (the “Internal phone” field in Bitrix24). Fill it in or map "
                      "extensions on the Employees page."), _action("resync_users"),
                    at=directory.synced_at.isoformat(), facts=facts)
    count = len(directory.users_by_extension)
    return Area("extensions", GREEN, title,
                ngettext("%(count)s employee with an extension, read %(ago)s.",
                         "%(count)s employees with an extension, read %(ago)s.", count)
                % {"count": count, "ago": _ago(directory.synced_at)},
                at=directory.synced_at.isoformat(), facts=facts)


def _digits(number: str) -> str:
    return "".join(ch for ch in number if ch.isdigit())


def lines_area(portal: Portal, live: LiveFacts) -> Area:
    title = _("Lines")
    lines = list(PbxLine.objects.filter(connection__portal=portal, removed_at__isnull=True))
    if not lines:
        return Area("lines", AMBER, title, _("The PBX has not declared its numbers yet. They appear here once it "
                                             "sends them (or add one on the Lines page)."))
    unregistered = [ln.number for ln in lines if not ln.bitrix_line_registered or ln.sync_error]
    if live.lines is not None:
        in_bitrix = {_digits(str(item.get("NUMBER") or "")) for item in live.lines}
        unregistered += [ln.number for ln in lines if ln.bitrix_line_registered and _digits(ln.number) not in in_bitrix]
    unregistered = sorted(set(unregistered))
    facts = {"declared": len(lines), "missing_in_bitrix24": unregistered}
    if unregistered:
        return Area("lines", RED, title, _("These numbers are not lines in Bitrix24 yet: %(numbers)s.")
                    % {"numbers": ", ".join(unregistered)}, _action("readd_lines"), facts=facts)
    return Area("lines", GREEN, title,
                ngettext("%(count)s line registered in Bitrix24.", "%(count)s lines registered in Bitrix24.",
                         len(lines)) % {"count": len(lines)}, facts=facts)


def default_line_area(portal: Portal, live: LiveFacts) -> Area:
    title = _("Default line for outgoing calls")
    if live.outgoing_line is None:
        return Area("default_line", AMBER, title, _("Could not ask Bitrix24 which line places outgoing calls."),
                    facts={"error": live.error or live.failures.get("outgoing", "")})
    ours = {f"REST_APP:{live.app_id}"} if live.app_id else set()
    ours |= {str(item.get("NUMBER") or "") for item in live.lines or []}
    facts = {"outgoing_line": live.outgoing_line}
    if live.outgoing_line in ours:
        return Area("default_line", GREEN, title, _("Click-to-call in Bitrix24 rings through this connector."),
                    facts=facts)
    return Area("default_line", AMBER, title,
                _("Click-to-call uses another line. In Bitrix24 open Telephony → Settings → “Default number for "
                  "outgoing calls” and choose this app (or one of its numbers)."), facts=facts)


def portal_status(portal: Portal) -> list[Area]:
    live = live_facts(portal) if portal.status == Portal.Status.ACTIVE else LiveFacts(error=portal.status)
    return [
        tokens_area(portal, live),
        events_area(portal, live),
        pbx_area(portal),
        bitrix24_area(portal),
        extensions_area(portal),
        lines_area(portal, live),
        default_line_area(portal, live),
    ]
