"""The PBX's own HTTP side: the originate endpoint and recordings, on stdlib ``http.server``.

* ``POST /originate/{connection_id}``: verifies the connector's Standard Webhooks signature
  (401 otherwise), records the command, then answers as configured: ``accept`` (202, and if an
  app URL is set, plays an ``originate_<outcome>`` call echoing ``request_id`` as
  ``origin_request_id``), ``refuse`` (a 4xx with a reason), ``error`` (a 5xx) or ``timeout``
  (holds the request open longer than any sane client waits). A command repeated with the same
  ``request_id`` is answered the same way but places no second call. A ``test`` command gets 200
  in ``accept`` mode and places no call (the other modes answer it as they answer any command).
* ``GET|HEAD /recordings/{name}.wav?seconds=N&tone=Hz``: a valid WAV streamed with its
  Content-Length; optional Basic or Bearer auth, first-N-requests failures and a slow start.
* ``GET /`` and ``POST /connect``: the PBX's settings page for its Bitrix24 connector
  (``pbxsim.setup_page``), where a person pastes the events URL and secret the connector's wizard shows.
"""

from __future__ import annotations

import base64
import hmac
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from . import setup_page, signing
from .client import PbxSimulator
from .scenarios import PBX_LINE, ScenarioParams, build, play
from .wav import TONES_HZ, iter_wav, wav_size

ORIGINATE_MODES = ("accept", "refuse", "error", "timeout")
OUTCOMES = ("answered", "no_answer", "busy")


@dataclass
class ConnectionConfig:
    connection_id: str
    secrets: list[str]
    mode: str = "accept"
    refuse_status: int = 404
    refuse_reason: str = "unknown_extension"
    error_status: int = 503
    timeout_s: float = 30.0
    app_url: str | None = None  # where to send the events of accepted calls; None: don't place calls
    outcome: str = "answered"
    speed: float = 0.0  # how fast the placed call's events are sent (0: at once)
    # The external number this PBX declares (PUT /lines) and calls from when a command names no line.
    line_number: str = PBX_LINE


@dataclass
class OriginateRecord:
    connection_id: str
    headers: dict[str, str]
    body: dict[str, Any] | None
    verified: bool
    reason: str | None
    status: int
    placed_call_id: str | None = None


@dataclass
class RecordingPolicy:
    auth: tuple[str, ...] | None = None  # ("basic", user, password) | ("bearer", token)
    fail_first: int = 0  # answer 503 to this many requests first
    delay_s: float = 0.0  # wait before the first byte


@dataclass
class SimServerState:
    connections: dict[str, ConnectionConfig] = field(default_factory=dict)
    commands: list[OriginateRecord] = field(default_factory=list)
    recording_requests: list[dict[str, Any]] = field(default_factory=list)
    recordings: RecordingPolicy = field(default_factory=RecordingPolicy)
    placed: dict[str, str] = field(default_factory=dict)  # request_id -> call_id
    played: list[Any] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)
    call_threads: list[threading.Thread] = field(default_factory=list)
    pairings: dict[str, Any] = field(default_factory=dict)  # connection_id -> setup_page.Pairing


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _json(self, status: int, payload: Any) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _html(self, status: int, html: str) -> None:
        body = html.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    # --- originate ---------------------------------------------------------------------
    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        parts = path.strip("/").split("/")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if path == "/connect":
            return self.server.sim.handle_setup_form(self, body)
        if len(parts) != 2 or parts[0] != "originate":
            return self._json(404, {"error": "not_found"})
        self.server.sim.handle_originate(self, unquote(parts[1]), body)

    # --- recordings ----------------------------------------------------------------------
    def do_GET(self) -> None:
        if urlsplit(self.path).path == "/":
            return self._html(200, setup_page.page(self.server.sim))
        self._recording(send_body=True)

    def do_HEAD(self) -> None:
        self._recording(send_body=False)

    def _recording(self, *, send_body: bool) -> None:
        url = urlsplit(self.path)
        if not (url.path.startswith("/recordings/") and url.path.endswith(".wav")):
            return self._json(404, {"error": "not_found"})
        state = self.server.sim.state
        policy = state.recordings
        query = parse_qs(url.query)
        with state.lock:
            state.recording_requests.append({"path": url.path, "headers": dict(self.headers)})
            attempt = len(state.recording_requests)
        if policy.auth and not _authorised(self.headers.get("Authorization", ""), policy.auth):
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="recordings"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        if attempt <= policy.fail_first:
            self.send_response(503)
            self.send_header("Retry-After", "1")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        try:
            seconds = float(query.get("seconds", ["5"])[0])
            tone = int(query.get("tone", [str(TONES_HZ[0])])[0])
        except ValueError:
            return self._json(400, {"error": "bad_query"})
        if tone not in TONES_HZ or not 0 <= seconds <= 6 * 3600:
            return self._json(400, {"error": "bad_query"})
        if policy.delay_s and state.stopping.wait(policy.delay_s):
            return None
        self.send_response(200)
        self.send_header("Content-Type", "audio/wav")
        self.send_header("Content-Length", str(wav_size(seconds)))
        self.end_headers()
        if send_body:
            for chunk in iter_wav(seconds, tone_hz=tone):
                self.wfile.write(chunk)
        return None


def _authorised(header: str, auth: tuple[str, ...]) -> bool:
    if auth[0] == "bearer":
        return hmac.compare_digest(header, f"Bearer {auth[1]}")
    expected = "Basic " + base64.b64encode(f"{auth[1]}:{auth[2]}".encode()).decode()
    return hmac.compare_digest(header, expected)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    sim: SimServer


