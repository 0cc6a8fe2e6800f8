"""The OAuth server (docs/bitrix24-contract.md §1.7-1.11): authorization codes, rotating refresh tokens,
expiring access tokens, OAuth-side app.info, and the error responses of §1.10."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from b24sandbox.addressing import Addressing
from b24sandbox.http import Request, Response, html_response, json_response, parse_params, redirect
from b24sandbox.state import AuthCode, Portal, Token

if TYPE_CHECKING:
    from b24sandbox.sandbox import Sandbox


def new_secret() -> str:
    return secrets.token_hex(16)


class TokenService:
    """Every token pair belongs to (portal, user). Access and refresh tokens are indexed separately so a used
    refresh token can be told apart from one that never existed."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sb = sandbox
        self.by_access: dict[str, Token] = {}
        self.by_refresh: dict[str, Token] = {}
        self.codes: dict[str, AuthCode] = {}

    def issue(self, portal: Portal, user_id: int) -> Token:
        app = portal.app
        if app is None:
            raise RuntimeError(f"the app is not installed on {portal.domain}")
        now = self.sb.clock.now()
        token = Token(
            access_token=new_secret(),
            refresh_token=new_secret(),
            member_id=portal.member_id,
            user_id=int(user_id),
            client_id=app.client_id,
            scope=tuple(app.scope),
            access_expires_at=now + self.sb.access_lifetime,
            refresh_expires_at=now + self.sb.refresh_lifetime,
        )
        self.by_access[token.access_token] = token
        self.by_refresh[token.refresh_token] = token
        return token

    def rotate(self, old: Token) -> Token:
        portal = self.sb.portal(old.member_id)
        old.refresh_used = True
        if self.sb.kill_access_on_refresh:
            old.access_revoked = True
        return self.issue(portal, old.user_id)

    def revoke_portal(self, member_id: str, reason: str) -> int:
        count = 0
        for token in self.by_access.values():
            if token.member_id == member_id and not token.revoked:
                token.revoked = True
                token.access_revoked = True
                token.revoked_reason = reason
                count += 1
        for code in self.codes.values():
            if code.member_id == member_id:
                code.used = True
        return count

    def new_code(self, portal: Portal, user_id: int) -> AuthCode:
        assert portal.app is not None
        code = AuthCode(
            code=new_secret(),
            member_id=portal.member_id,
            user_id=user_id,
            client_id=portal.app.client_id,
            expires_at=self.sb.clock.now() + self.sb.code_lifetime,
        )
        self.codes[code.code] = code
        return code

    def token_response(self, token: Token, addr: Addressing) -> dict[str, Any]:
        """§1.7/§1.8 shape: ``domain`` is the OAuth server, ``client_endpoint`` the portal."""
        portal = self.sb.portal(token.member_id)
        assert portal.app is not None
        return {
            "access_token": token.access_token,
            "expires": int(token.access_expires_at),
            "expires_in": int(self.sb.access_lifetime),
            "scope": ",".join(token.scope),
            "domain": addr.oauth_domain,
            "server_endpoint": addr.server_endpoint,
            "status": portal.app.status,
            "client_endpoint": addr.client_endpoint(portal.domain),
            "member_id": portal.member_id,
            "user_id": token.user_id,
            "refresh_token": token.refresh_token,
        }


def _oauth_error(status: int, error: str, description: str | None = None) -> Response:
    payload: dict[str, Any] = {"error": error}
    if description is not None:
        payload["error_description"] = description
    return json_response(status, payload)


def _client_error(sb: Sandbox, client_id: str | None, client_secret: str | None) -> Response | None:
    app = sb.app
    if app is None or client_id != app.client_id:
        if sb.wrong_client_style == "wrong_client":
            # §1.10: pysdk documents this one coming with HTTP 200
            return _oauth_error(200, "wrong_client", "Wrong client")
        return _oauth_error(sb.invalid_client_status, "invalid_client", "Invalid client")
    if client_secret is None or not secrets.compare_digest(str(client_secret), app.client_secret):
        return _oauth_error(sb.invalid_client_status, "invalid_client", "Invalid client credentials")
    return None


