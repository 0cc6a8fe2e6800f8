"""What the shell page hands the frontend: the session token and who/where it runs (``#app-boot``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from portals.models import Portal
from portals.viewer import Viewer

from ..conf import inportal_settings
from ..session import issue_session
from ..wizard.selectors import wizard_of


@dataclass(frozen=True)
class Launch:
    portal: Portal
    viewer: Viewer
    lang: str
    mode: str  # "app" | "wizard"


def launch_for(portal: Portal, viewer: Viewer, lang: str, *, installing: bool = False) -> Launch:
    """The wizard for an admin until it is finished (right after install, or resumed); the app otherwise.
    A non-admin never sees the wizard: they can only read the status."""
    wizard = wizard_of(portal.pk)
    mode = "wizard" if viewer.is_admin and (installing or not wizard["done"]) else "app"
    return Launch(portal=portal, viewer=viewer, lang=lang, mode=mode)


def boot_data(launch: Launch) -> dict[str, Any]:
    token, session = issue_session(
        portal_id=launch.portal.pk,
        member_id=launch.portal.member_id,
        user_id=launch.viewer.user_id,
        is_admin=launch.viewer.is_admin,
        lang=launch.lang,
    )
    return {
        "session": token,
        "sessionExpiresAt": session.expires_at,
        "lang": session.lang,
        "mode": launch.mode,
        "isAdmin": launch.viewer.is_admin,
        "portal": {
            "domain": launch.portal.domain,
            "memberId": launch.portal.member_id,
            "status": launch.portal.status,
        },
        "user": {"id": launch.viewer.user_id, "name": launch.viewer.name},
        "apiBase": inportal_settings().api_base,
        "wizard": wizard_of(launch.portal.pk),
        "installFinished": launch.portal.install_finished,
    }
