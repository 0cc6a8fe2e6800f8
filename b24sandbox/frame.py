"""The portal page that frames the app, as Bitrix24 renders it (server mode only: it needs a browser).

``GET /frame/?portal=<member_id>&user_id=<id>[&lang=ru]`` is a page on the sandbox's own origin with an
iframe named ``HOST|S|APP_SID`` in the served HTML and a hidden form POSTed into it: DOMAIN, PROTOCOL, LANG
and APP_SID in the query, the tokens, ``member_id``, ``status`` and ``PLACEMENT`` in the body. The page's
script (``frame_parent.js``) answers the JS SDK's postMessage protocol from the frame exactly as the
portal's ``BX.rest.AppLayout`` does: replies only where the portal replies, silence where it is silent.
What needs the portal's backend goes to ``POST /frame/call`` (init data, setInstall, setInstallFinish,
app and user options, refreshAuth). ``GET /frame/slider`` is the content of the side slider ``openPath``
opens (a user's profile, a CRM card).

The app is loaded from its installer URL while an administrator opens a portal where it is not yet
INSTALLED (``INSTALL: true``); ``setInstallFinish`` flips INSTALLED and the page reloads itself with
``install_finished=Y``, after which the app URL is loaded. A non-admin sees Bitrix24's "not fully
installed yet" notice instead of a frame until then.
"""

from __future__ import annotations

import json
import posixpath
import re
import secrets
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from b24sandbox.http import Request, Response, html_response, json_response, parse_params
from b24sandbox.install import InstallError, begin_install, iframe_request, install_finish, send_onappinstall

if TYPE_CHECKING:
    from b24sandbox.sandbox import Sandbox
    from b24sandbox.state import Portal, User

PARENT_SCRIPT = Path(__file__).with_name("frame_parent.js")
SESSION_LIMIT = 500  # page views remembered (a demo server runs for days)
# openPath: what the portal lets an app open in a slider
OPEN_PATH_ALLOWED = re.compile(
    r"^/(crm/(deal|lead|contact|company|type)|marketplace|company/personal/user/\d+|workgroups/group/\d+)/"
)
_CRM_PATH = re.compile(r"^/crm/(lead|contact|company|deal)/details/(\d+)/?$")
_USER_PATH = re.compile(r"^/company/personal/user/(\d+)/?$")


@dataclass
class FrameSession:
    """One render of the portal page: what its getInitData answers and whose tokens it holds."""

    sid: str  # APP_SID
    member_id: str
    user_id: int
    lang: str
    domain: str  # the portal page's host (with port): DOMAIN of the frame name and of getInitData
    protocol: int
    access_token: str
    refresh_token: str
    access_expires_at: float
    install: bool  # the installer URL was loaded
    first_run: bool
    app_origin: str
    slider: bool = False
    log: list[dict[str, Any]] = field(default_factory=list)


def _sessions(sb: Sandbox) -> dict[str, FrameSession]:
    sessions = getattr(sb, "frame_sessions", None)
    if sessions is None:
        sessions = sb.frame_sessions = {}  # type: ignore[attr-defined]
    return sessions


def _e(value: Any) -> str:
    return escape("" if value is None else str(value))


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def route(sb: Sandbox, request: Request) -> Response | None:
    """Answer ``/frame/...`` paths; None for anything else."""
    path = request.path.rstrip("/") or "/"
    if not (path == "/frame" or path.startswith("/frame/")):
        return None
    params, _ = parse_params(request)
    if path == "/frame" and request.method in ("GET", "HEAD"):
        return portal_page(sb, request, params)
    if path == "/frame/parent.js" and request.method in ("GET", "HEAD"):
        return Response(200, {"Content-Type": "text/javascript; charset=utf-8", "Cache-Control": "no-store"},
                        PARENT_SCRIPT.read_bytes())
    if path == "/frame/slider" and request.method in ("GET", "HEAD"):
        return slider_page(sb, params)
    if path == "/frame/call" and request.method == "POST":
        return call(sb, request)
    if path == "/frame/install" and request.method == "POST":
        return start_install(sb, params)
    return html_response(404, "<h1>Not found</h1>")


# ------------------------------------------------------------------------------------ the portal page


# The portal's own chrome in the viewer's language (the app's frame speaks for itself)
_CHROME = {
    "en": ("Sandbox home", "Applications", "CRM", "Telephony", "Employees"),
    "ru": ("Песочница", "Приложения", "CRM", "Телефония", "Сотрудники"),
}


