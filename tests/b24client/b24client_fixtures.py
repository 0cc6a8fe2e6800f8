"""Shared builders for the b24client tests: documented Bitrix24 payloads and a client on a memory store."""

from __future__ import annotations

import json
from typing import Any

from b24client import Bitrix24Client, Credentials, OAuthApp, coordination
from b24client.memory_store import MemoryTokenStore

ENDPOINT = "https://acme.bitrix24.com/rest/"
OAUTH_SERVER = "https://oauth.bitrix.info"
TOKEN_URL = f"{OAUTH_SERVER}/oauth/token/"
MEMBER_ID = "a223c6b9410f85df78e9377d6c4f7213"
CLIENT_ID = "local.5f1e2d3c4b5a69.12345678"
CLIENT_SECRET = "Zq8SecretNeverLogged0123456789abcdefABCDEF"

# docs/bitrix24-contract.md §2.2
TIME = {"start": 1773130778, "finish": 1773130779.120838, "duration": 1.1208, "processing": 1,
        "date_start": "2026-03-10T11:19:38+03:00", "date_finish": "2026-03-10T11:19:39+03:00",
        "operating_reset_at": 1773131378, "operating": 0.2218}


# What DNS answers for the hosts these tests redirect to (the client checks before it follows a rename).
DNS = {
    "acme.bitrix24.com": ["93.184.215.14"], "newname.bitrix24.com": ["93.184.215.15"],
    "b.bitrix24.com": ["93.184.215.16"], "crm.example-company.de": ["2a00:1450:4001:82a::200e"],
    "intranet.example-company.de": ["10.0.0.5"], "metadata.example-company.de": ["93.184.215.17", "169.254.169.254"],
    "nat64.example-company.de": ["64:ff9b::7f00:1"],
}


def fake_dns(host: str, port: int) -> list[str]:
    if host not in DNS:
        raise OSError(f"{host}: Name or service not known")
    return DNS[host]


def make_creds(**overrides: Any) -> Credentials:
    values: dict[str, Any] = dict(
        access_token="access-token-1", refresh_token="refresh-token-1", expires_at=None,
        client_endpoint=ENDPOINT, server_endpoint=f"{OAUTH_SERVER}/rest/", member_id=MEMBER_ID,
        user_id=1, scope=("telephony", "crm", "user"),
    )
    values.update(overrides)
    return Credentials(**values)


def make_oauth(**kwargs: Any) -> OAuthApp:
    return OAuthApp(CLIENT_ID, CLIENT_SECRET, OAUTH_SERVER, allowed_hosts={"oauth.bitrix.info"}, **kwargs)


def make_client(store: MemoryTokenStore | None = None, **kwargs: Any) -> tuple[Bitrix24Client, MemoryTokenStore, list]:
    store = store or MemoryTokenStore(make_creds())
    records: list[dict] = []
    kwargs.setdefault("oauth", make_oauth())
    kwargs.setdefault("limiter", coordination.MemoryBackend())
    kwargs.setdefault("recorder", records.append)
    kwargs.setdefault("resolver", fake_dns)
    return Bitrix24Client(store, **kwargs), store, records


def token_response(n: int, **overrides: Any) -> dict:
    """§1.8 refresh response (note: ``domain`` is the OAuth server, not the portal)."""
    body = {"access_token": f"access-token-{n}", "client_endpoint": ENDPOINT, "domain": "oauth.bitrix.info",
            "expires": 1780319382, "expires_in": 3600, "member_id": MEMBER_ID, "refresh_token": f"refresh-token-{n}",
            "scope": "telephony,crm,user", "server_endpoint": f"{OAUTH_SERVER}/rest/", "status": "L", "user_id": 67}
    body.update(overrides)
    return body


def body_of(call: Any) -> dict:
    return json.loads(call.request.body)
