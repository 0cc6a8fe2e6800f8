"""The PBX side of the PBX API: signed requests to the connector, as a real PBX sends them."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

import requests

from . import signing


@dataclass
class SimResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class Transport(Protocol):
    def __call__(self, method: str, url: str, headers: dict[str, str], body: bytes) -> SimResponse: ...


class RequestsTransport:
    """Real HTTP with ``requests``."""

    def __init__(self, session: requests.Session | None = None, timeout: float = 10.0) -> None:
        self.session = session or requests.Session()
        self.timeout = timeout

    def __call__(self, method: str, url: str, headers: dict[str, str], body: bytes) -> SimResponse:
        response = self.session.request(method, url, headers=headers, data=body, timeout=self.timeout)
        return SimResponse(response.status_code, dict(response.headers), response.content)


@dataclass
class SentRequest:
    """What the simulator sent and what came back (for reports and tests)."""

    method: str
    path: str
    webhook_id: str
    body: bytes
    response: SimResponse
    events: list[dict] = field(default_factory=list)
    sent_at: float = 0.0
    duration_s: float = 0.0


class PbxSimulator:
    """One PBX connection: ``PbxSimulator("http://127.0.0.1:8000", "<connection id>", "whsec_…")``.

    ``secret`` may be a list (a PBX mid-rotation signs with both). ``transport`` defaults to
    real HTTP; tests pass one that calls the app in-process.
    """

    def __init__(
        self,
        base_url: str,
        connection_id: str,
        secret: str | Sequence[str],
        *,
        transport: Transport | None = None,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.connection_id = connection_id
        self.secrets = [secret] if isinstance(secret, str) else list(secret)
        self.transport = transport or RequestsTransport(timeout=timeout)
        self.clock = clock
        self.sent: list[SentRequest] = []

    def path(self, suffix: str) -> str:
        return f"/api/pbx/v1/connections/{quote(self.connection_id, safe='')}/{suffix}"

    def request(
        self,
        method: str,
        suffix: str,
        body: bytes,
        *,
        content_type: str = "application/json",
        webhook_id: str | None = None,
        timestamp: int | None = None,
        secrets: Sequence[str | bytes] | None = None,
        sign: bool = True,
        headers: dict[str, str] | None = None,
        events: list[dict] | None = None,
    ) -> SentRequest:
        """A signed request; every knob a misbehaving PBX could turn is a parameter."""
        webhook_id = webhook_id or f"msg_{uuid.uuid4().hex}"
        all_headers = {"Content-Type": content_type}
        if sign:
            all_headers.update(
                signing.sign_headers(
                    self.secrets if secrets is None else secrets,
                    body,
                    webhook_id=webhook_id,
                    timestamp=int(self.clock()) if timestamp is None else timestamp,
                )
            )
        all_headers.update(headers or {})
        path = self.path(suffix)
        started = time.monotonic()
        response = self.transport(method, self.base_url + path, all_headers, body)
        sent = SentRequest(
            method, path, webhook_id, body, response, list(events or []), self.clock(), time.monotonic() - started
        )
        self.sent.append(sent)
        return sent

    def send_events(self, events: dict | list[dict], **kwargs: Any) -> SentRequest:
        """One event (sent as an object) or a list (sent as an array, a batch)."""
        body = json.dumps(events, ensure_ascii=False).encode()
        listed = events if isinstance(events, list) else [events]
        return self.request("POST", "events", body, events=listed, **kwargs)

    def upload_recording(
        self,
        call_id: str,
        audio: bytes,
        *,
        content_type: str = "audio/wav",
        multipart: bool = False,
        filename: str | None = None,
        **kwargs: Any,
    ) -> SentRequest:
        filename = filename or f"{call_id}.wav"
        suffix = f"calls/{quote(call_id, safe='')}/recording"
        if not multipart:
            headers = {"Content-Disposition": f'attachment; filename="{filename}"', **kwargs.pop("headers", {})}
            return self.request("POST", suffix, audio, content_type=content_type, headers=headers, **kwargs)
        boundary = f"pbxsim-{uuid.uuid4().hex}"
        body = (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        ).encode() + audio + f"\r\n--{boundary}--\r\n".encode()
        return self.request("POST", suffix, body, content_type=f"multipart/form-data; boundary={boundary}", **kwargs)

    def put_lines(self, lines: list[dict], **kwargs: Any) -> SentRequest:
        return self.request("PUT", "lines", json.dumps(lines).encode(), **kwargs)

    def route(self, client_number: str, line_number: str, **kwargs: Any) -> SentRequest:
        body = json.dumps({"client_number": client_number, "line_number": line_number}).encode()
        return self.request("POST", "route", body, **kwargs)
