"""PinnedAddressAdapter: requests go to the checked address, never to a second DNS answer, while the
server still sees the host name (Host header, TLS SNI) and the certificate is checked against the name."""

from __future__ import annotations

import datetime
import http.server
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from netguard import PinnedAddressAdapter


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.seen.append({"host": self.headers["Host"], "body": body.decode()})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"ok": true}')

    def log_message(self, *args) -> None:
        pass


def _serve(context: ssl.SSLContext | None = None) -> Iterator[int]:
    _Recorder.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _certificate(tmp_path: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture
def http_port() -> Iterator[int]:
    yield from _serve()


def test_a_pinned_request_goes_to_the_checked_address_with_the_host_name_kept(http_port):
    session = requests.Session()
    # pbx.invalid never resolves: the request can only reach the server through the pinned address.
    session.mount("http://pbx.invalid", PinnedAddressAdapter("pbx.invalid", "127.0.0.1"))

    response = session.post(f"http://pbx.invalid:{http_port}/originate", json={"n": 1}, timeout=5)

    assert response.json() == {"ok": True}
    assert _Recorder.seen == [{"host": f"pbx.invalid:{http_port}", "body": '{"n": 1}'}]


def test_a_pinned_adapter_refuses_a_request_for_another_host(http_port):
    adapter = PinnedAddressAdapter("pbx.invalid", "127.0.0.1")
    session = requests.Session()
    session.mount("http://", adapter)

    with pytest.raises(requests.exceptions.InvalidURL, match=r"pinned to pbx\.invalid"):
        session.post(f"http://elsewhere.invalid:{http_port}/", timeout=5)
    assert _Recorder.seen == []


@pytest.mark.parametrize(("served_name", "ok"), [("pbx.invalid", True), ("impostor.invalid", False)])
def test_tls_to_a_pinned_address_checks_the_certificate_against_the_host_name(tmp_path, served_name, ok):
    cert, key = _certificate(tmp_path, served_name)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    sni: list[str | None] = []
    context.sni_callback = lambda sock, name, ctx: sni.append(name)
    for port in _serve(context):
        session = requests.Session()
        session.mount("https://pbx.invalid", PinnedAddressAdapter("pbx.invalid", "127.0.0.1"))
        if ok:
            response = session.post(f"https://pbx.invalid:{port}/", data=b"x", verify=str(cert), timeout=5)
            assert response.json() == {"ok": True}
            assert sni == ["pbx.invalid"] and _Recorder.seen[0]["host"] == f"pbx.invalid:{port}"
        else:
            with pytest.raises(requests.exceptions.SSLError):
                session.post(f"https://pbx.invalid:{port}/", data=b"x", verify=str(cert), timeout=5)
            assert _Recorder.seen == []
