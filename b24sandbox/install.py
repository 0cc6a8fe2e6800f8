"""Install flows as Bitrix24 runs them (docs/bitrix24-contract.md §1.3-§1.6): the installer page POST,
ONAPPINSTALL, installFinish, uninstall, reinstall, update, and opening the app or a placement."""

from __future__ import annotations

import json
import secrets
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from b24sandbox import telephony
from b24sandbox.events import FORM_HEADERS, Outgoing, auth_block, event_body, system_auth
from b24sandbox.oauth import new_secret
from b24sandbox.state import AppInstall, Portal, Token, User

if TYPE_CHECKING:
    from b24sandbox.sandbox import Sandbox


class InstallError(RuntimeError):
    """A test hook was used in a state where Bitrix24 would not allow it."""


def _registered(sb: Sandbox) -> Any:
    if sb.app is None:
        raise InstallError("register_app() first")
    return sb.app


def _user(portal: Portal, user_id: int | None, *, admin: bool) -> User:
    user = portal.admin() if user_id is None else portal.find_user(user_id=user_id)
    if user is None or not user.active:
        raise InstallError(f"no active user {user_id} on {portal.domain}")
    if admin and not user.is_admin:
        raise InstallError("only an administrator can install an app")
    return user


def iframe_request(
    sb: Sandbox,
    portal: Portal,
    user: User,
    url: str,
    *,
    placement: str = "DEFAULT",
    options: dict[str, Any] | None = None,
    token: Token | None = None,
    app_sid: str | None = None,
    lang: str | None = None,
) -> tuple[str, bytes]:
    """§1.3: DOMAIN/PROTOCOL/LANG/APP_SID in the query string, the rest form-encoded in the body.
    The framed portal page (``b24sandbox.frame``) passes the token, APP_SID and language it also answers
    ``getInitData`` with."""
    assert portal.app is not None
    addr = sb.addressing()
    token = token or sb.tokens.issue(portal, user.id)
    query = {
        "DOMAIN": addr.domain_field(portal.domain),
        "PROTOCOL": addr.protocol_field(portal.domain),
        "LANG": lang or portal.lang,
        "APP_SID": app_sid or secrets.token_hex(16),
    }
    body: dict[str, str] = {
        "AUTH_ID": token.access_token,
        "AUTH_EXPIRES": str(int(sb.access_lifetime)),
        "REFRESH_ID": token.refresh_token,
        "SERVER_ENDPOINT": addr.server_endpoint,
        "APPLICATION_TOKEN": portal.app.application_token,
        "APPLICATION_SCOPE": ",".join(portal.app.scope),
        "member_id": portal.member_id,
        "status": portal.app.status,
        "PLACEMENT": placement,
    }
    if options is not None:
        body["PLACEMENT_OPTIONS"] = json.dumps(options, ensure_ascii=False)
    if sb.iframe_style == "legacy":  # older docs: one POST array with fewer fields (§11.6)
        legacy = {**query, **{k: body[k] for k in ("AUTH_ID", "AUTH_EXPIRES", "REFRESH_ID", "member_id", "status")}}
        return url, urlencode(legacy).encode("ascii")
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}{urlencode(query)}", urlencode(body).encode("ascii")


def post_page(sb: Sandbox, url: str, body: bytes) -> Any:
    transport = sb.page_transport or sb.event_transport
    return transport(url, body, dict(FORM_HEADERS))


def begin_install(sb: Sandbox, portal: Portal, user_id: int | None = None) -> User:
    """The admin clicks "Install": the app is registered on the portal, not yet INSTALLED (that takes
    installFinish). Returns the installing admin. Call under the sandbox lock."""
    app = _registered(sb)
    user = _user(portal, user_id, admin=True)
    if portal.app is not None and portal.app.installed:
        raise InstallError("already installed: use open_app(), or reinstall()")
    if portal.app is None:
        portal.app = AppInstall(
            client_id=app.client_id,
            application_token=new_secret(),
            scope=tuple(app.scopes),
            installed=False,
            version=app.version,
            installed_by=user.id,
            status=app.status,
        )
    return user


