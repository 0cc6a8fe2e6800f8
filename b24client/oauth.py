"""Bitrix24 OAuth server calls: authorize URL, code exchange, refresh, ``app.info``.

Choices (the Bitrix24 side is docs/bitrix24-contract.md §1.7-1.11):

* The authorize URL and its CSRF ``state`` come from ``requests_oauthlib.OAuth2Session``.
* The token endpoint calls (code exchange *and* refresh) are plain ``GET {server}/oauth/token/?...``
  as Bitrix24 documents. ``OAuth2Session.refresh_token`` can only POST, and ``fetch_token`` would hide the
  HTTP status behind oauthlib exceptions (Bitrix24 sends ``wrong_client`` with HTTP 200 and we must tell
  ``invalid_grant`` from 5xx), and it refuses the sandbox's ``http://`` server without a process-global
  environment switch. One small GET path gives one error mapping for both grants.
* ``client_secret`` only ever goes to the configured OAuth server or to a stored ``server_endpoint``
  whose host is in ``allowed_hosts``; anything else silently falls back to the configured server.
"""

from __future__ import annotations

import hmac
import logging
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
from oauthlib.common import add_params_to_uri
from requests_oauthlib import OAuth2Session

from . import errors, observe, redact
from .credentials import Credentials
from .transport import Recorder, check_scheme, default_session, json_or_none, record

logger = logging.getLogger("b24client.oauth")

_REST_SUFFIX = re.compile(r"/rest/?$")


def _base(url: str) -> str:
    """``https://oauth.bitrix.info/rest/`` → ``https://oauth.bitrix.info`` (path-based hosts keep their path)."""
    url = url.strip()
    if "://" not in url:
        url = f"https://{url}"
    parts = urlsplit(url)
    path = _REST_SUFFIX.sub("", parts.path).rstrip("/")
    return f"{parts.scheme}://{parts.netloc}{path}"


def _split_scope(raw: Any) -> tuple[str, ...]:
    if isinstance(raw, list | tuple):
        return tuple(str(s) for s in raw if s)
    return tuple(s for s in re.split(r"[,\s]+", str(raw or "")) if s)


