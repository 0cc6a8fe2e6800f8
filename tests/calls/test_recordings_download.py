"""Recording download against real local HTTP(S) servers: streaming, auth, SSRF guard, caps."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import os
import ssl
import threading
import tracemalloc
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from calls.recordings import (
    DownloadFailed,
    FetchLimits,
    FetchPolicy,
    IntegrityMismatch,
    RecordingTooLarge,
    SourceRefused,
    download_recording,
)

BASIC_A = "Basic " + base64.b64encode(b"tenant-a:secret-a").decode()
BASIC_B = "Basic " + base64.b64encode(b"tenant-b:secret-b").decode()


@dataclass
class Route:
    body: bytes | None = None
    stream_size: int = 0            # generate this many bytes instead of `body`
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    require_auth: str | None = None
    send_length: bool = True


class RecordingServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, tls: ssl.SSLContext | None = None):
        super().__init__((host, 0), _Handler)
        self.routes: dict[str, Route] = {}
        self.seen: list[dict] = []
        self.sni: list[str | None] = []
        if tls is not None:
            tls.sni_callback = lambda sock, name, ctx: self.sni.append(name)
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.scheme = "https" if tls else "http"
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.server_address[1]

    def url(self, path: str, host: str | None = None) -> str:
        return f"{self.scheme}://{host or self.server_address[0]}:{self.port}{path}"


class _Handler(BaseHTTPRequestHandler):
    server: RecordingServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.seen.append({"path": self.path, "headers": dict(self.headers)})
        route = self.server.routes.get(self.path)
        if route is None:
            self._send(404, b"not found")
            return
        if route.require_auth and self.headers.get("Authorization") != route.require_auth:
            self._send(401, b"unauthorised", {"WWW-Authenticate": 'Basic realm="rec"'})
            return
        if route.stream_size:
            self.send_response(route.status)
            for k, v in route.headers.items():
                self.send_header(k, v)
            if route.send_length:
                self.send_header("Content-Length", str(route.stream_size))
            else:
                self.send_header("Connection", "close")
            self.end_headers()
            block = bytes(range(256)) * 256  # 64 KiB
            left = route.stream_size
            try:
                while left > 0:
                    n = min(left, len(block))
                    self.wfile.write(block[:n])
                    left -= n
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.close_connection = True
            return
        self._send(route.status, route.body or b"", route.headers)

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def streamed_bytes(size: int) -> bytes:
    block = bytes(range(256)) * 256
    return (block * (size // len(block) + 1))[:size]


@pytest.fixture
def server_a():
    srv = RecordingServer("127.0.0.2")
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def server_b():
    srv = RecordingServer("127.0.0.3")
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def loopback_server():
    srv = RecordingServer("127.0.0.1")
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def dest(tmp_path) -> Path:
    return tmp_path / "tmp"


def leftovers(d: Path) -> list[str]:
    return sorted(os.listdir(d)) if d.exists() else []


# Only the test servers' exact addresses are opened; every other private address stays refused.
LOCAL = FetchLimits(max_bytes=50 * 1024 * 1024, allow_http=True,
                    private_networks=("127.0.0.2/32", "127.0.0.3/32"), read_timeout=5, connect_timeout=2)


def test_download_streams_file_with_basic_auth_and_reports_sha256(server_a, dest):
    size = 3 * 1024 * 1024 + 17
    server_a.routes["/rec/1.wav"] = Route(stream_size=size, require_auth=BASIC_A,
                                          headers={"Content-Type": "audio/wav"})
    policy = FetchPolicy(allowed_hosts=("127.0.0.2",), auth_headers={"Authorization": BASIC_A})

    got = download_recording(server_a.url("/rec/1.wav"), policy=policy, limits=LOCAL, dest_dir=dest)

    data = got.path.read_bytes()
    assert data == streamed_bytes(size)
    assert got.size == size and got.sha256 == hashlib.sha256(data).hexdigest()
    assert got.content_type == "audio/wav"
    assert got.path.parent == dest
    assert server_a.seen[0]["headers"]["Authorization"] == BASIC_A


def test_download_memory_stays_flat_for_a_large_file(server_a, dest):
    size = 40 * 1024 * 1024
    server_a.routes["/big.wav"] = Route(stream_size=size)
    policy = FetchPolicy(allowed_hosts=("127.0.0.2",))
    tracemalloc.start()
    try:
        got = download_recording(server_a.url("/big.wav"), policy=policy, limits=LOCAL, dest_dir=dest)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert got.size == size
    assert peak < 4 * 1024 * 1024, f"peak Python allocation {peak} bytes for a {size}-byte file"


def test_wrong_credentials_fail_permanently_with_a_reason_naming_the_credentials(server_a, dest):
    server_a.routes["/rec.wav"] = Route(body=b"RIFF", require_auth=BASIC_A)
    policy = FetchPolicy(allowed_hosts=("127.0.0.2",), auth_headers={"Authorization": BASIC_B})
    with pytest.raises(DownloadFailed) as err:
        download_recording(server_a.url("/rec.wav"), policy=policy, limits=LOCAL, dest_dir=dest)
    assert not err.value.retryable
    assert "401" in err.value.reason and "credentials" in err.value.reason
    assert leftovers(dest) == []


def test_server_error_is_retryable_with_the_servers_retry_after(server_a, dest):
    server_a.routes["/rec.wav"] = Route(body=b"busy", status=503, headers={"Retry-After": "120"})
    with pytest.raises(DownloadFailed) as err:
        download_recording(server_a.url("/rec.wav"), policy=FetchPolicy(allowed_hosts=("127.0.0.2",)),
                           limits=LOCAL, dest_dir=dest)
    assert err.value.retryable and err.value.retry_after == 120


def test_loopback_is_refused_when_private_hosts_are_off(loopback_server, dest):
    loopback_server.routes["/rec.wav"] = Route(body=b"RIFF....WAVE")
    limits = FetchLimits(max_bytes=1024, allow_http=True, allow_private=False)
    with pytest.raises(SourceRefused, match="non-public address"):
        download_recording(loopback_server.url("/rec.wav"), policy=FetchPolicy(allowed_hosts=("127.0.0.1",)),
                           limits=limits, dest_dir=dest)
    assert loopback_server.seen == []


def test_loopback_is_allowed_when_the_private_hosts_setting_is_on(loopback_server, dest):
    loopback_server.routes["/rec.wav"] = Route(body=b"RIFF....WAVE")
    limits = FetchLimits(max_bytes=1024, allow_http=True, allow_private=True)
    got = download_recording(loopback_server.url("/rec.wav"), policy=FetchPolicy(allowed_hosts=("127.0.0.1",)),
                             limits=limits, dest_dir=dest)
    assert got.path.read_bytes() == b"RIFF....WAVE"


@pytest.mark.parametrize("url", [
    "http://10.1.2.3/rec.wav",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.64.0.1/rec.wav",
    "http://[::1]/rec.wav",
    "http://[::ffff:10.0.0.1]/rec.wav",
    "http://0.0.0.0/rec.wav",
    # Internal addresses inside IPv6 forms that older ipaddress tables call global:
    "http://[::7f00:1]/rec.wav",  # IPv4-compatible 127.0.0.1
    "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",  # NAT64 of 169.254.169.254
    "http://[64:ff9b:1::a00:5]/rec.wav",  # local-use NAT64
    "http://[2002:7f00:1::]:6379/",  # 6to4 of 127.0.0.1
    "http://[fec0::1]/rec.wav",  # site-local
])
def test_private_link_local_and_reserved_addresses_are_refused_without_connecting(url, dest):
    host = url.split("//")[1].split("/")[0].strip("[]")
    limits = FetchLimits(max_bytes=1024, allow_http=True, connect_timeout=0.5)
    with pytest.raises(SourceRefused):
        download_recording(url, policy=FetchPolicy(allowed_hosts=(host,)), limits=limits, dest_dir=dest)
    assert leftovers(dest) == []


def test_host_not_in_the_connections_list_is_refused_before_any_request(server_a, dest):
    server_a.routes["/rec.wav"] = Route(body=b"RIFF")
    with pytest.raises(SourceRefused, match="not in this connection's allowed recording hosts"):
        download_recording(server_a.url("/rec.wav"), policy=FetchPolicy(allowed_hosts=("pbx.example.com",)),
                           limits=LOCAL, dest_dir=dest)
    assert server_a.seen == []


def test_redirect_to_a_private_address_is_refused(server_a, loopback_server, dest):
    loopback_server.routes["/internal"] = Route(body=b"secret")
    server_a.routes["/rec.wav"] = Route(status=302, headers={"Location": loopback_server.url("/internal")})
    policy = FetchPolicy(allowed_hosts=("127.0.0.2", "127.0.0.1"), auth_headers={"Authorization": BASIC_A})
    with pytest.raises(SourceRefused, match="non-public"):
        download_recording(server_a.url("/rec.wav"), policy=policy, limits=LOCAL, dest_dir=dest)
    assert loopback_server.seen == []


def test_redirect_to_a_host_outside_the_list_is_refused(server_a, server_b, dest):
    server_b.routes["/x"] = Route(body=b"RIFF")
    server_a.routes["/rec.wav"] = Route(status=307, headers={"Location": server_b.url("/x")})
    with pytest.raises(SourceRefused, match="not in this connection's allowed"):
        download_recording(server_a.url("/rec.wav"), policy=FetchPolicy(allowed_hosts=("127.0.0.2",)),
                           limits=LOCAL, dest_dir=dest)
    assert server_b.seen == []


def test_redirect_to_another_allowed_host_is_followed_without_the_credentials(server_a, server_b, dest):
    server_b.routes["/signed/rec.wav"] = Route(body=b"RIFF-from-storage")
    server_a.routes["/rec.wav"] = Route(status=302, headers={"Location": server_b.url("/signed/rec.wav")},
                                        require_auth=BASIC_A)
    policy = FetchPolicy(allowed_hosts=("127.0.0.2", "127.0.0.3"), auth_headers={"Authorization": BASIC_A})
    got = download_recording(server_a.url("/rec.wav"), policy=policy, limits=LOCAL, dest_dir=dest)
    assert got.path.read_bytes() == b"RIFF-from-storage"
    assert server_a.seen[0]["headers"]["Authorization"] == BASIC_A
    assert "Authorization" not in server_b.seen[0]["headers"]


def test_redirect_loop_stops_after_the_bounded_number_of_hops(server_a, dest):
    server_a.routes["/loop"] = Route(status=302, headers={"Location": "/loop"})
    limits = FetchLimits(max_bytes=1024, allow_http=True, private_networks=("127.0.0.2/32",), max_redirects=3)
    with pytest.raises(SourceRefused, match="redirected more than 3 times"):
        download_recording(server_a.url("/loop"), policy=FetchPolicy(allowed_hosts=("127.0.0.2",)),
                           limits=limits, dest_dir=dest)
    assert len(server_a.seen) == 4


def test_size_cap_aborts_mid_stream_and_removes_the_partial_file(server_a, dest):
    server_a.routes["/huge.wav"] = Route(stream_size=8 * 1024 * 1024, send_length=False)
    limits = FetchLimits(max_bytes=1024 * 1024, allow_http=True, private_networks=("127.0.0.2/32",))
    with pytest.raises(RecordingTooLarge) as err:
        download_recording(server_a.url("/huge.wav"), policy=FetchPolicy(allowed_hosts=("127.0.0.2",)),
                           limits=limits, dest_dir=dest)
    assert not err.value.retryable
    assert leftovers(dest) == []


def test_declared_length_over_the_cap_is_refused_before_reading(server_a, dest):
    server_a.routes["/huge.wav"] = Route(stream_size=4 * 1024 * 1024)
    limits = FetchLimits(max_bytes=1024 * 1024, allow_http=True, private_networks=("127.0.0.2/32",))
    with pytest.raises(RecordingTooLarge, match="over the 1048576-byte limit"):
        download_recording(server_a.url("/huge.wav"), policy=FetchPolicy(allowed_hosts=("127.0.0.2",)),
                           limits=limits, dest_dir=dest)
    assert leftovers(dest) == []


def test_sha256_mismatch_fails_retryably_and_removes_the_file(server_a, dest):
    server_a.routes["/rec.wav"] = Route(body=b"RIFF-partial")
    with pytest.raises(IntegrityMismatch) as err:
        download_recording(server_a.url("/rec.wav"), policy=FetchPolicy(allowed_hosts=("127.0.0.2",)),
                           limits=LOCAL, dest_dir=dest, expected_sha256=hashlib.sha256(b"RIFF-full").hexdigest())
    assert err.value.retryable
    assert leftovers(dest) == []


def test_matching_sha256_is_accepted(server_a, dest):
    server_a.routes["/rec.wav"] = Route(body=b"RIFF-full")
    got = download_recording(server_a.url("/rec.wav"), policy=FetchPolicy(allowed_hosts=("127.0.0.2",)),
                             limits=LOCAL, dest_dir=dest,
                             expected_sha256=hashlib.sha256(b"RIFF-full").hexdigest().upper())
    assert got.path.read_bytes() == b"RIFF-full"


def test_plain_http_and_embedded_credentials_are_refused_by_default(dest):
    strict = FetchLimits(max_bytes=1024)
    with pytest.raises(SourceRefused, match="https"):
        download_recording("http://pbx.example.com/rec.wav", policy=FetchPolicy(allowed_hosts=("pbx.example.com",)),
                           limits=strict, dest_dir=dest)
    with pytest.raises(SourceRefused, match="credentials"):
        download_recording("https://u:p@pbx.example.com/rec.wav",
                           policy=FetchPolicy(allowed_hosts=("pbx.example.com",)), limits=strict, dest_dir=dest)
    with pytest.raises(SourceRefused, match="invalid port"):
        download_recording("https://pbx.example.com:99999/rec.wav",
                           policy=FetchPolicy(allowed_hosts=("pbx.example.com",)), limits=strict, dest_dir=dest)
    with pytest.raises(SourceRefused, match="scheme"):
        download_recording("file:///etc/passwd", policy=FetchPolicy(allowed_hosts=("",)), limits=strict,
                           dest_dir=dest)


def test_tenant_credentials_only_reach_their_own_host(server_a, server_b, dest):
    server_a.routes["/a.wav"] = Route(body=b"RIFF-a", require_auth=BASIC_A)
    server_b.routes["/b.wav"] = Route(body=b"RIFF-b", require_auth=BASIC_B)
    policy_a = FetchPolicy(allowed_hosts=("127.0.0.2",), auth_headers={"Authorization": BASIC_A})
    policy_b = FetchPolicy(allowed_hosts=("127.0.0.3",), auth_headers={"Authorization": BASIC_B})

    assert download_recording(server_b.url("/b.wav"), policy=policy_b, limits=LOCAL,
                              dest_dir=dest).path.read_bytes() == b"RIFF-b"
    # Tenant A's event naming tenant B's host is refused: A's password never travels there.
    with pytest.raises(SourceRefused):
        download_recording(server_b.url("/b.wav"), policy=policy_a, limits=LOCAL, dest_dir=dest)

    assert [r["headers"].get("Authorization") for r in server_b.seen] == [BASIC_B]
    assert server_a.seen == []


# --- name resolution is done once and the validated address is the one connected to ------------

class CountingResolver:
    def __init__(self, answers: list[list[str]]):
        self.answers = answers
        self.calls: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        return self.answers[min(len(self.calls), len(self.answers)) - 1]


def test_the_name_is_resolved_once_and_the_host_header_keeps_the_name(server_a, dest):
    server_a.routes["/rec.wav"] = Route(body=b"RIFF")
    # A rebinding DNS would answer a private address the second time: there is no second time.
    resolver = CountingResolver([["127.0.0.2"], ["10.0.0.1"]])
    got = download_recording(f"http://pbx-a.test:{server_a.port}/rec.wav",
                             policy=FetchPolicy(allowed_hosts=("pbx-a.test",)), limits=LOCAL, dest_dir=dest,
                             resolver=resolver)
    assert got.path.read_bytes() == b"RIFF"
    assert resolver.calls == ["pbx-a.test"]
    assert server_a.seen[0]["headers"]["Host"] == f"pbx-a.test:{server_a.port}"


def test_a_name_with_any_private_answer_is_refused(dest):
    resolver = CountingResolver([["93.184.215.14", "10.0.0.1"]])
    with pytest.raises(SourceRefused, match=r"10\.0\.0\.1"):
        download_recording("https://pbx-a.test/rec.wav", policy=FetchPolicy(allowed_hosts=("pbx-a.test",)),
                           limits=FetchLimits(max_bytes=1024), dest_dir=dest, resolver=resolver)


def test_wildcard_entry_allows_subdomains_only(server_a, dest):
    server_a.routes["/rec.wav"] = Route(body=b"RIFF")
    resolver = CountingResolver([["127.0.0.2"]])
    policy = FetchPolicy(allowed_hosts=("*.pbx-a.test",))
    got = download_recording(f"http://eu1.pbx-a.test:{server_a.port}/rec.wav", policy=policy, limits=LOCAL,
                             dest_dir=dest, resolver=resolver)
    assert got.size == 4
    with pytest.raises(SourceRefused):
        download_recording(f"http://pbx-a.test:{server_a.port}/rec.wav", policy=policy, limits=LOCAL,
                           dest_dir=dest, resolver=resolver)


# --- HTTPS: connected to the pinned IP, TLS verified against the name -------------------------

def _self_signed(tmp_path: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture
def tls_server(tmp_path):
    cert, key = _self_signed(tmp_path, "pbx-a.test")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv = RecordingServer("127.0.0.2", tls=ctx)
    srv.ca = str(cert)
    yield srv
    srv.shutdown()
    srv.server_close()


def test_https_goes_to_the_pinned_address_with_sni_and_certificate_checked_for_the_name(tls_server, dest):
    tls_server.routes["/rec.wav"] = Route(body=b"RIFF-tls", require_auth=BASIC_A)
    limits = FetchLimits(max_bytes=1024, private_networks=("127.0.0.2/32",), ca_certs=tls_server.ca)
    got = download_recording(f"https://pbx-a.test:{tls_server.port}/rec.wav",
                             policy=FetchPolicy(allowed_hosts=("pbx-a.test",), auth_headers={"Authorization": BASIC_A}),
                             limits=limits, dest_dir=dest, resolver=CountingResolver([["127.0.0.2"]]))
    assert got.path.read_bytes() == b"RIFF-tls"
    assert tls_server.sni == ["pbx-a.test"]


def test_https_certificate_for_another_name_is_rejected(tls_server, dest):
    tls_server.routes["/rec.wav"] = Route(body=b"RIFF-tls")
    limits = FetchLimits(max_bytes=1024, private_networks=("127.0.0.2/32",), ca_certs=tls_server.ca)
    with pytest.raises(DownloadFailed):
        download_recording(f"https://pbx-b.test:{tls_server.port}/rec.wav",
                           policy=FetchPolicy(allowed_hosts=("pbx-b.test",)), limits=limits, dest_dir=dest,
                           resolver=CountingResolver([["127.0.0.2"]]))
    assert tls_server.seen == []
    assert leftovers(dest) == []


def test_address_rules_cover_mapped_ipv6():
    from calls.recordings.addresses import address_is_public

    assert not address_is_public("::ffff:192.168.1.1")
    assert address_is_public("::ffff:93.184.215.14")
    assert not address_is_public(str(ipaddress.ip_address("fd00::1")))
