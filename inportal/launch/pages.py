"""The pages Bitrix24 frames: the app page (``/bitrix24/app/``) and, once an install is recorded, the
installer's page. Both render one shell that loads the built frontend and hands it a session."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import translation
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_variables

from portals.errors import VerificationThrottled
from portals.iframe import claimed_origin, frame_for, iframe_fields, iframe_view, portal_origin
from portals.install import InstallOutcome
from portals.page import PageRejected, open_app_page
from portals.viewer import ViewerRejected, identify_viewer
from telephony_app.client_ip import client_ip

from ..language import frame_language
from .boot import Launch, boot_data, launch_for

logger = logging.getLogger(__name__)

# The shell runs only the built bundle: no inline script, no plugin, no <base> rewriting.
SHELL_POLICY = "script-src 'self'; object-src 'none'; base-uri 'none'"


def _shell(request: HttpRequest, launch: Launch) -> HttpResponse:
    response = render(request, "inportal/app.html", {"boot": boot_data(launch)})
    frame_for(response, portal_origin(launch.portal.client_endpoint))
    response["Content-Security-Policy"] += "; " + SHELL_POLICY
    return response


def _refused(request: HttpRequest, reason: str, status: int, fields: Mapping[str, str]) -> HttpResponse:
    response = render(request, "portals/install_failed.html", {"reason": reason}, status=status)
    return frame_for(response, claimed_origin(dict(fields)))


def _throttled(request: HttpRequest, exc: VerificationThrottled, fields: Mapping[str, str]) -> HttpResponse:
    response = _refused(request, _("Too many sessions to confirm with Bitrix24 from here; try again in a minute."),
                        exc.status, fields)
    response["Retry-After"] = str(exc.retry_after)
    return response


@iframe_view
@sensitive_variables()
def app_page(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return frame_for(render(request, "portals/open_from_bitrix24.html"), None)
    fields = iframe_fields(request)
    lang = frame_language(fields.get("LANG"))
    with translation.override(lang):
        source = client_ip(request)
        try:
            page = open_app_page(fields, source=source)
            viewer = identify_viewer(page.portal, fields.get("AUTH_ID", ""), source=source)
        except VerificationThrottled as exc:
            return _throttled(request, exc, fields)
        except PageRejected as exc:
            return _refused(request, _(str(exc)), exc.status, fields)
        except ViewerRejected as exc:
            logger.info("app page: viewer not identified (%s)", exc.code)
            return _refused(request, _("Bitrix24 did not confirm who opened the app; open it again."), 403, fields)
        return _shell(request, launch_for(page.portal, viewer, lang))


@sensitive_variables()
def render_installed_page(request: HttpRequest, outcome: InstallOutcome, fields: Mapping[str, str]) -> HttpResponse:
    """Registered with ``portals.frame_pages``: the installing admin lands in the wizard, never an empty frame."""
    lang = frame_language(fields.get("LANG") or outcome.portal.lang)
    with translation.override(lang):
        try:
            viewer = identify_viewer(outcome.portal, fields.get("AUTH_ID", ""), source=client_ip(request))
        except VerificationThrottled as exc:
            return _throttled(request, exc, fields)
        except ViewerRejected as exc:
            logger.info("installer page: viewer not identified (%s)", exc.code)
            return _refused(request, _("Bitrix24 did not confirm who opened the app; open it again."), 403, fields)
        return _shell(request, launch_for(outcome.portal, viewer, lang, installing=True))
