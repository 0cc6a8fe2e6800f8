"""The frame session: a short-lived signed token the page sends as ``Authorization: Bearer``.

The app runs in a third-party frame where cookies may be blocked, so the session rides in a header
(which is also the CSRF defence: another site cannot make the browser add it). The token is a
``django.core.signing`` blob bound to the portal, the Bitrix24 user, their admin flag and language,
with its own expiry. Nothing is stored server side; a refresh needs a fresh ``AUTH_ID``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.core import signing

from .conf import inportal_settings
from .language import frame_language

SALT = "inportal.frame-session.v1"


class SessionInvalid(Exception):
    """Not a token we issued (forged, truncated, signed with another key)."""


class SessionExpired(Exception):
    """A token we issued whose lifetime is over."""

    def __init__(self, session: FrameSession) -> None:
        self.session = session
        super().__init__("frame session expired")


@dataclass(frozen=True)
class FrameSession:
    portal_id: int
    member_id: str
    user_id: int
    is_admin: bool
    lang: str
    expires_at: int

    @property
    def expired(self) -> bool:
        return self.expires_at <= time.time()


def issue_session(*, portal_id: int, member_id: str, user_id: int, is_admin: bool, lang: str) -> tuple[str, FrameSession]:
    session = FrameSession(
        portal_id=portal_id,
        member_id=member_id,
        user_id=user_id,
        is_admin=is_admin,
        lang=frame_language(lang),
        expires_at=int(time.time()) + inportal_settings().session_seconds,
    )
    payload = {
        "p": session.portal_id, "m": session.member_id, "u": session.user_id,
        "a": int(session.is_admin), "l": session.lang, "e": session.expires_at,
    }
    return signing.dumps(payload, salt=SALT, compress=True), session


def read_session(token: str) -> FrameSession:
    """The session a token carries; raises SessionInvalid or SessionExpired (the latter carries it)."""
    try:
        data = signing.loads(token, salt=SALT)
        session = FrameSession(
            portal_id=int(data["p"]),
            member_id=str(data["m"]),
            user_id=int(data["u"]),
            is_admin=bool(data["a"]),
            lang=frame_language(str(data["l"])),
            expires_at=int(data["e"]),
        )
    except (signing.BadSignature, KeyError, TypeError, ValueError) as exc:
        raise SessionInvalid(str(exc)) from exc
    if session.expired:
        raise SessionExpired(session)
    return session
