"""Request/response primitives shared by the in-process adapter and the HTTP server, and body parsing the way
Bitrix24 (PHP) reads parameters: query string, JSON, urlencoded form or multipart, with PHP-style keys."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import urlsplit

from b24sandbox.phparray import listify, parse_query, php_assign


class BadRequestBody(ValueError):
    """The body could not be parsed as its Content-Type says."""


@dataclass
class Request:
    method: str
    url: str
    headers: dict[str, str]  # lower-case names
    body: bytes = b""
    timeout: float | None = None  # the client's read timeout, when known (in-process)
    client: str = "127.0.0.1"

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        self.scheme = parts.scheme.lower()
        self.netloc = parts.netloc.lower()
        self.host = (parts.hostname or "").lower()
        self.path = parts.path or "/"
        self.query = parts.query
        self.headers = {k.lower(): v for k, v in self.headers.items()}

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()


@dataclass
class Response:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay: float = 0.0  # answer this many seconds late (fault injection)
    drop: bool = False  # close the connection without answering (fault injection)

    def json(self) -> Any:
        return json.loads(self.body)


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Response(status, {"Content-Type": "application/json; charset=utf-8", **(headers or {})}, body)


def html_response(status: int, html: str, headers: dict[str, str] | None = None) -> Response:
    return Response(status, {"Content-Type": "text/html; charset=utf-8", **(headers or {})}, html.encode("utf-8"))


def redirect(location: str, status: int = 302) -> Response:
    return Response(status, {"Location": location, "Content-Type": "text/html; charset=utf-8"}, b"")


@dataclass
class UploadedFile:
    filename: str
    content: bytes
    content_type: str = "application/octet-stream"


def parse_params(request: Request) -> tuple[dict[str, Any], dict[str, UploadedFile]]:
    """Merge query-string and body parameters (the body wins), as PHP's $_REQUEST does for REST."""
    params = parse_query(request.query)
    files: dict[str, UploadedFile] = {}
    body = request.body or b""
    if not body.strip():
        return params, files
    ctype = request.content_type
    if ctype == "application/json":
        try:
            data = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BadRequestBody(f"invalid JSON body: {exc}") from exc
        if isinstance(data, dict):
            params.update(data)
        elif data not in (None, [], ""):
            raise BadRequestBody("JSON body must be an object")
    elif ctype == "multipart/form-data":
        fields, files = parse_multipart(request.headers.get("content-type", ""), body)
        params.update(fields)
    else:  # urlencoded is what PHP assumes for anything else
        try:
            params.update(parse_query(body.decode("utf-8")))
        except UnicodeDecodeError as exc:
            raise BadRequestBody("form body is not UTF-8") from exc
    return params, files


def parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, Any], dict[str, UploadedFile]]:
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    if not message.is_multipart():
        raise BadRequestBody("multipart body without parts")
    fields: dict[str, Any] = {}
    files: dict[str, UploadedFile] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        payload = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is not None:
            files[str(name)] = UploadedFile(str(filename), payload, part.get_content_type())
        else:
            php_assign(fields, str(name), payload.decode("utf-8", errors="replace"))
    return {k: listify(v) for k, v in fields.items()}, files