def _page(title: str, body: str, *, portal: Portal | None = None, user: User | None = None,
          slider: bool = False, lang: str = "en") -> str:
    """The portal's chrome around the app. ``slider``: the app in Bitrix24's side slider over the dimmed
    portal page, as it opens from a link or the Marketplace (how the Marketplace wants its screenshots)."""
    who = f"{_e(user.name)} {_e(user.last_name)}" if user is not None else ""
    where = _e(portal.domain) if portal is not None else "Bitrix24"
    return (
        "<!doctype html><html><head><meta charset=utf-8>"
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body{' class=slider-view' if slider else ''}>"
        f'<header class="topbar"><span class="logo">Bitrix<b>24</b></span><span class="portal">{where}</span>'
        f'<span class="who" id="current-user">{who}</span></header>'
        '<div class="layout"><nav class="menu">'
        + "".join(
            f'<a href="/">{_e(label)}</a>' if i == 0 else f'<a class="active">{_e(label)}</a>' if i == 1 else f"<a>{_e(label)}</a>"
            for i, label in enumerate(_CHROME.get(lang, _CHROME["en"]))
        )
        + "</nav>"
        f'<main class="workarea"><h1 id="pagetitle">{_e(title)}</h1>{body}</main></div></body></html>'
    )


def _find_user(portal: Portal, value: Any) -> User | None:
    try:
        user_id = int(value) if value not in (None, "") else portal.admin().id
    except (TypeError, ValueError):
        return None
    user = portal.find_user(user_id=user_id)
    return user if user is not None and user.active and user.user_type == "employee" else None


def portal_page(sb: Sandbox, request: Request, params: dict[str, Any]) -> Response:
    if sb.app is None:
        return html_response(409, _page("Application", "<p>No app is registered in this sandbox.</p>"))
    try:
        portal = sb.portal(str(params.get("portal", "")))
    except KeyError:
        return html_response(404, _page("Application", "<p>No such portal.</p>"))
    user = _find_user(portal, params.get("user_id"))
    if user is None:
        return html_response(404, _page("Application", "<p>No such active employee.</p>", portal=portal))
    app = sb.app
    title = "Telephony connector"
    with sb._locked():
        if portal.app is None:
            return html_response(
                409,
                _page(title, "<p class=notice>The application is not installed on this portal.</p>", portal=portal,
                      user=user),
            )
        install = not portal.app.installed
        if install and not user.is_admin:
            # what Bitrix24 shows a regular user until the admin's installer has called installFinish
            notice = "The application is not fully installed yet. Please contact your Bitrix24 administrator."
            return html_response(200, _page(title, f"<p class=notice id=not-installed>{notice}</p>",
                                            portal=portal, user=user))
        url = (app.installer_url or app.app_url) if install else app.app_url
        sid = secrets.token_hex(16)
        lang = str(params.get("lang") or portal.lang)
        token = sb.tokens.issue(portal, user.id)
        action, body = iframe_request(sb, portal, user, url, token=token, app_sid=sid, lang=lang)
        protocol = 1 if request.scheme == "https" else 0
        session = FrameSession(
            sid=sid,
            member_id=portal.member_id,
            user_id=user.id,
            lang=lang,
            domain=request.netloc,
            protocol=protocol,
            access_token=token.access_token,
            refresh_token=token.refresh_token,
            access_expires_at=token.access_expires_at,
            install=install,
            first_run=(user.id, portal.app.version) not in portal.app.first_runs,
            app_origin=_origin(url),
            slider=params.get("view") == "slider",
        )
        sessions = _sessions(sb)
        sessions[sid] = session
        while len(sessions) > SESSION_LIMIT:
            sessions.pop(next(iter(sessions)))
    config = {
        "sid": sid,
        "appOrigin": session.app_origin,
        "callUrl": "/frame/call",
        "sliderUrl": "/frame/slider?" + urlencode({"portal": portal.member_id}),
        "users": [_picker_entry(u) for u in _employees(portal)],
    }
    # The name is in the served HTML: the SDK reads window.name, which must exist before the frame's
    # window does. The body fields go in the form, the query stays in the action URL.
    frame_name = f"{request.netloc}|{protocol}|{sid}"
    inputs = "".join(
        f'<input type="hidden" name="{_e(k)}" value="{_e(v)}">' for k, v in parse_qsl(body.decode("ascii"))
    )
    frame = (
        f'<div class="app-box"><iframe id="app-frame" name="{_e(frame_name)}" title="{_e(title)}"'
        '></iframe></div>'
        f'<form id="app-form" method="post" action="{_e(action)}" target="{_e(frame_name)}">{inputs}</form>'
        '<div id="user-picker" class="picker" hidden></div><div id="slider" class="slider" hidden></div>'
        '<details class="frame-log"><summary>Frame messages</summary><ol id="frame-log"></ol></details>'
        f'<script id="frame-config" type="application/json">{_json_for_html(config)}</script>'
        '<script src="/frame/parent.js"></script>'
    )
    page = _page(title, frame, portal=portal, user=user, slider=session.slider, lang=lang)
    return html_response(200, page, headers={"Cache-Control": "no-store"})