def install_ui(sb: Sandbox, portal: Portal, user_id: int | None = None) -> Any:
    """The admin clicks "Install": the app is registered on the portal (not yet INSTALLED) and the installer
    page is POSTed. Returns whatever the transport returned (the app's response)."""
    app = _registered(sb)
    with sb._locked():
        user = begin_install(sb, portal, user_id)
        url, body = iframe_request(sb, portal, user, app.installer_url or app.app_url)
    return post_page(sb, url, body)


def send_onappinstall(sb: Sandbox, portal: Portal) -> int:
    """§1.5: to the "Installation event handler URL" and to ONAPPINSTALL bindings, with the installing admin's
    tokens including refresh_token. Sent regardless of installFinish."""
    app = _registered(sb)
    with sb._locked():
        if portal.app is None:
            raise InstallError("the app is not installed on this portal")
        installer = portal.app.installed_by or portal.admin().id
        data = {
            "VERSION": str(portal.app.version),
            "ACTIVE": "Y",
            "INSTALLED": "Y" if portal.app.installed else "N",
            "LANGUAGE_ID": portal.lang,
        }
        variant = portal.event_auth or sb.event_auth
        if variant == "system":  # ONAPPINSTALL always carries the installer's tokens
            variant = "user"
        addr = sb.addressing()
        now = sb.clock.now()
        targets: list[tuple[str, int | None]] = []
        if app.install_event_url:
            targets.append((app.install_event_url, None))
        targets += [(b.handler, b.id) for b in portal.event_bindings if b.event == "ONAPPINSTALL"]
        for url, handler_id in targets:
            auth = auth_block(sb, portal, addr, variant=variant, user_id=installer, include_refresh=True)
            body = event_body("ONAPPINSTALL", data, auth, now, handler_id)
            sb.enqueue(Outgoing(portal.member_id, url, "ONAPPINSTALL", body, now + sb.event_delay))
        return len(targets)


def install_finish(sb: Sandbox, portal: Portal) -> None:
    """``BX24.installFinish()`` (§1.4): from now on events are delivered and app.info says INSTALLED."""
    with sb._locked():
        if portal.app is None:
            raise InstallError("the app is not installed on this portal")
        portal.app.installed = True


def install(sb: Sandbox, portal: Portal, user_id: int | None = None, *, finish: bool = True, event: bool = True) -> Any:
    """The whole flow: ONAPPINSTALL (if the app has an install handler or binds it), the installer page,
    then installFinish. Returns the installer page's response."""
    response = install_ui(sb, portal, user_id)
    if event:
        send_onappinstall(sb, portal)
    if finish:
        install_finish(sb, portal)
    return response


def uninstall(sb: Sandbox, portal: Portal, *, clean: bool = False) -> None:
    """§1.6: ONAPPUNINSTALL to its bindings with only application_token in auth (tokens already revoked),
    bindings and placements removed, app.option kept unless ``clean``."""
    with sb._locked():
        if portal.app is None:
            raise InstallError("the app is not installed on this portal")
        addr = sb.addressing()
        now = sb.clock.now()
        auth = system_auth(portal, addr)
        data = {"LANGUAGE_ID": portal.lang, "CLEAN": "1" if clean else "0"}
        bound = [b for b in portal.event_bindings if b.event == "ONAPPUNINSTALL"]
        sb.tokens.revoke_portal(portal.member_id, "uninstalled")
        portal.event_bindings.clear()
        portal.placements.clear()
        if clean:
            portal.options.clear()
        client_id = portal.app.client_id
        portal.app = None
        if portal.telephony is not None:
            telephony.on_app_uninstalled(portal, client_id)  # Bitrix24 deletes the app's external lines with it
        for binding in bound:
            body = event_body("ONAPPUNINSTALL", data, auth, now, binding.id)
            sb.enqueue(Outgoing(portal.member_id, binding.handler, "ONAPPUNINSTALL", body, now + sb.event_delay))


