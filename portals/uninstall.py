"""ONAPPUNINSTALL: confirm it with Bitrix24 before switching a portal off.

The event carries only ``application_token`` (docs/bitrix24-contract.md §1.6), and Bitrix24 hands that
same token to every user's browser in the app page's launch POST (§1.3): any employee could post a
perfect copy.
What a forger cannot fake is the revocation: on a real uninstall Bitrix24 revokes every token of the
app (§1.6, REST then answers 401 ``ERROR_OAUTH`` / ``invalid_token``). So before anything is purged
the stored token chain asks the portal's own ``app.info``: an answer means the app is still
installed and the event is forged.
"""

from __future__ import annotations

import enum
import logging

from django.utils import timezone

from b24client import errors

from .errors import PortalUnavailable
from .models import Portal
from .services import bitrix24_client_for, purge_credentials

logger = logging.getLogger(__name__)

FORGED_REASON = "refused: the app is still installed on this portal (its token still works), so the uninstall is forged"


class Verdict(enum.Enum):
    CONFIRMED = "confirmed"  # our tokens no longer work: Bitrix24 revoked them
    FORGED = "forged"  # our tokens still work: the app is installed
    UNDECIDED = "undecided"  # Bitrix24 could not be asked (5xx, timeout, rate limit): ask again later


def confirm_uninstall(portal: Portal) -> Verdict:
    """Ask the portal whether the app is still installed, with the token chain we hold.

    A portal we cannot call (no tokens, tokens already dead, unpaid, disabled) has no working token to
    prove a forgery with; its uninstall is taken as genuine: the worst a forger gains is switching off a
    portal that was not working anyway.
    """
    try:
        client = bitrix24_client_for(portal.pk)
    except PortalUnavailable:
        return Verdict.CONFIRMED
    try:
        client.call("app.info")
    except PortalUnavailable:
        return Verdict.CONFIRMED  # the refresh found the tokens gone meanwhile
    except errors.TokenDead as exc:
        # PAYMENT_REQUIRED: the app is installed, only unpaid.
        return Verdict.FORGED if exc.code.lower() == "payment_required" else Verdict.CONFIRMED
    except errors.AccessDenied as exc:
        # 401 NO_AUTH_FOUND / authorization_error: the token is not accepted. Other refusals (403) come
        # from a portal that recognised the token.
        return Verdict.CONFIRMED if exc.status == 401 else Verdict.FORGED
    except errors.InvalidRequest:
        return Verdict.FORGED
    except errors.Bitrix24Error as exc:
        logger.warning("uninstall of portal %s could not be confirmed yet: %s", portal.pk, exc)
        return Verdict.UNDECIDED
    return Verdict.FORGED


def mark_uninstalled(portal: Portal) -> None:
    """Tokens are purged at once; other data waits for the worker (kept or purged per data[CLEAN])."""
    now = timezone.now()
    purge_credentials(portal)
    Portal.objects.filter(pk=portal.pk).update(
        status=Portal.Status.UNINSTALLED,
        dead_reason="uninstalled by the portal",
        status_changed_at=now,
        uninstalled_at=now,
        install_finished=False,
        application_token="",
    )
    logger.info("portal %s (%s) uninstalled; tokens purged", portal.pk, portal.domain)