def _json_for_html(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _employees(portal: Portal) -> list[User]:
    users = [u for u in portal.users.values() if u.active and u.user_type == "employee"]
    return sorted(users, key=lambda u: (u.last_name, u.name, u.id))


def _picker_entry(user: User) -> dict[str, Any]:
    """What selectUser answers for one user: ``id`` is a string."""
    return {
        "id": str(user.id),
        "name": f"{user.name} {user.last_name}".strip(),
        "photo": "",
        "position": user.work_position,
        "url": f"/company/personal/user/{user.id}/",
        "sub": False,
        "sup": False,
    }


def start_install(sb: Sandbox, params: dict[str, Any]) -> Response:
    """The demo page's Install button: register the app on the portal, send ONAPPINSTALL, then show the
    portal page, which loads the installer (the app's setup wizard) in its frame."""
    try:
        portal = sb.portal(str(params.get("portal", "")))
        with sb._locked():
            user = begin_install(sb, portal, int(params["user_id"]) if params.get("user_id") else None)
        send_onappinstall(sb, portal)
    except (InstallError, KeyError, ValueError) as exc:
        from b24sandbox.http import redirect

        return redirect("/?" + urlencode({"msg": f"Refused: {exc}"}), status=303)
    from b24sandbox.http import redirect

    query = {"portal": portal.member_id, "user_id": str(user.id)}
    for name in ("lang", "view"):
        if params.get(name):
            query[name] = str(params[name])
    return redirect("/frame/?" + urlencode(query), status=303)


# ------------------------------------------------------------------------------------ the portal's backend


def call(sb: Sandbox, request: Request) -> Response:
    """``{sid, method, params}`` from the page's script -> ``{"reply": bool, "result": ...}``.

    ``reply: false`` means the portal sends nothing back (the SDK's promise stays pending or times out)."""
    try:
        data = json.loads(request.body.decode("utf-8") or "{}")
    except (UnicodeDecodeError, json.JSONDecodeError):
        return json_response(400, {"error": "bad JSON"})
    if not isinstance(data, dict):
        return json_response(400, {"error": "bad request"})
    session = _sessions(sb).get(str(data.get("sid") or ""))
    if session is None:
        return json_response(404, {"error": "unknown page view; reload the page"})
    method = str(data.get("method") or "")
    params = data.get("params")
    params = params if isinstance(params, dict) else {}
    handler = _BACKEND.get(method)
    if handler is None:
        return json_response(200, {"reply": False})
    with sb._locked():
        portal = sb.portal(session.member_id)
        reply, result = handler(sb, session, portal, params)
        session.log.append({"method": method, "params": params, "reply": reply})
    return json_response(200, {"reply": reply, "result": result})


def _empty_php_array(value: dict[str, Any]) -> Any:
    return value if value else []  # PHP renders an empty array as []


def _init_data(sb: Sandbox, s: FrameSession, portal: Portal, params: dict[str, Any]) -> tuple[bool, Any]:
    user = portal.find_user(user_id=s.user_id)
    assert user is not None
    data = {
        "DOMAIN": s.domain,
        "PROTOCOL": s.protocol,  # a number: BX24.js reads it by truthiness, "0" would mean https
        "LANG": s.lang,
        "PATH": "/rest",
        "AUTH_ID": s.access_token,
        "AUTH_EXPIRES": str(max(0, int(s.access_expires_at - sb.clock.now()))),
        "REFRESH_ID": s.refresh_token,
        "MEMBER_ID": portal.member_id,
        "IS_ADMIN": user.is_admin,
        "INSTALL": s.install,
        "FIRST_RUN": s.first_run,
        "USER_OPTIONS": _empty_php_array(portal.user_options.get(s.user_id, {})),
        "APP_OPTIONS": _empty_php_array(portal.options),
        "PLACEMENT": "DEFAULT",
        "PLACEMENT_OPTIONS": [],
    }
    s.first_run = False  # cleared for this page view once answered
    return True, data


def _set_install(sb: Sandbox, s: FrameSession, portal: Portal, params: dict[str, Any]) -> tuple[bool, Any]:
    if portal.app is not None and params.get("install"):
        portal.app.first_runs.add((s.user_id, portal.app.version))
    return True, params


def _set_install_finish(sb: Sandbox, s: FrameSession, portal: Portal, params: dict[str, Any]) -> tuple[bool, Any]:
    """The portal marks the app INSTALLED and reloads its own page; the frame gets no answer."""
    user = portal.find_user(user_id=s.user_id)
    if s.install and user is not None and user.is_admin and portal.app is not None:
        if params.get("value", True) is not False:
            install_finish(sb, portal)
    query = {"portal": portal.member_id, "user_id": str(s.user_id), "lang": s.lang, "install_finished": "Y"}
    if s.slider:
        query["view"] = "slider"
    return False, {"reload": "/frame/?" + urlencode(query)}


def _set_app_option(sb: Sandbox, s: FrameSession, portal: Portal, params: dict[str, Any]) -> tuple[bool, Any]:
    user = portal.find_user(user_id=s.user_id)
    if user is None or not user.is_admin or "name" not in params:
        return False, None  # non-admins get no reply at all
    # form-posted to the portal's backend: scalars come back as strings
    value = params.get("value")
    portal.options[str(params["name"])] = value if isinstance(value, dict | list) else str(value)
    return True, dict(portal.options)


def _set_user_option(sb: Sandbox, s: FrameSession, portal: Portal, params: dict[str, Any]) -> tuple[bool, Any]:
    if "name" not in params:
        return True, params
    portal.user_options.setdefault(s.user_id, {})[str(params["name"])] = params.get("value")
    return True, params


def _refresh_auth(sb: Sandbox, s: FrameSession, portal: Portal, params: dict[str, Any]) -> tuple[bool, Any]:
    if portal.app is None:
        return False, None  # the portal would alert(); the frame hears nothing
    token = sb.tokens.issue(portal, s.user_id)
    s.access_token, s.refresh_token, s.access_expires_at = token.access_token, token.refresh_token, token.access_expires_at
    return True, {
        "AUTH_ID": token.access_token,
        "AUTH_EXPIRES": str(int(sb.access_lifetime)),
        "REFRESH_ID": token.refresh_token,
    }


_BACKEND = {
    "getInitData": _init_data,
    "setInstall": _set_install,
    "setInstallFinish": _set_install_finish,
    "setAppOption": _set_app_option,
    "setUserOption": _set_user_option,
    "refreshAuth": _refresh_auth,
}


def session_log(sb: Sandbox, sid: str) -> list[dict[str, Any]]:
    """What the page's backend was asked during one page view (tests)."""
    session = _sessions(sb).get(sid)
    return list(session.log) if session else []


def sessions_for(sb: Sandbox, member_id: str) -> list[FrameSession]:
    return [s for s in _sessions(sb).values() if s.member_id == member_id]


# ------------------------------------------------------------------------------------ the slider


def normalize_open_path(path: str) -> str:
    """What the browser makes of b24jssdk's ``/crm/deal/../..`` prefix: the real path, no query."""
    only_path = path.split("?", 1)[0]
    return posixpath.normpath(only_path) + ("/" if only_path.endswith("/") else "")


def slider_page(sb: Sandbox, params: dict[str, Any]) -> Response:
    try:
        portal = sb.portal(str(params.get("portal", "")))
    except KeyError:
        return html_response(404, "<p>No such portal.</p>")
    path = normalize_open_path(str(params.get("path") or "/"))
    content = "<p>This page is not part of the sandbox.</p>"
    user_match = _USER_PATH.match(path)
    crm_match = _CRM_PATH.match(path)
    if user_match:
        user = portal.find_user(user_id=int(user_match.group(1)))
        if user is not None:
            content = (
                f'<h2 id="profile-name">{_e(user.name)} {_e(user.last_name)}</h2>'
                f"<p>{_e(user.work_position)}</p><table>"
                f"<tr><th>Extension</th><td>{_e(user.uf_phone_inner or '—')}</td></tr>"
                f"<tr><th>Work phone</th><td>{_e(user.work_phone or '—')}</td></tr>"
                f"<tr><th>E-mail</th><td>{_e(user.email)}</td></tr></table>"
            )
    elif crm_match and portal.crm is not None:
        entity = _crm_entity(portal, crm_match.group(1), int(crm_match.group(2)))
        if entity is not None:
            phones = ", ".join(p.value for p in entity.phones)
            content = (
                f'<h2 id="crm-title">{_e(entity.display_name)}</h2>'
                f"<p>{_e(crm_match.group(1).title())} #{_e(crm_match.group(2))}</p><p>{_e(phones)}</p>"
            )
    return html_response(
        200,
        f"<!doctype html><html><head><meta charset=utf-8><style>{_STYLE}</style></head>"
        f'<body class="slider-body" data-path="{_e(path)}">{content}</body></html>',
    )


def _crm_entity(portal: Portal, kind: str, entity_id: int) -> Any:
    try:
        return portal.crm.get(kind.upper(), entity_id)
    except ValueError:  # deals are not kept by the sandbox's CRM
        return None


def frame_links(portal: Portal) -> dict[str, str]:
    """Links for the demo page: the app framed as the admin and as a regular employee."""
    links = {"admin": f"/frame/?portal={quote(portal.member_id)}&user_id={portal.admin().id}"}
    regular = next((u for u in _employees(portal) if not u.is_admin), None)
    if regular is not None:
        links["user"] = f"/frame/?portal={quote(portal.member_id)}&user_id={regular.id}"
    return links


_STYLE = """
*{box-sizing:border-box}body{margin:0;font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;
color:#333;background:#eef2f4}
.topbar{height:56px;display:flex;align-items:center;gap:24px;padding:0 20px;background:#1f7ec2;color:#fff}
.logo{font-size:20px;font-weight:600}.logo b{color:#2fc6f6}.portal{opacity:.85}.who{margin-left:auto}
.layout{display:flex;align-items:flex-start}
.menu{width:200px;flex:none;padding:16px 0;display:flex;flex-direction:column}
.menu a{padding:8px 20px;color:#525c69;text-decoration:none;font-size:14px}.menu a.active{background:#fff;
font-weight:600}
.workarea{flex:1;min-width:0;padding:12px 20px 20px 0}
#pagetitle{font-size:24px;font-weight:300;margin:6px 0 12px}
.app-box{background:#fff;border-radius:10px;overflow:hidden}
#app-frame{display:block;width:100%;height:200px;border:0}
.notice{background:#fff;padding:20px;border-radius:10px}
.picker,.slider{position:fixed;inset:0;background:rgba(0,0,0,.35);display:flex;z-index:10}
.picker[hidden],.slider[hidden]{display:none}
.picker-box{margin:auto;background:#fff;border-radius:10px;width:420px;max-height:80vh;display:flex;
flex-direction:column;padding:16px}
.picker-box input[type=search]{padding:8px;border:1px solid #c9ccd0;border-radius:4px;margin-bottom:8px}
.picker-list{overflow:auto;flex:1;list-style:none;margin:0;padding:0}
.picker-list li{padding:6px 8px;cursor:pointer;border-radius:4px;display:flex;gap:8px;align-items:center}
.picker-list li:hover{background:#eef2f4}.picker-list small{color:#828b95}
.picker-actions{display:flex;gap:8px;justify-content:flex-end;margin-top:8px}
.slider-panel{margin-left:auto;width:min(900px,90vw);background:#fff;height:100%;display:flex;
flex-direction:column}
.slider-panel iframe{flex:1;border:0}
.slider-close{align-self:flex-start;margin:8px}
.slider-body{background:#fff;padding:24px}
.frame-log{margin-top:12px;font-size:12px;color:#525c69}
table{border-collapse:collapse}th,td{text-align:left;padding:4px 12px 4px 0}
.slider-view::before{content:"";position:fixed;inset:0;background:rgba(0,0,0,.45);z-index:1}
.slider-view .workarea{position:fixed;top:0;right:0;bottom:0;width:calc(100% - 90px);z-index:2;overflow:auto;
padding:14px 28px 28px;background:#eef2f4;box-shadow:-6px 0 18px rgba(0,0,0,.25)}
.slider-view .frame-log{display:none}
"""
