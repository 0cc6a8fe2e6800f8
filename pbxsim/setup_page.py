"""The simulated PBX's own settings page for its Bitrix24 connector, as a PBX's admin web UI has one.

``GET /`` shows a form for what the connector's setup wizard hands out (the events URL and the signing
secret) and, for every connector paired so far, what the PBX hands back: its command (originate) URL and how
its recordings are downloaded. ``POST /connect`` takes the form: the PBX checks the secret by sending its
first signed request (``PUT …/lines``, declaring its line), and only keeps the pairing if the connector
accepted it. So a person, or a Marketplace moderator with their own portal, connects this PBX to the app
the way they would connect their real one: copy, paste, no terminal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from .client import PbxSimulator

if TYPE_CHECKING:
    from .server import SimServer

EVENTS_URL = re.compile(r"^(?P<base>https?://[^/\s]+(?:/[^\s]*?)?)/api/pbx/v1/connections/(?P<id>[^/\s]+)/events/?$")


@dataclass
class Pairing:
    connection_id: str
    app_url: str  # the connector's base URL, where the PBX API lives
    secret: str
    line_number: str
    line_name: str


class PairingRefused(ValueError):
    pass


def parse_form(body: bytes) -> tuple[str, str]:
    fields = parse_qs(body.decode("utf-8", errors="replace"))
    events_url = (fields.get("events_url") or [""])[0].strip()
    secret = (fields.get("secret") or [""])[0].strip()
    return events_url, secret


def pair(server: SimServer, events_url: str, secret: str, *, line_number: str, line_name: str,
         **options: Any) -> Pairing:
    """Check the pasted values with a signed ``PUT /lines``; on success the PBX serves this connector."""
    match = EVENTS_URL.match(events_url)
    if match is None:
        raise PairingRefused("The events URL should end with /api/pbx/v1/connections/<id>/events.")
    if not secret.startswith("whsec_"):
        raise PairingRefused("The signing secret starts with whsec_.")
    app_url, connection_id = match.group("base"), match.group("id")
    sim = PbxSimulator(app_url, connection_id, secret)
    try:
        sent = sim.put_lines([{"number": line_number, "name": line_name}])
    except Exception as exc:  # the connector is down or the URL is wrong: say so on the page
        raise PairingRefused(f"The connector did not answer: {exc}") from exc
    if sent.response.status in (401, 403):
        raise PairingRefused("The connector refused the signature: check the secret (copy it again).")
    if sent.response.status == 404:
        raise PairingRefused("The connector does not know this connection: check the events URL.")
    if sent.response.status >= 300:
        raise PairingRefused(f"The connector answered HTTP {sent.response.status}.")
    server.add_connection(connection_id, secret, mode="accept", app_url=app_url, line_number=line_number,
                          **options)
    pairing = Pairing(connection_id, app_url, secret, line_number, line_name)
    with server.state.lock:
        server.state.pairings[connection_id] = pairing
    return pairing


_STYLE = """body{font-family:system-ui,sans-serif;margin:0;background:#f3f5f7;color:#1f2933}
header{background:#263238;color:#fff;padding:14px 24px;font-size:18px}main{padding:24px;max-width:900px}
section{background:#fff;border:1px solid #d9e2ec;border-radius:8px;padding:16px 20px;margin-bottom:16px}
label{display:block;font-size:13px;margin:10px 0 4px}input[type=text]{width:100%;padding:8px;border:1px solid
#c9ccd0;border-radius:4px;font-family:ui-monospace,monospace;box-sizing:border-box}button{margin-top:12px;
padding:8px 16px;border:0;border-radius:4px;background:#1e88e5;color:#fff;font-size:14px;cursor:pointer}
.msg{padding:10px 14px;border-radius:6px;margin-bottom:16px}.ok{background:#e6f4ea}.bad{background:#fdecea}
code{font-size:13px;background:#eef2f4;padding:2px 6px;border-radius:4px;word-break:break-all}
dt{font-size:13px;color:#52606d;margin-top:10px}dd{margin:4px 0 0}"""


def page(server: SimServer, message: str = "", ok: bool = True) -> str:
    with server.state.lock:
        pairings = list(server.state.pairings.values())
    parts = [
        "<!doctype html><html><head><meta charset=utf-8><title>Demo PBX: Bitrix24 connector</title>",
        f"<style>{_STYLE}</style></head><body><header>Demo PBX · Bitrix24 connector</header><main>",
    ]
    if message:
        parts.append(f'<p class="msg {"ok" if ok else "bad"}" id=message>{escape(message)}</p>')
    parts.append(
        "<section><h2>Connect to Bitrix24</h2><p>Paste what the connector's setup wizard shows "
        "(<i>Connect the PBX</i> step).</p><form method=post action=/connect>"
        "<label for=events_url>Events URL</label><input type=text id=events_url name=events_url required>"
        "<label for=secret>Signing secret</label><input type=text id=secret name=secret required "
        "autocomplete=off><button id=connect>Connect</button></form></section>"
    )
    for p in pairings:
        parts.append(
            f'<section class=pairing data-connection="{escape(p.connection_id)}"><h2>Connected: '
            f"{escape(p.app_url)}</h2><p>Enter these in the wizard (<i>Enter what your PBX tells you</i>):</p>"
            f'<dl><dt>Command URL</dt><dd><code class=command-url>{escape(server.originate_url(p.connection_id))}'
            "</code></dd><dt>Recording downloads</dt><dd>No login needed</dd>"
            # The connector downloads recordings only from hosts listed for the connection.
            f"<dt>Recording host</dt><dd><code class=recording-host>"
            f"{escape(urlsplit(server.recording_base_url).hostname or '')}</code></dd>"
            f"<dt>External line</dt><dd><code>{escape(p.line_number)}</code> ({escape(p.line_name)})</dd></dl></section>"
        )
    parts.append("</main></body></html>")
    return "".join(parts)
