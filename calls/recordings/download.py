"""Streaming, SSRF-safe download of a recording from the PBX into a temp file.

Memory stays flat whatever the file size: the body is read in fixed chunks straight to disk
while its sha256 and length are computed. The connection goes to the address validated in
``addresses.pick_address`` (urllib3 pool on the IP, ``Host`` header, SNI and certificate check
on the original name).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import SplitResult, urljoin, urlsplit

import certifi
import urllib3
from urllib3.exceptions import HTTPError as Urllib3HTTPError

from .addresses import DEFAULT_PORTS, Resolver, host_is_allowed, pick_address, system_resolver
from .errors import DownloadFailed, IntegrityMismatch, RecordingTooLarge, SourceRefused

logger = logging.getLogger(__name__)

CHUNK = 64 * 1024
REDIRECT_STATUSES = {301, 302, 303, 307, 308}
RETRYABLE_STATUSES = {404, 408, 425, 429, 500, 502, 503, 504}
USER_AGENT = "bitrix24-telephony-connector/1 (recording fetch)"


@dataclass(frozen=True)
class FetchPolicy:
    """Everything that is per connection (per tenant) about where and how we may fetch."""

    allowed_hosts: tuple[str, ...]
    # e.g. {"Authorization": "Basic ..."} from PbxConnection.recording_auth_headers(); never logged.
    auth_headers: Mapping[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class FetchLimits:
    max_bytes: int
    allow_private: bool = False
    allow_http: bool = False
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    deadline: float = 1800.0
    max_redirects: int = 3
    private_networks: tuple[str, ...] = ()
    ca_certs: str = field(default_factory=certifi.where)


@dataclass(frozen=True)
class DownloadedFile:
    path: Path
    size: int
    sha256: str
    content_type: str


def safe_url_for_log(url: str) -> str:
    """Scheme, host and path only: query strings of signed URLs carry secrets."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(invalid URL)"
    return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"


def download_recording(
    url: str,
    *,
    policy: FetchPolicy,
    limits: FetchLimits,
    dest_dir: Path,
    expected_sha256: str | None = None,
    expected_size: int | None = None,
    resolver: Resolver = system_resolver,
) -> DownloadedFile:
    """Fetch ``url`` into a new file under ``dest_dir``; the caller owns (and deletes) the file.

    Raises SourceRefused, DownloadFailed, RecordingTooLarge, IntegrityMismatch. Nothing is left
    on disk when it raises.
    """
    if expected_size is not None and expected_size > limits.max_bytes:
        raise RecordingTooLarge(
            f"recording is {expected_size} bytes, over the {limits.max_bytes}-byte limit"
        )
    started = time.monotonic()
    origin = urlsplit(url)
    current = origin
    for _hop in range(limits.max_redirects + 1):
        _check_url(current, policy, limits)
        # Credentials go only to the exact origin the event named; a hop elsewhere (even an
        # allowed host) travels without them, as browsers and requests do.
        send_auth = _same_origin(current, origin)
        response, pool = _open(current, policy if send_auth else None, limits, resolver)
        try:
            if response.status in REDIRECT_STATUSES and response.headers.get("Location"):
                target = urljoin(current.geturl(), response.headers["Location"])
                logger.info("recording redirect %s -> %s", safe_url_for_log(current.geturl()),
                            safe_url_for_log(target))
                current = urlsplit(target)
                continue
            if response.status != 200:
                raise _status_error(response)
            return _stream_to_file(response, limits, dest_dir, started, expected_sha256, expected_size)
        finally:
            response.release_conn()
            response.close()
            pool.close()
    raise SourceRefused(f"recording URL redirected more than {limits.max_redirects} times")


def _check_url(url: SplitResult, policy: FetchPolicy, limits: FetchLimits) -> None:
    try:
        url.port  # noqa: B018 - urlsplit validates the port lazily
    except ValueError as exc:
        raise SourceRefused("recording URL has an invalid port") from exc
    if url.scheme not in ("https", "http"):
        raise SourceRefused(f"recording URL scheme {url.scheme or '(none)'!r} is not allowed; use https")
    if url.scheme == "http" and not limits.allow_http:
        raise SourceRefused("recording URL must use https")
    if not url.hostname:
        raise SourceRefused("recording URL has no host")
    if url.username or url.password:
        raise SourceRefused("recording URL must not embed credentials; set them on the connection")
    if not host_is_allowed(url, policy.allowed_hosts):
        raise SourceRefused(
            f"recording host {url.hostname} is not in this connection's allowed recording hosts"
        )