class OAuthApp:
    def __init__(
        self,
        client_id: str,
        client_secret: str,
        oauth_server: str,
        allowed_hosts: Iterable[str] = (),
        allow_http: bool = False,
        session: requests.Session | None = None,
        timeout: float | tuple[float, float] = 15,
        recorder: Recorder | None = None,
    ) -> None:
        self.client_id = client_id
        self._client_secret = client_secret
        self.oauth_server = _base(oauth_server)
        self.allow_http = allow_http
        check_scheme(self.oauth_server, allow_http)
        self.allowed_hosts = {h.lower() for h in allowed_hosts} | {urlsplit(self.oauth_server).netloc.lower()}
        self.session = session or default_session()
        self.timeout = timeout
        self.recorder = recorder

    def __repr__(self) -> str:
        return f"OAuthApp(client_id={self.client_id!r}, oauth_server={self.oauth_server!r})"

    # ------------------------------------------------------------------------------------ browser flow

    def authorization_url(self, portal: str, state: str | None = None) -> tuple[str, str]:
        """URL to send a user's browser to (``{portal}/oauth/authorize/``) and the ``state`` to keep in
        their session. ``portal`` is a domain or a portal URL / client_endpoint."""
        url = f"{_base(portal)}/oauth/authorize/"
        check_scheme(url, self.allow_http)
        if urlsplit(url).scheme == "https":
            return OAuth2Session(client_id=self.client_id).authorization_url(url, state=state)
        # oauthlib refuses http:// outright; the sandbox's http mode gets the same parameters.
        state = state or OAuth2Session(client_id=self.client_id).new_state()
        return add_params_to_uri(url, [("response_type", "code"), ("client_id", self.client_id), ("state", state)]), state

    @staticmethod
    def parse_redirect(query: Mapping[str, Any], expected_state: str) -> dict[str, Any]:
        """Validate the redirect back from Bitrix24 (constant-time state check) and return its fields."""
        state = str(query.get("state") or "")
        if not expected_state or not hmac.compare_digest(state.encode(), expected_state.encode()):
            raise errors.InvalidRequest("invalid_state", "OAuth state does not match this browser session")
        code = str(query.get("code") or "")
        if not code:
            raise errors.InvalidRequest("invalid_request", "redirect carries no authorization code")
        return {
            "code": code,
            "domain": str(query.get("domain") or ""),
            "member_id": str(query.get("member_id") or ""),
            "server_domain": str(query.get("server_domain") or ""),
            "scope": _split_scope(query.get("scope")),
        }

    # ----------------------------------------------------------------------------------- token calls

    def _server_for(self, candidate: str | None) -> str:
        if candidate:
            base = _base(candidate)
            parts = urlsplit(base)
            host_ok = parts.netloc.lower() in self.allowed_hosts or (parts.hostname or "") in self.allowed_hosts
            scheme_ok = parts.scheme == "https" or (self.allow_http and parts.scheme == "http")
            if host_ok and scheme_ok:
                return base
            logger.warning("OAuth server %s is not allowed; using the configured %s",
                           redact.redact_url(base), self.oauth_server)
        return self.oauth_server

    def exchange_code(self, code: str, server_endpoint: str | None = None) -> Credentials:
        """Authorization code (30 s lifetime) → a fresh token chain. ``server_endpoint`` may be the
        redirect's ``server_domain``; it is only used if allowed."""
        if not code:
            raise errors.InvalidRequest("invalid_request", "empty authorization code")
        data = self._token_call(self._server_for(server_endpoint), {
            "grant_type": "authorization_code", "client_id": self.client_id,
            "client_secret": self._client_secret, "code": code,
        }, member_id=None, grant="authorization_code")
        return self._credentials(data, previous=None)

    def refresh(self, creds: Credentials) -> Credentials:
        """New token pair for ``creds`` (the old refresh token is single-use). Raises ``TokenDead``."""
        try:
            if not creds.refresh_token:
                raise errors.TokenDead("invalid_grant", "no refresh token stored")
            data = self._token_call(self._server_for(creds.server_endpoint), {
                "grant_type": "refresh_token", "client_id": self.client_id,
                "client_secret": self._client_secret, "refresh_token": creds.refresh_token,
            }, member_id=creds.member_id, grant="refresh_token")
            new = self._credentials(data, previous=creds)
        except errors.TokenDead as exc:
            observe.notify("token_refresh", {"outcome": "dead", "error": exc.code or None})
            raise
        except Exception as exc:
            observe.notify("token_refresh", {"outcome": "failed", "error": getattr(exc, "code", None) or type(exc).__name__})
            raise
        observe.notify("token_refresh", {"outcome": "ok", "error": None})
        return new

    def app_info(self, access_token: str) -> dict:
        """OAuth-server ``app.info`` for a token: the trusted view of which app/portal/user it belongs to."""
        server = self.oauth_server
        url = f"{server}/rest/app.info"
        payload, status = self._get(url, {"auth": access_token}, member_id=None, method="app.info")
        if status >= 400 or (isinstance(payload, Mapping) and payload.get("error")):
            exc = errors.from_payload(payload if isinstance(payload, Mapping) else None, status, "app.info")
            if isinstance(exc, errors.TokenDead) and exc.code.lower() == "invalid_client":
                # Here invalid_client means "this token is not valid", not "this portal is gone".
                raise errors.AccessDenied(exc.code, exc.description, status, payload, "app.info")
            raise exc
        if not isinstance(payload, Mapping) or not isinstance(payload.get("result"), Mapping):
            raise errors.Transient("ERROR_UNEXPECTED_ANSWER", "app.info returned no result", status)
        return dict(payload["result"])

    # --------------------------------------------------------------------------------------- internals

    def _get(self, url: str, params: dict[str, str], *, member_id: str | None, method: str) -> tuple[Any, int]:
        check_scheme(url, self.allow_http)
        started = time.monotonic()
        entry: dict[str, Any] = {
            "member_id": member_id, "method": method, "url": redact.redact_url(url),
            "request": redact.redact(params), "status": None, "response": None, "duration_ms": None,
            "error": None,
        }
        try:
            resp = self.session.get(url, params=params, timeout=self.timeout, allow_redirects=False)
        except (requests.ConnectionError, requests.Timeout) as exc:
            entry.update(error=type(exc).__name__, duration_ms=round((time.monotonic() - started) * 1000))
            record(self.recorder, entry)
            raise errors.Transient("CONNECTION_ERROR", f"{method}: {type(exc).__name__}", None,
                                   None, method) from exc
        payload = json_or_none(resp)
        entry.update(status=resp.status_code, duration_ms=round((time.monotonic() - started) * 1000),
                     response=redact.redact(payload) if payload is not None else redact.redact_text(resp.text[:2000]))
        if isinstance(payload, Mapping) and payload.get("error") is not None:
            entry["error"] = str(payload.get("error"))
        elif resp.status_code >= 400:
            entry["error"] = f"HTTP {resp.status_code}"
        record(self.recorder, entry)
        return payload, resp.status_code

    def _token_call(self, server: str, params: dict[str, str], *, member_id: str | None, grant: str) -> dict:
        payload, status = self._get(f"{server}/oauth/token/", params, member_id=member_id, method=f"oauth.{grant}")
        error = payload.get("error") if isinstance(payload, Mapping) else None
        if error is not None or status >= 400:
            if payload is None and status < 500:
                raise errors.InvalidRequest(f"HTTP_{status}", "token endpoint returned no JSON", status)
            exc = errors.from_payload(payload if isinstance(payload, Mapping) else None, status, "oauth/token")
            if grant == "authorization_code" and isinstance(exc, errors.TokenDead) \
                    and exc.code.lower() == "invalid_grant":
                # A bad or expired code is a failed sign-in attempt, not a dead portal.
                raise errors.InvalidRequest(exc.code, exc.description or "authorization code invalid or expired",
                                            status, payload, "oauth/token")
            raise exc
        if 300 <= status < 400:
            raise errors.InvalidRequest(f"HTTP_{status}", "token endpoint redirected", status)
        if not isinstance(payload, Mapping):
            raise errors.Transient("ERROR_UNEXPECTED_ANSWER", "token endpoint returned no JSON", status)
        return dict(payload)

    def _credentials(self, data: Mapping[str, Any], previous: Credentials | None) -> Credentials:
        return credentials_from_token_response(data, previous=previous, allow_http=self.allow_http,
                                               default_server_endpoint=f"{self.oauth_server}/rest/")


