"""What people do on a portal that reaches the app as telephony events (docs/bitrix24-contract.md §6.1,
§6.2)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from b24sandbox.install import InstallError

if TYPE_CHECKING:
    from b24sandbox.sandbox import Sandbox
    from b24sandbox.state import Portal


def _crm_pair(portal: Portal, phone: str, crm: Any) -> tuple[str | None, int | None]:
    """``crm`` may be ("CONTACT", 12), an entity with entity_type/id, or None to look the number up."""
    if crm is None:
        if portal.crm is None:
            return None, None
        found = portal.crm.find_by_phone(phone)
        return (found[0].entity_type, found[0].id) if found else (None, None)
    if isinstance(crm, tuple | list):
        return str(crm[0]).upper(), int(crm[1])
    return crm.entity_type, int(crm.id)


def click_to_call(
    sb: Sandbox,
    portal: Portal,
    user_id: int,
    phone: str,
    *,
    line: str | None = None,
    crm: Any = None,
    call_list_id: int = 0,
    is_mobile: bool = False,
) -> str:
    """A user clicks a phone number in CRM: Bitrix24 pre-registers the call (TYPE 1, no EXTERNAL_CALL_ID),
    then sends ONEXTERNALCALLSTART with its CALL_ID to the app's bindings. Returns the CALL_ID."""
    from b24sandbox import telephony

    with sb._locked():
        user = portal.find_user(user_id=user_id)
        if user is None or not user.active:
            raise InstallError(f"no active user {user_id}")
        if portal.app is None:
            raise InstallError("the app is not installed: Bitrix24 would dial with its own telephony")
        if not portal.app_is_default_line:
            raise InstallError("the app is not the default outgoing line: no ONEXTERNALCALLSTART")
        crm_type, crm_id = _crm_pair(portal, phone, crm)
        line_number = line if line is not None else ""
        call_id = telephony.preregister_click_call(
            portal,
            user_id=user.id,
            phone_number=phone,
            line_number=line_number,
            crm_entity_type=crm_type,
            crm_entity_id=crm_id,
            call_list_id=call_list_id or None,
            now=sb.clock.now(),
            sandbox=sb,
        )
        data = telephony.click_call_event_data(portal, call_id, phone_number=phone, is_mobile=is_mobile)
        sb.fire_event(portal, "ONEXTERNALCALLSTART", data, user_id=user.id)
        return call_id


def submit_callback_form(
    sb: Sandbox,
    portal: Portal,
    phone: str,
    *,
    text: str = "",
    voice: str = "",
    line: str | None = None,
    crm: Any = None,
) -> dict[str, Any]:
    """A visitor submits a CRM callback form whose callback line is this app: ONEXTERNALCALLBACKSTART with no
    CALL_ID and no USER_ID (§6.2). No user triggered it, so the auth block carries no user tokens unless the
    binding names an ``auth_type`` user. Returns the event's data."""
    with sb._locked():
        if portal.app is None:
            raise InstallError("the app is not installed")
        crm_type, crm_id = _crm_pair(portal, phone, crm)
        if crm_type is None and portal.crm is not None:
            # the form creates a lead for an unknown visitor
            lead = portal.crm.add_lead(f"Callback request {phone}", phones=[phone], assigned_by_id=portal.admin().id,
                                       source_id="CALLBACK")
            crm_type, crm_id = lead.entity_type, lead.id
        data = {
            "PHONE_NUMBER": phone,
            "TEXT": text,
            "VOICE": voice,
            "CRM_ENTITY_TYPE": crm_type or "LEAD",
            "CRM_ENTITY_ID": crm_id or 0,
            "LINE_NUMBER": line if line is not None else "",
        }
        sb.fire_event(portal, "ONEXTERNALCALLBACKSTART", data, user_id=None)
        return data