def handle_token(sb: Sandbox, request: Request, addr: Addressing) -> Response:
    """``/oauth/token/`` by GET query (documented) or POST form (what b24jssdk sends): §1.7, §1.8, §1.10."""
    params, _ = parse_params(request)
    grant_type = params.get("grant_type")
    if not grant_type:
        return _oauth_error(400, "invalid_request", 'No "grant_type" parameter found')
    bad_client = _client_error(sb, params.get("client_id"), params.get("client_secret"))
    if bad_client is not None:
        return bad_client
    tokens = sb.tokens
    now = sb.clock.now()
    if grant_type == "authorization_code":
        code_value = params.get("code")
        if not code_value:
            return _oauth_error(400, "invalid_request", 'No "code" parameter found')
        code = tokens.codes.get(str(code_value))
        if code is None or code.used or code.expires_at <= now:
            return _oauth_error(400, "invalid_grant")
        code.used = True  # a code works once, even if the exchange below fails
        portal = sb.portal(code.member_id)
        refusal = _install_refusal(portal)
        if refusal is not None:
            return refusal
        token = tokens.issue(portal, code.user_id)
        return json_response(200, tokens.token_response(token, addr))
    if grant_type == "refresh_token":
        refresh = params.get("refresh_token")
        if not refresh:
            return _oauth_error(400, "invalid_request", 'No "refresh_token" parameter found')
        old = tokens.by_refresh.get(str(refresh))
        if old is None or old.refresh_used or old.refresh_expires_at <= now:
            return _oauth_error(400, "invalid_grant")
        portal = sb.portal(old.member_id)
        if old.revoked:
            if portal.app is None:
                return _oauth_error(401, "NOT_INSTALLED", "Application not installed")
            return _oauth_error(400, "invalid_grant")
        refusal = _install_refusal(portal)
        if refusal is not None:
            return refusal
        token = tokens.rotate(old)
        return json_response(200, tokens.token_response(token, addr))
    return _oauth_error(400, "invalid_request", f"Unsupported grant_type {grant_type}")


def _install_refusal(portal: Portal) -> Response | None:
    if portal.deleted:
        return Response(404, {"Content-Type": "text/html; charset=utf-8"}, b"Portal not found")
    if portal.app is None:
        return _oauth_error(401, "NOT_INSTALLED", "Application not installed")
    if portal.app.payment_expired:
        return _oauth_error(401, "PAYMENT_REQUIRED", "Payment required")
    return None


def handle_app_info(sb: Sandbox, request: Request, addr: Addressing) -> Response:
    """OAuth-side ``app.info`` (§1.11): proves a token is alive, ours, and which portal it belongs to."""
    params, _ = parse_params(request)
    access = params.get("auth") or params.get("access_token")
    token = sb.tokens.by_access.get(str(access)) if access else None
    if token is None or token.access_revoked or token.revoked:
        return _oauth_error(sb.invalid_client_status, "invalid_client", "Invalid client")
    if token.access_expires_at <= sb.clock.now():
        return _oauth_error(401, "expired_token", "The access token provided has expired.")
    portal = sb.portal(token.member_id)
    app = portal.app
    if app is None:
        return _oauth_error(401, "NOT_INSTALLED", "Application not installed")
    now = sb.clock.now()
    result = {
        "client_id": token.client_id,
        "scope": ",".join(token.scope),
        "expires": int(token.access_expires_at),
        "user_id": token.user_id,
        "install": {
            "installed": app.installed,
            "version": app.version,
            "status": app.status,
            "scope": ",".join(app.scope),
            "domain": addr.domain_field(portal.domain),
            "uri": addr.portal_base(portal.domain),
            "client_endpoint": addr.client_endpoint(portal.domain),
            "member_id": portal.member_id,
            "member_type": "cloud",
        },
    }
    return json_response(200, {"result": result, "time": sb.time_block(portal, now, 0.01)})


def handle_authorize(sb: Sandbox, portal: Portal, request: Request, addr: Addressing) -> Response:
    """Step 1 of §1.7 as the browser sees it: 302 to the app's redirect URI, or Bitrix24's own error page."""
    params, _ = parse_params(request)
    app = sb.app
    if app is None or params.get("client_id") != app.client_id or portal.app is None:
        return html_response(400, "<h1>Error</h1><p>The application is not installed or client_id is wrong.</p>")
    user_id = int(params.get("user_id") or portal.admin().id)  # sandbox extension: who is "logged in"
    if portal.find_user(user_id=user_id) is None:
        return html_response(400, "<h1>Error</h1><p>Unknown user.</p>")
    code = sb.tokens.new_code(portal, user_id)
    query = urlencode(
        {
            "code": code.code,
            "state": params.get("state", ""),
            "domain": addr.domain_field(portal.domain),
            "member_id": portal.member_id,
            "scope": ",".join(portal.app.scope),
            "server_domain": addr.oauth_domain,
        }
    )
    target = app.redirect_uri or app.app_url
    return redirect(f"{target}{'&' if '?' in target else '?'}{query}")