def credentials_from_token_response(
    data: Mapping[str, Any],
    *,
    previous: Credentials | None = None,
    allow_http: bool = False,
    default_server_endpoint: str = "",
) -> Credentials:
    """``Credentials`` from a token response (§1.7/§1.8) or an install/event ``auth`` block (§4.4).

    ``domain`` is ignored on purpose: in token responses it is the OAuth server, the portal is
    ``client_endpoint``. With ``previous`` (a refresh), missing fields are kept and a different
    ``member_id`` is refused so one tenant's tokens can never land on another."""
    access = str(data.get("access_token") or "")
    refresh = str(data.get("refresh_token") or "")
    member_id = str(data.get("member_id") or (previous.member_id if previous else ""))
    client_endpoint = str(data.get("client_endpoint") or (previous.client_endpoint if previous else ""))
    if not access or not refresh or not member_id or not client_endpoint:
        raise errors.InvalidRequest("ERROR_UNEXPECTED_ANSWER",
                                    "token response lacks access_token/refresh_token/member_id/client_endpoint")
    if previous is not None and member_id != previous.member_id:
        raise errors.InvalidRequest("member_mismatch", "refresh returned tokens for a different portal")
    check_scheme(client_endpoint, allow_http)
    try:
        if data.get("expires") not in (None, ""):
            expires_at: float | None = float(data["expires"])
        elif data.get("expires_in") not in (None, ""):
            expires_at = time.time() + float(data["expires_in"])
        else:
            expires_at = None
        user_id = data.get("user_id", previous.user_id if previous else None)
        user_id = int(user_id) if user_id not in (None, "") else None
    except (TypeError, ValueError) as exc:
        raise errors.InvalidRequest("ERROR_UNEXPECTED_ANSWER", f"malformed token response: {exc}") from None
    server_endpoint = str(data.get("server_endpoint") or (previous.server_endpoint if previous else "")
                          or default_server_endpoint)
    return Credentials(
        access_token=access,
        refresh_token=refresh,
        expires_at=expires_at,
        client_endpoint=client_endpoint if client_endpoint.endswith("/") else client_endpoint + "/",
        server_endpoint=server_endpoint,
        member_id=member_id,
        user_id=user_id,
        scope=_split_scope(data.get("scope")) or (previous.scope if previous else ()),
    )
