"""Standard Webhooks authentication of PBX requests, keyed by the connection in the URL.

Order of checks, each answered before the next is tried: unknown connection → 404 (there is
no secret to verify with, and the id is unguessable, so this reveals nothing useful); missing or
malformed headers, or a timestamp more than 5 minutes off → 401; body over the size limit →
413; no signature matching any unexpired secret of *this* connection → 401. A disabled
connection or an uninstalled portal is refused later with 409, only to an authenticated caller.

**Auth material in process memory.** Reading the connection, its portal and its keys was a third
of a ``/route`` cache hit's CPU (query compilation and three models hydrated, every request), so
each process keeps them per connection, as plain values plus the decrypted keys with their expiry:

* every request reads the connection's invalidation epoch from the shared cache
  (``calls.auth_epoch``); any change of the connection, its secrets or its portal —
  saved or updated in bulk: a connection disabled, its portal uninstalled, reinstalled or with dead
  tokens, a secret added, rotated or deleted — moves it, and every process reloads that connection
  on its next request;
* a key's expiry is checked at each request, so a rotation overlap ends on the second;
* a signature no cached key matches is checked again against freshly read keys before the 401,
  so a secret issued by another process works at once;
* an entry older than ``PBX_AUTH_CACHE_SECONDS`` (default 5) is read again anyway: the bound on what a
  change nothing announces (SQL run by hand) can go unseen;
* unknown connections are never remembered, and streamed uploads read everything fresh (their
  signature is only checked once the body has streamed through, too late to retry).

Each request gets its own model instances, built from the remembered values: nothing a view does to
``auth.connection`` leaks into another request.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.cache import cache
from django.core.exceptions import RequestDataTooBig
from django.db.models import Model, Q
from django.utils import timezone
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

import inputguard
import logcontext
from calls.auth_epoch import auth_epoch_key
from calls.connections import signing
from calls.connections.activity import note_signed_request
from calls.models import ConnectionSecret, PbxConnection
from calls.pbx_api.conf import pbx_api_settings
from calls.pbx_api.responses import PbxApiError
from portals.models import Portal

# Encrypted columns no PBX endpoint reads on the request path: neither decrypted per request nor
# kept in memory (loaded on first access if some code does read them).
_DEFERRED = ("connection__recording_secret", "connection__portal__application_token")
_MAX_ENTRIES = 10_000
_UNREADABLE = object()  # the epoch when the cache cannot be read: matches no entry


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


# --- the material ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Row:
    """One model instance's loaded fields, to rebuild an independent instance from."""

    db: str
    names: tuple[str, ...]
    values: tuple[Any, ...]

    @classmethod
    def of(cls, instance: Model) -> _Row:
        deferred = instance.get_deferred_fields()
        names = tuple(f.attname for f in instance._meta.concrete_fields if f.attname not in deferred)
        return cls(instance._state.db or "default", names, tuple(getattr(instance, name) for name in names))

    def build(self, model: type[Model]) -> Any:
        # JSON fields (portal settings, recording hosts) are mutable: each request gets its own copy.
        # Everything else (str, int, datetime, bytes, UUID) is immutable and shared.
        values = [copy.deepcopy(v) if isinstance(v, dict | list) else v for v in self.values]
        return model.from_db(self.db, list(self.names), values)


@dataclass(frozen=True)
class AuthMaterial:
    connection: _Row
    portal: _Row
    keys: tuple[tuple[bytes, datetime | None], ...]  # newest first, with their expiry
    epoch: Any
    loaded_at: float

    def build_connection(self) -> PbxConnection:
        connection = self.connection.build(PbxConnection)
        connection.portal = self.portal.build(Portal)
        return connection

    def keys_at(self, now: datetime) -> list[bytes]:
        return [key for key, expires_at in self.keys if expires_at is None or expires_at > now]


_materials: dict[str, AuthMaterial] = {}


def cache_seconds() -> float:
    return pbx_api_settings().auth_cache_seconds


def _monotonic() -> float:
    return time.monotonic()


def _current_epoch(public_id: str) -> Any:
    try:
        return cache.get(auth_epoch_key(public_id))
    except Exception:
        return _UNREADABLE


