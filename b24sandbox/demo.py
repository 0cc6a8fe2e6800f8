"""The demo page (server mode, ``/``): what every portal holds, plus the things a person does on a portal —
install the app, click a phone number, submit a callback form. Plain server-rendered HTML."""

from __future__ import annotations

import json
from datetime import datetime
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from b24sandbox import frame
from b24sandbox.http import Request, Response, html_response, parse_params, redirect
from b24sandbox.install import InstallError, iframe_request

if TYPE_CHECKING:
    from b24sandbox.sandbox import Sandbox
    from b24sandbox.state import Portal

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1f2933;background:#f7f9fb}
h1{font-size:1.4rem}h2{font-size:1.15rem;margin-top:2rem}h3{font-size:1rem;margin:1rem 0 .3rem}
section.portal{background:#fff;border:1px solid #d9e2ec;border-radius:6px;padding:1rem;margin-bottom:1.5rem}
table{border-collapse:collapse;font-size:.82rem;width:100%}td,th{border:1px solid #d9e2ec;padding:3px 6px;
text-align:left;vertical-align:top}th{background:#eef2f7}form.inline{display:inline-block;margin:.2rem .5rem .2rem 0}
fieldset{border:1px solid #d9e2ec;margin:.5rem 0;padding:.5rem}.msg{background:#fff3c4;padding:.5rem}
.ok{color:#18794e}.bad{color:#c62828}code{font-size:.8rem}iframe{width:100%;height:560px;border:0}
"""


def _e(value: Any) -> str:
    return escape("" if value is None else str(value))


def _ts(value: float | None) -> str:
    return "" if value is None else datetime.fromtimestamp(value).strftime("%H:%M:%S")


def route(sb: Sandbox, request: Request) -> Response:
    framed = frame.route(sb, request)
    if framed is not None:
        return framed
    path = request.path.rstrip("/") or "/"
    if request.method in ("GET", "HEAD"):
        params, _ = parse_params(request)
        if path == "/":
            return html_response(200, index_page(sb, str(params.get("msg") or "")))
        if path == "/favicon.ico":  # browsers ask; a 404 would be a console error on every page
            return Response(204)
        if path == "/demo/status":
            return html_response(200, status_page(sb, sb.portal(str(params.get("portal", "")))))
        if path == "/demo/open":
            return _open_app_form(sb, params)
        if path == "/demo/snapshot.json":
            from b24sandbox.http import json_response

            return json_response(200, sb.snapshot(sb.portal(str(params.get("portal", "")))))
        return html_response(404, "<h1>Not found</h1>")
    if request.method == "POST" and path.startswith("/demo/"):
        params, _ = parse_params(request)
        try:
            message = _action(sb, path[len("/demo/") :], params)
        except (InstallError, KeyError, ValueError) as exc:
            message = f"Refused: {exc}"
        return redirect("/?" + urlencode({"msg": message}), status=303)
    return html_response(405, "<h1>Method not allowed</h1>")


def _action(sb: Sandbox, action: str, params: dict[str, Any]) -> str:
    if action == "create-portal":
        portal = sb.create_portal(str(params["domain"]), plan=str(params.get("plan") or "standard"), seed="demo")
        return f"Portal {portal.domain} created"
    portal = sb.portal(str(params.get("portal", "")))
    if action == "install":
        response = sb.install(portal)
        return f"Installed on {portal.domain}; installer page answered {_status(response)}"
    if action == "install-ui":
        response = sb.install_ui(portal)
        return f"Installer page answered {_status(response)}; installFinish still pending"
    if action == "finish":
        sb.install_finish(portal)
        return "installFinish: events are delivered from now on"
    if action == "uninstall":
        sb.uninstall(portal, clean=params.get("clean") == "1")
        return f"Uninstalled from {portal.domain}"
    if action == "update":
        sb.update_app(portal)
        return "App updated: ONAPPUPDATE sent, bindings removed"
    if action == "click":
        call_id = sb.click_to_call(
            portal, int(params["user_id"]), str(params["phone"]).strip(), line=str(params.get("line") or "")
        )
        return f"Clicked {params['phone']}: ONEXTERNALCALLSTART with CALL_ID {call_id}"
    if action == "callback":
        sb.submit_callback_form(
            portal,
            str(params["phone"]).strip(),
            text=str(params.get("text") or ""),
            voice=str(params.get("voice") or ""),
            line=str(params.get("line") or ""),
        )
        return f"Callback form submitted for {params['phone']}: ONEXTERNALCALLBACKSTART sent"
    if action == "limits":
        sb.set_limits(portal, enabled=params.get("enabled") == "1")
        return f"Rate limit {'on' if portal.limits.enabled else 'off'} for {portal.domain}"
    raise ValueError(f"unknown action {action}")


def _status(response: Any) -> str:
    from b24sandbox.events import status_of

    return str(status_of(response))


def _open_app_form(sb: Sandbox, params: dict[str, Any]) -> Response:
    """What Bitrix24's page does for an app frame: an auto-submitting POST with the fields of
    docs/bitrix24-contract.md §1.3."""
    portal = sb.portal(str(params.get("portal", "")))
    if sb.app is None or portal.app is None:
        return html_response(409, "<p>The app is not installed on this portal.</p>")
    with sb._locked():
        user = portal.find_user(user_id=int(params.get("user_id") or portal.admin().id))
        if user is None:
            return html_response(404, "<p>No such user.</p>")
        url, body = iframe_request(sb, portal, user, sb.app.app_url)
    from urllib.parse import parse_qsl

    inputs = "".join(
        f'<input type="hidden" name="{_e(k)}" value="{_e(v)}">' for k, v in parse_qsl(body.decode("ascii"))
    )
    return html_response(
        200,
        f"<!doctype html><title>Opening app</title><form method=post action=\"{_e(url)}\">{inputs}"
        "<noscript><button>Open the app</button></noscript></form>"
        "<script>document.forms[0].submit()</script>",
    )


def index_page(sb: Sandbox, message: str = "") -> str:
    app = sb.app
    parts = [
        "<!doctype html><html><head><meta charset=utf-8><title>Bitrix24 sandbox</title>",
        f"<style>{_STYLE}</style></head><body><h1>Bitrix24 sandbox</h1>",
    ]
    if message:
        parts.append(f'<p class="msg">{_e(message)}</p>')
    parts.append(f"<p>OAuth server: <code>{_e(sb.oauth_url)}/</code>")
    if app is not None:
        parts.append(
            f" · app <code>{_e(app.client_id)}</code> at <code>{_e(app.app_url)}</code>"
            f" (installer <code>{_e(app.installer_url or app.app_url)}</code>)"
        )
    parts.append("</p>")
    pbx_url = getattr(sb, "demo_pbx_url", None)
    if pbx_url:
        parts.append(
            f'<p>Demo PBX: <a href="{_e(pbx_url)}" target=_blank id=demo-pbx>its settings page</a> takes the events URL '
            "and secret the app's setup wizard shows, and gives back its command URL.</p>"
        )
    for portal in sb.portals.values():
        parts.append(_portal_section(sb, portal))
    parts.append(
        '<h2>New portal</h2><form method=post action="/demo/create-portal" class=inline>'
        '<input name=domain placeholder="new.bitrix24.test" required> '
        "<select name=plan><option>standard</option><option>enterprise</option></select> "
        "<button>Create (with demo data)</button></form></body></html>"
    )
    return "".join(parts)


def _hidden_portal(portal: Portal) -> str:
    return f'<input type=hidden name=portal value="{_e(portal.member_id)}">'


def _portal_section(sb: Sandbox, portal: Portal) -> str:
    app = portal.app
    state = "not installed" if app is None else ("installed" if app.installed else "installing (installFinish pending)")
    hidden = _hidden_portal(portal)
    buttons = []
    lang_select = "<select name=lang>" + "".join(
        f'<option value="{code}"{" selected" if code == portal.lang else ""}>{label}</option>'
        for code, label in (("en", "English"), ("ru", "Русский"))
    ) + "</select>"
    if app is None:
        buttons.append(
            f'<form method=post action="/frame/install" class=inline>{hidden}{lang_select} '
            "<button>Install</button></form>"
        )
        buttons.append(
            f'<form method=post action="/demo/install" class=inline>{hidden}'
            "<button>Install without the app's page</button></form>"
        )
        buttons.append(
            f'<form method=post action="/demo/install-ui" class=inline>{hidden}'
            "<button>POST the installer only</button></form>"
        )
    else:
        if not app.installed:
            buttons.append(
                f'<form method=post action="/demo/finish" class=inline>{hidden}<button>installFinish</button></form>'
            )
        links = frame.frame_links(portal)
        buttons.append(f'<a class=open-app href="{_e(links["admin"])}">Open app as admin</a> ')
        buttons.append(f'<a class=open-app href="{_e(links["admin"])}&amp;lang=ru">(по-русски)</a> ')
        if "user" in links:
            buttons.append(f'<a class=open-app href="{_e(links["user"])}">Open app as a user</a> ')
        buttons.append(f'<a href="/demo/open?portal={quote(portal.member_id)}" target=_blank>raw app POST</a> ')
        buttons.append(f'<form method=post action="/demo/update" class=inline>{hidden}<button>Update app</button></form>')
        buttons.append(
            f'<form method=post action="/demo/uninstall" class=inline>{hidden}'
            "<label><input type=checkbox name=clean value=1> clean</label> <button>Uninstall</button></form>"
        )
    users = [u for u in sorted(portal.users.values(), key=lambda u: u.id) if u.active and u.user_type == "employee"]
    user_options = "".join(
        f'<option value="{u.id}">{_e(u.name)} {_e(u.last_name)} (ext {_e(u.uf_phone_inner or "none")})</option>'
        for u in users
    )
    phones = []
    if portal.crm is not None:
        for entity in portal.crm.entities()[:80]:
            for phone in entity.phones:
                phones.append(f'<option value="{_e(phone.value)}">{_e(entity.display_name)}</option>')
    lines = []
    if portal.telephony is not None:
        lines = [line.number for line in portal.telephony.lines.values()]
    line_options = '<option value="">(default)</option>' + "".join(
        f'<option value="{_e(n)}">{_e(n)}</option>' for n in lines
    )
    return (
        f'<section class=portal><h2>{_e(portal.domain)} <small>({_e(portal.plan)}, member_id '
        f"<code>{_e(portal.member_id)}</code>)</small></h2>"
        f"<p>REST: <code>{_e(sb.addressing().client_endpoint(portal.domain))}</code> · app: <b>{_e(state)}</b></p>"
        f"<div>{''.join(buttons)}</div>"
        f'<fieldset><legend>Click a phone number (click-to-call)</legend><form method=post action="/demo/click">'
        f"{hidden}<select name=user_id>{user_options}</select> "
        f'<input name=phone list="phones-{_e(portal.member_id)}" placeholder="+7 (495) 123-45-67" required> '
        f"<select name=line>{line_options}</select> <button>Call</button></form></fieldset>"
        f'<datalist id="phones-{_e(portal.member_id)}">{"".join(phones)}</datalist>'
        f'<fieldset><legend>Submit a CRM callback form</legend><form method=post action="/demo/callback">{hidden}'
        '<input name=phone placeholder="+7 916 000-00-00" required> <input name=text placeholder="Text for the agent"> '
        '<input name=voice placeholder="voice id" value="ruinternalfemale"> '
        f"<select name=line>{line_options}</select> <button>Request a callback</button></form></fieldset>"
        f'<iframe src="/demo/status?portal={quote(portal.member_id)}" title="state of {_e(portal.domain)}"></iframe>'
        "</section>"
    )


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    if not rows:
        return "<p><i>none</i></p>"
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def status_page(sb: Sandbox, portal: Portal) -> str:
    snap = sb.snapshot(portal)
    tel = snap.get("telephony") or {}
    calls = list(reversed(tel.get("calls", [])))[:30]
    call_rows = [
        [
            c.get("call_id"),
            {1: "outgoing", 2: "incoming", 3: "incoming (redirect)", 4: "callback", 5: "info"}.get(c.get("type"), c.get("type")),
            c.get("via"),
            c.get("user_id"),
            c.get("phone_number"),
            c.get("line_number"),
            "finished" if c.get("finished") else "in progress",
            c.get("status_code") or "",
            c.get("duration") if c.get("duration") is not None else "",
            ", ".join(str(u) for u in c.get("visible_to", [])),
            (c.get("recording") or {}).get("filename", "") if c.get("recording") else "",
            f"{c.get('crm_entity_type') or ''} {c.get('crm_entity_id') or ''}",
        ]
        for c in calls
    ]
    delivery_rows = [
        [_ts(d["at"]), d["event"], d["url"], d["status"] if d["status"] is not None else "", d["error"] or "ok"]
        for d in reversed(snap["deliveries"][-20:])
    ]
    log_rows = [
        [_ts(e.get("at")), e.get("method"), e.get("status"), e.get("error", ""), e.get("user_id", ""),
         json.dumps(e.get("params", {}), ensure_ascii=False)[:160]]
        for e in reversed(snap["request_log"][-25:])
    ]
    limits = snap["limits"]
    return (
        "<!doctype html><html><head><meta charset=utf-8><meta http-equiv=refresh content=2>"
        f"<style>{_STYLE}</style></head><body>"
        f"<h3>Calls</h3>{_table(['CALL_ID', 'type', 'via', 'user', 'phone', 'line', 'state', 'status', 'duration', 'card visible to', 'recording', 'CRM'], call_rows)}"
        f"<h3>Lines</h3>{_table(['id', 'number', 'name', 'CRM auto-create'], [[x['id'], x['number'], x['name'], x['crm_auto_create']] for x in tel.get('lines', [])])}"
        f"<h3>Event bindings</h3>{_table(['id', 'event', 'handler', 'auth_type'], [[b['id'], b['event'], b['handler'], b['auth_type']] for b in snap['event_bindings']])}"
        f"<h3>Placements</h3>{_table(['placement', 'handler', 'title'], [[p['placement'], p['handler'], p['title']] for p in snap['placements']])}"
        f"<h3>Event deliveries (latest first, never retried)</h3>{_table(['at', 'event', 'handler', 'HTTP', 'outcome'], delivery_rows)}"
        f"<h3>REST requests (latest first)</h3>{_table(['at', 'method', 'HTTP', 'error', 'user', 'params'], log_rows)}"
        f"<p>Rate limit: {'on' if limits['enabled'] else 'off'}, bucket {limits['level']}/{limits['capacity']} "
        f"draining {limits['drain']}/s</p></body></html>"
    )
