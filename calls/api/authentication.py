"""Standard Webhooks authentication of PBX requests, keyed by the connection in the URL.

Order of checks, each answered before the next is tried: unknown connection → 404 (there is
no secret to verify with, and the id is unguessable, so this reveals nothing useful); missing or
malformed headers, or a timestamp more than 5 minutes off → 401; body over the size limit →
413; no signature matching any unexpired secret of *this* connection → 401. A disabled
connection or an uninstalled portal is refused later with 409, only to an authenticated caller.

The connection, its portal and its unexpired keys are read on every request, in one query, and
never kept between requests: disabling a connection, uninstalling a portal (a queryset update that
sends no signal) and revoking a key apply to the very next request in every process, with no
invalidation to get wrong. Caching them in process memory would save that one round trip; the
measurements in ``benchmarks/route_latency.py`` did not justify a window in which a revoked key or
an uninstalled portal is still let in.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import RequestDataTooBig
from django.db.models import Q
from django.utils import timezone
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from calls import signing
from calls.models import ConnectionSecret, PbxConnection
from calls.pbx_answers import PbxApiError

# Encrypted columns no PBX endpoint reads on the request path: not decrypted on every request
# (loaded on first access if some code does read them).
_DEFERRED = ("connection__recording_secret", "connection__portal__application_token")


@dataclass(frozen=True)
class PbxPrincipal:
    """``request.user`` of a PBX request: the connection itself, not a person."""

    connection: PbxConnection
    is_authenticated: bool = True
    is_anonymous: bool = False


@dataclass(frozen=True)
class PbxAuth:
    connection: PbxConnection
    signed: signing.SignedHeaders
    body: bytes | None  # the verified body; None when the view streams it
    verifier: signing.StreamingVerifier | None  # set when the view streams the body

    @property
    def webhook_id(self) -> str:
        return self.signed.webhook_id


def _public_id(request: Request) -> str:
    return str((request.parser_context or {}).get("kwargs", {}).get("connection_id", ""))


def connection_and_keys(public_id: str) -> tuple[PbxConnection, list[bytes]]:
    """The connection (portal loaded) and every unexpired key, newest first (as
    ``calls.pbx_connections.verification_keys``), in one query: the secrets joined with their
    connection and portal. Only a connection without an unexpired key costs a second query."""
    now = timezone.now()
    rows = list(
        ConnectionSecret.objects.filter(connection__public_id=public_id)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .select_related("connection__portal")
        .defer(*_DEFERRED)
        .order_by("-created_at", "-id")
    )
    if rows:
        return rows[0].connection, [row.key_bytes() for row in rows]
    connection = (
        PbxConnection.objects.select_related("portal")
        .defer(*(name.removeprefix("connection__") for name in _DEFERRED))
        .filter(public_id=public_id)
        .first()
    )
    if connection is None:
        raise PbxApiError(404, "unknown_connection", "No connection with this id.")
    return connection, []


class PbxSignatureAuthentication(BaseAuthentication):
    """Verifies the whole body before the view runs; a view with ``stream_request_body = True``
    (recording uploads) gets ``auth.verifier`` instead and feeds it the body as it streams it."""

    def authenticate(self, request: Request) -> tuple[PbxPrincipal, PbxAuth]:
        connection, keys = connection_and_keys(_public_id(request))
        try:
            signed = signing.parse_headers(request.headers)
        except signing.SignatureError as exc:
            raise PbxApiError(401, exc.code, str(exc)) from exc
        verifier = signing.StreamingVerifier(keys, signed)
        view = (request.parser_context or {}).get("view")
        if getattr(view, "stream_request_body", False):
            return PbxPrincipal(connection), PbxAuth(connection, signed, None, verifier)
        try:
            body = request._request.body
        except RequestDataTooBig as exc:
            raise PbxApiError(413, "too_large", "The body is larger than the server accepts.") from exc
        verifier.update(body)
        try:
            verifier.verify()
        except signing.SignatureError as exc:
            raise PbxApiError(401, exc.code, str(exc)) from exc
        return PbxPrincipal(connection), PbxAuth(connection, signed, body, None)

    def authenticate_header(self, request: Request) -> str:
        return 'Standard-Webhooks realm="pbx-api"'


class HasPbxSignature(BasePermission):
    def has_permission(self, request: Request, view: object) -> bool:
        return isinstance(request.auth, PbxAuth)