def _same_origin(a: SplitResult, b: SplitResult) -> bool:
    def key(u: SplitResult) -> tuple[str, str, int | None]:
        return u.scheme, (u.hostname or "").lower(), u.port or DEFAULT_PORTS.get(u.scheme)

    return key(a) == key(b)


def _open(url: SplitResult, policy: FetchPolicy | None, limits: FetchLimits, resolver: Resolver):
    host = url.hostname or ""
    port = url.port or DEFAULT_PORTS[url.scheme]
    address = pick_address(host, port, allow_private=limits.allow_private, resolver=resolver,
                           private_networks=limits.private_networks)
    timeout = urllib3.Timeout(connect=limits.connect_timeout, read=limits.read_timeout)
    if url.scheme == "https":
        pool: urllib3.HTTPConnectionPool = urllib3.HTTPSConnectionPool(
            address, port, timeout=timeout, retries=False, maxsize=1,
            cert_reqs="CERT_REQUIRED", ca_certs=limits.ca_certs,
            server_hostname=host, assert_hostname=host,
        )
    else:
        pool = urllib3.HTTPConnectionPool(address, port, timeout=timeout, retries=False, maxsize=1)
    host_header = f"[{host}]" if ":" in host else host
    if url.port and url.port != DEFAULT_PORTS[url.scheme]:
        host_header += f":{url.port}"
    headers = {"Host": host_header, "User-Agent": USER_AGENT, "Accept-Encoding": "identity", "Accept": "*/*"}
    if policy is not None:
        headers.update(policy.auth_headers)
    target = url.path or "/"
    if url.query:
        target += "?" + url.query
    try:
        response = pool.urlopen(
            "GET", target, headers=headers, redirect=False, retries=False,
            preload_content=False, decode_content=False, assert_same_host=False,
        )
    except Urllib3HTTPError as exc:
        pool.close()
        raise DownloadFailed(
            f"cannot reach recording host {host}: {type(exc).__name__}", retryable=True
        ) from exc
    return response, pool


def _status_error(response) -> DownloadFailed:
    status = response.status
    retry_after = _retry_after(response.headers.get("Retry-After"))
    if status in (401, 403):
        reason = f"the PBX refused the recording download (HTTP {status}); check the connection's recording credentials"
    else:
        reason = f"the PBX answered HTTP {status} to the recording download"
    return DownloadFailed(reason, retryable=status in RETRYABLE_STATUSES or status >= 500,
                          retry_after=retry_after)


def _retry_after(value: str | None) -> float | None:
    if value and value.strip().isdigit():
        return float(value.strip())
    return None


def _stream_to_file(response, limits: FetchLimits, dest_dir: Path, started: float,
                    expected_sha256: str | None, expected_size: int | None) -> DownloadedFile:
    declared = response.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > limits.max_bytes:
        raise RecordingTooLarge(
            f"recording is {declared} bytes, over the {limits.max_bytes}-byte limit"
        )
    dest_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="dl-", suffix=".part", dir=dest_dir)
    path = Path(name)
    digest = hashlib.sha256()
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in response.stream(CHUNK, decode_content=False):
                size += len(chunk)
                if size > limits.max_bytes:
                    raise RecordingTooLarge(
                        f"recording exceeds the {limits.max_bytes}-byte limit; download aborted"
                    )
                if time.monotonic() - started > limits.deadline:
                    raise DownloadFailed(
                        f"recording download took longer than {int(limits.deadline)} s", retryable=True
                    )
                digest.update(chunk)
                out.write(chunk)
        sha = digest.hexdigest()
        if expected_size is not None and size != expected_size:
            raise IntegrityMismatch(f"recording is {size} bytes, the event announced {expected_size}")
        if expected_sha256 and sha != expected_sha256.strip().lower():
            raise IntegrityMismatch("recording sha256 does not match the value in the event")
    except Urllib3HTTPError as exc:
        path.unlink(missing_ok=True)
        raise DownloadFailed(f"recording download interrupted: {type(exc).__name__}", retryable=True) from exc
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return DownloadedFile(path=path, size=size, sha256=sha,
                          content_type=response.headers.get("Content-Type", "").split(";")[0].strip())