def reinstall(
    sb: Sandbox, portal: Portal, user_id: int | None = None, *, clean: bool = False, finish: bool = True
) -> Any:
    """Uninstall (if installed) and install again: a new application_token and new tokens (§1.6)."""
    if portal.app is not None:
        uninstall(sb, portal, clean=clean)
    return install(sb, portal, user_id, finish=finish)


def update_app(sb: Sandbox, portal: Portal, version: int | None = None, *, new_application_token: bool = True) -> None:
    """§1.6: ONAPPUPDATE (full auth, the updated application_token) to its binding, then every event binding
    is removed: the new version's installer must bind again."""
    with sb._locked():
        if portal.app is None:
            raise InstallError("the app is not installed on this portal")
        app = portal.app
        previous = app.version
        app.version = version if version is not None else previous + 1
        if new_application_token:
            app.application_token = new_secret()
        addr = sb.addressing()
        now = sb.clock.now()
        data = {"VERSION": str(app.version), "PREVIOUS_VERSION": str(previous), "LANGUAGE_ID": portal.lang}
        variant = portal.event_auth or sb.event_auth
        for binding in [b for b in portal.event_bindings if b.event == "ONAPPUPDATE"]:
            user = app.installed_by or portal.admin().id
            auth = auth_block(sb, portal, addr, variant=variant, user_id=user, include_refresh=sb.event_refresh_token)
            body = event_body("ONAPPUPDATE", data, auth, now, binding.id)
            sb.enqueue(Outgoing(portal.member_id, binding.handler, "ONAPPUPDATE", body, now + sb.event_delay))
        portal.event_bindings.clear()


def open_app(
    sb: Sandbox,
    portal: Portal,
    user_id: int | None = None,
    *,
    placement: str = "DEFAULT",
    options: dict[str, Any] | None = None,
    handler: str | None = None,
) -> Any:
    """A user opens the app page (PLACEMENT=DEFAULT) or a bound placement (e.g. CALL_CARD with
    ``call_card_options(...)``): the iframe POST of §1.3/§8."""
    app = _registered(sb)
    placement = placement.upper()
    with sb._locked():
        user = _user(portal, user_id, admin=False)
        if portal.app is None:
            raise InstallError("the app is not installed on this portal")
        if not portal.app.installed and not user.is_admin:
            raise InstallError("The application is not fully installed yet")
        if placement == "DEFAULT":
            url = app.app_url
        else:
            if not portal.app.installed:
                raise InstallError("widgets are hidden until installFinish")
            matches = [p for p in portal.placements if p.placement == placement and (handler is None or p.handler == handler)]
            if not matches:
                raise InstallError(f"no {placement} placement bound")
            url = matches[0].handler
        url, body = iframe_request(sb, portal, user, url, placement=placement, options=options)
    return post_page(sb, url, body)


def call_card_options(
    call_id: str,
    *,
    phone_number: str | None = None,
    line_number: str = "",
    line_name: str | None = None,
    crm_entity_type: str = "",
    crm_entity_id: int | str = 0,
    crm_bindings: list[dict[str, Any]] | None = None,
    crm_activity_id: int | None = None,
    direction: str = "incoming",
    state: str = "connected",
    call_list_mode: bool = False,
    uri: str | None = "/crm/",
) -> dict[str, Any]:
    """PLACEMENT_OPTIONS for CALL_CARD with its string quirks (§8): "undefined" activity, "true"/"false"."""
    options: dict[str, Any] = {"CALL_ID": call_id}
    if phone_number:
        options["PHONE_NUMBER"] = phone_number
    options["LINE_NUMBER"] = line_number
    options["LINE_NAME"] = line_name or line_number
    options["CRM_ENTITY_TYPE"] = crm_entity_type
    options["CRM_ENTITY_ID"] = str(crm_entity_id)
    if crm_bindings:
        options["CRM_BINDINGS"] = crm_bindings
    options["CRM_ACTIVITY_ID"] = "undefined" if crm_activity_id is None else str(crm_activity_id)
    options["CALL_DIRECTION"] = direction
    options["CALL_STATE"] = state
    options["CALL_LIST_MODE"] = "true" if call_list_mode else "false"
    if uri is not None:
        options["URI"] = uri
    return options
