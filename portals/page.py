"""The app page Bitrix24 frames (PLACEMENT=DEFAULT): who is looking, and is the portal healthy."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from django.conf import settings
from django.utils.translation import gettext_noop

from b24client import errors

from .models import Portal
from .services import oauth_app
from .verification_limits import verification_budget


class PageRejected(Exception):
    def __init__(self, message: str, *, status: int) -> None:
        self.status = status
        super().__init__(message)


@dataclass
class AppPage:
    portal: Portal
    lang: str
    placement: str


def _verify_auth_id(portal: Portal, auth_id: str) -> None:
    try:
        info = oauth_app(portal.server_endpoint).app_info(auth_id)
    except errors.Bitrix24Error as exc:
        raise PageRejected(gettext_noop("Bitrix24 did not confirm this session; reopen the app"), status=403) from exc
    install = info.get("install") or {}
    if str(info.get("client_id") or "") != settings.BITRIX24_CLIENT_ID or str(
        install.get("member_id") or ""
    ) != portal.member_id:
        raise PageRejected(gettext_noop("Bitrix24 did not confirm this session; reopen the app"), status=403)


def open_app_page(fields: Mapping[str, str], *, source: str = "") -> AppPage:
    member_id = (fields.get("member_id") or "").strip()
    if not member_id:
        raise PageRejected(gettext_noop("open this page from your Bitrix24"), status=400)
    portal = Portal.objects.filter(member_id=member_id).first()
    if portal is None:
        raise PageRejected(gettext_noop("the app is not installed on this Bitrix24 yet; install it first"), status=401)
    offered = (fields.get("APPLICATION_TOKEN") or "").strip()
    if offered:
        if not portal.application_token or not hmac.compare_digest(offered.encode(), portal.application_token.encode()):
            raise PageRejected(gettext_noop("this page was not opened by the portal the app is installed on"), status=403)
    else:
        # Older portals post no APPLICATION_TOKEN: the OAuth server vouches for AUTH_ID instead.
        auth_id = (fields.get("AUTH_ID") or "").strip()
        if not auth_id:
            raise PageRejected(gettext_noop("open this page from your Bitrix24"), status=400)
        with verification_budget(source, portal.member_id):
            _verify_auth_id(portal, auth_id)
    if portal.status == Portal.Status.ACTIVE and not portal.install_finished:
        # Bitrix24 shows the app page (not the installer) only once BX24.installFinish() has run.
        Portal.objects.filter(pk=portal.pk).update(install_finished=True)
        portal.install_finished = True
    return AppPage(portal=portal, lang=(fields.get("LANG") or portal.lang or "ru")[:8], placement=fields.get("PLACEMENT") or "DEFAULT")