class SimServer:
    """``SimServer().start()``; ``originate_url(connection_id)``; ``recording_base_url``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, line_number: str = PBX_LINE,
                 line_name: str = "Main line", on_pair: Any = None, pair_options: dict[str, Any] | None = None) -> None:
        self.state = SimServerState()
        # what the settings page declares and how paired connectors are served (``setup_page``)
        self.line_number = line_number
        self.line_name = line_name
        self.on_pair = on_pair  # called with each new setup_page.Pairing
        self.pair_options = dict(pair_options or {})
        self._httpd = _Server((host, port), _Handler)
        self._httpd.sim = self
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def recording_base_url(self) -> str:
        return self.base_url

    def originate_url(self, connection_id: str) -> str:
        return f"{self.base_url}/originate/{connection_id}"

    def add_connection(self, connection_id: str, secret: str | list[str], **options: Any) -> ConnectionConfig:
        if options.get("mode", "accept") not in ORIGINATE_MODES:
            raise ValueError(f"mode must be one of {ORIGINATE_MODES}")
        if options.get("outcome", "answered") not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}")
        config = ConnectionConfig(connection_id, [secret] if isinstance(secret, str) else list(secret), **options)
        with self.state.lock:
            self.state.connections[connection_id] = config
        return config

    def start(self) -> SimServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="pbxsim-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.state.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        for thread in list(self.state.call_threads):
            thread.join(timeout=5)

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_for_calls(self, timeout: float = 10.0) -> None:
        """Block until every call placed so far has sent all its events."""
        for thread in list(self.state.call_threads):
            thread.join(timeout=timeout)

    def handle_setup_form(self, handler: _Handler, body: bytes) -> None:
        events_url, secret = setup_page.parse_form(body)
        try:
            pairing = setup_page.pair(self, events_url, secret, line_number=self.line_number,
                                      line_name=self.line_name, **self.pair_options)
        except setup_page.PairingRefused as exc:
            return handler._html(400, setup_page.page(self, str(exc), ok=False))
        if self.on_pair is not None:
            self.on_pair(pairing)
        return handler._html(200, setup_page.page(self, f"Connected to {pairing.app_url}."))

    def handle_originate(self, handler: _Handler, connection_id: str, body: bytes) -> None:
        state = self.state
        config = state.connections.get(connection_id)
        headers = dict(handler.headers)
        if config is None:
            handler._json(404, {"error": "unknown_connection"})
            return
        reason = signing.verify(config.secrets, headers, body)
        try:
            payload = json.loads(body) if body else None
        except ValueError:
            payload = None
        record = OriginateRecord(connection_id, headers, payload, reason is None, reason, 0)
        with state.lock:
            state.commands.append(record)
        if reason is not None:
            record.status = 401
            handler._json(401, {"error": "invalid_signature", "detail": reason})
            return
        if not isinstance(payload, dict) or not payload.get("request_id"):
            record.status = 400
            handler._json(400, {"error": "invalid_command", "detail": "request_id is required"})
            return
        if config.mode == "refuse":
            record.status = config.refuse_status
            handler._json(config.refuse_status, {"error": config.refuse_reason, "detail": "refused by the PBX"})
            return
        if config.mode == "error":
            record.status = config.error_status
            handler._json(config.error_status, {"error": "pbx_error"})
            return
        if config.mode == "timeout":
            record.status = 504
            if not state.stopping.wait(config.timeout_s):
                handler._json(504, {"error": "too_slow"})
            return
        if payload.get("kind") == "test":
            # The connector's connection test (pbx-api.md): signature checked above, nothing to dial.
            record.status = 200
            handler._json(200, {"ok": True, "kind": "test"})
            return
        record.status = 202
        request_id = str(payload["request_id"])
        with state.lock:
            call_id = state.placed.get(request_id)
            repeat = call_id is not None
            if not repeat:
                call_id = f"orig-{request_id}"[:128]
                state.placed[request_id] = call_id
        record.placed_call_id = call_id
        responded = threading.Event()
        if not repeat and config.app_url:
            # Registered and started before the answer goes out, so wait_for_calls() after the
            # connector got its 202 always sees the call; its events wait for the answer to be sent.
            thread = threading.Thread(
                target=self._place_call, args=(config, payload, call_id, responded),
                name=f"pbxsim-call-{call_id}", daemon=True,
            )
            with state.lock:
                state.call_threads.append(thread)
            thread.start()
        try:
            handler._json(202, {"accepted": True, "call_id": call_id})
        finally:
            responded.set()

    def _place_call(
        self, config: ConnectionConfig, command: dict[str, Any], call_id: str, responded: threading.Event
    ) -> None:
        responded.wait(timeout=5)
        params = ScenarioParams(
            client_number=str(command.get("client_number") or ""),
            line_number=command.get("line_number") or config.line_number,
            agents=(str(command.get("extension") or "101"),),
            origin_request_id=str(command["request_id"]),
            recording_base_url=self.recording_base_url,
            call_id=call_id,
        )
        scenario = build(f"originate_{config.outcome}", params=params)
        sim = PbxSimulator(config.app_url or "", config.connection_id, config.secrets)
        sent = play(sim, scenario, speed=config.speed, sleep=lambda s: self.state.stopping.wait(s))
        with self.state.lock:
            self.state.played.append((scenario, sent))