def load_material(public_id: str, epoch: Any = _UNREADABLE) -> AuthMaterial:
    """The connection (portal loaded) and every unexpired key, newest first (as
    ``calls.connections.services.verification_keys``), in one query: the secrets joined with their
    connection and portal. Only a connection without an unexpired key costs a second query."""
    rows = list(
        ConnectionSecret.objects.filter(connection__public_id=public_id)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now()))
        .select_related("connection__portal")
        .defer(*_DEFERRED)
        .order_by("-created_at", "-id")
    )
    if rows:
        connection = rows[0].connection
    else:
        connection = (
            PbxConnection.objects.select_related("portal")
            .defer(*(name.removeprefix("connection__") for name in _DEFERRED))
            .filter(public_id=public_id)
            .first()
        )
        if connection is None:
            raise PbxApiError(404, "unknown_connection", "No connection with this id.")
    return AuthMaterial(
        connection=_Row.of(connection),
        portal=_Row.of(connection.portal),
        keys=tuple((row.key_bytes(), row.expires_at) for row in rows),
        epoch=epoch,
        loaded_at=_monotonic(),
    )


def _fresh(public_id: str, epoch: Any) -> AuthMaterial:
    material = load_material(public_id, epoch)
    if epoch is not _UNREADABLE:
        if len(_materials) >= _MAX_ENTRIES:
            _materials.clear()
        _materials[public_id] = material
    return material


def material_for(public_id: str) -> tuple[AuthMaterial, bool]:
    """(material, whether it came from memory). Raises the 404 for an unknown connection."""
    # The epoch is read before the rows: a change committed after the read moves the epoch after
    # it too, so rows loaded under the old epoch are reloaded on the next request.
    epoch = _current_epoch(public_id)
    remembered = _materials.get(public_id)
    if (
        remembered is not None
        and epoch is not _UNREADABLE
        and remembered.epoch == epoch
        and _monotonic() - remembered.loaded_at < cache_seconds()
    ):
        return remembered, True
    return _fresh(public_id, epoch), False



def _public_id(request: Request) -> str:
    return str((request.parser_context or {}).get("kwargs", {}).get("connection_id", ""))


# --- DRF ------------------------------------------------------------------------------------------


class PbxSignatureAuthentication(BaseAuthentication):
    """Verifies the whole body before the view runs; a view with ``stream_request_body = True``
    (recording uploads) gets ``auth.verifier`` instead and feeds it the body as it streams it."""

    def authenticate(self, request: Request) -> tuple[PbxPrincipal, PbxAuth]:
        public_id = _public_id(request)
        if inputguard.text_problem(public_id):  # no connection has one; PostgreSQL would refuse to look
            raise PbxApiError(404, "unknown_connection", "No connection with this id.")
        view = (request.parser_context or {}).get("view")
        streamed = getattr(view, "stream_request_body", False)
        if streamed:
            material, remembered = load_material(public_id), False
        else:
            material, remembered = material_for(public_id)
        try:
            signed = signing.parse_headers(request.headers)
        except signing.SignatureError as exc:
            raise PbxApiError(401, exc.code, str(exc)) from exc
        if problem := inputguard.text_problem(signed.webhook_id):  # it is stored with the receipt
            raise PbxApiError(401, "invalid_signature", f"webhook-id: {problem}")
        now = timezone.now()
        verifier = signing.StreamingVerifier(material.keys_at(now), signed)
        if streamed:
            connection = material.build_connection()
            logcontext.bind(portal_id=connection.portal_id)
            return PbxPrincipal(connection), PbxAuth(connection, signed, None, verifier)
        try:
            body = request._request.body
        except RequestDataTooBig as exc:
            raise PbxApiError(413, "too_large", "The body is larger than the server accepts.") from exc
        verifier.update(body)
        try:
            verifier.verify()
        except signing.SignatureError as exc:
            if not remembered:
                raise PbxApiError(401, exc.code, str(exc)) from exc
            # Maybe signed with a key issued since (in another process): ask the database.
            material = _fresh(public_id, _current_epoch(public_id))
            verifier = signing.StreamingVerifier(material.keys_at(now), signed)
            verifier.update(body)
            try:
                verifier.verify()
            except signing.SignatureError as again:
                raise PbxApiError(401, again.code, str(again)) from again
        connection = material.build_connection()
        logcontext.bind(portal_id=connection.portal_id)  # this request's log lines name the tenant
        note_signed_request(connection)
        return PbxPrincipal(connection), PbxAuth(connection, signed, body, None)

    def authenticate_header(self, request: Request) -> str:
        return 'Standard-Webhooks realm="pbx-api"'


class HasPbxSignature(BasePermission):
    def has_permission(self, request: Request, view: object) -> bool:
        return isinstance(request.auth, PbxAuth)
