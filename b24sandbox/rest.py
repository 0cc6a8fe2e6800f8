"""The portal REST surface (docs/bitrix24-contract.md §2): parameters, auth, the envelope, pagination,
batch, errors, limits."""

from __future__ import annotations

import re
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from b24sandbox import limits as limits_mod
from b24sandbox.http import BadRequestBody, Request, Response, json_response, parse_params
from b24sandbox.phparray import parse_query, php_json_array
from b24sandbox.registry import METHODS, CallContext, MethodSpec, RestError

if TYPE_CHECKING:
    from b24sandbox.http import UploadedFile
    from b24sandbox.sandbox import Sandbox
    from b24sandbox.state import Portal

PAGE_SIZE = 50
MAX_BATCH = 50
# scope -> the app scopes that satisfy it ("user" includes "user_basic" includes "user_brief")
SCOPE_SATISFIED_BY: dict[str, set[str]] = {
    "user_brief": {"user_brief", "user_basic", "user"},
    "user_basic": {"user_basic", "user"},
}
SECRET_PARAMS = {"auth", "access_token", "refresh_token", "client_secret", "AUTH_ID", "REFRESH_ID"}


@dataclass
class Auth:
    """Who is calling: an app token (``app`` set) or an inbound webhook (``webhook_code`` set)."""

    user_id: int
    scope: tuple[str, ...]
    access_token: str = ""
    webhook_code: str | None = None

    @property
    def principal(self) -> str:
        return f"webhook:{self.webhook_code}" if self.webhook_code else "app"


def normalize_method(name: str) -> str:
    name = name.strip().lower()
    for suffix in (".json", ".xml"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name


def error_response(exc: RestError) -> Response:
    return json_response(exc.status, exc.body())


def _redact(params: dict[str, Any]) -> dict[str, Any]:
    return {k: ("***" if k in SECRET_PARAMS else v) for k, v in params.items()}


def handle_rest(sb: Sandbox, portal: Portal, request: Request, base_url: str, rest_path: str) -> Response:
    """``rest_path`` is what follows ``/rest/``: ``method[.json]`` or ``{uid}/{code}/{method}``."""
    parts = [p for p in rest_path.split("/") if p]
    webhook: tuple[str, str] | None = None
    if len(parts) == 3:
        webhook = (parts[0], parts[1])
        method = normalize_method(parts[2])
    elif len(parts) == 1:
        method = normalize_method(parts[0])
    else:
        return error_response(RestError("ERROR_METHOD_NOT_FOUND", "Method not found!", 404))

    entry: dict[str, Any] = {
        "at": sb.clock.now(),
        "method": method,
        "http_method": request.method,
        "url": request.url.split("?")[0],
        "auth_kind": "webhook" if webhook else "token",
    }
    sb.traffic.begin()
    response = _dispatch(sb, portal, request, base_url, method, webhook, entry)
    entry["status"] = response.status
    if response.drop:
        entry["error"] = "connection dropped"
    elif response.headers.get("Content-Type", "").startswith("application/json"):
        try:
            body = response.json()
        except ValueError:
            body = None
        entry["response"] = body
        if isinstance(body, dict) and "error" in body:
            entry["error"] = body["error"]
    portal.log_request(entry)
    sb.traffic.request(portal.member_id, method, response.status, entry.get("error"))
    return response


def _dispatch(
    sb: Sandbox,
    portal: Portal,
    request: Request,
    base_url: str,
    method: str,
    webhook: tuple[str, str] | None,
    entry: dict[str, Any],
) -> Response:
    fault = sb.faults.take(portal.member_id, method)
    if fault is None and method == "batch":
        # A fault on a method hits the request carrying it: a batch holding the method fails (or loses its
        # answer) as a whole, as the HTTP request it is.
        for sub_method in _batch_methods(request):
            fault = sb.faults.take(portal.member_id, sub_method)
            if fault is not None:
                break
    if fault is not None:
        entry["fault"] = fault.kind
        if fault.kind == "error500":
            return json_response(500, {"error": "INTERNAL_SERVER_ERROR", "error_description": "Internal server error"})
        if fault.kind == "overload":
            return json_response(
                503, {"error": "OVERLOAD_LIMIT", "error_description": "REST API is blocked due to overload."}
            )
        if fault.kind == "drop" and not fault.executes:
            return Response(0, drop=True)
    response = _dispatch_normal(sb, portal, request, base_url, method, webhook, entry)
    if fault is not None:  # slow, or drop after executing: the portal did the work, the answer is late/lost
        response.delay = fault.delay
        response.drop = fault.kind == "drop"
    return response


def _batch_methods(request: Request) -> list[str]:
    try:
        params, _files = parse_params(request)
    except BadRequestBody:
        return []
    cmd = params.get("cmd")
    commands = cmd.values() if isinstance(cmd, dict) else cmd if isinstance(cmd, list) else []
    return [normalize_method(str(c).partition("?")[0]) for c in commands]


def _dispatch_normal(
    sb: Sandbox,
    portal: Portal,
    request: Request,
    base_url: str,
    method: str,
    webhook: tuple[str, str] | None,
    entry: dict[str, Any],
) -> Response:
    if request.scheme != "https" and not sb.allow_http:
        return error_response(RestError("INVALID_REQUEST", "Https required", 400))
    try:
        params, files = parse_params(request)
    except BadRequestBody as exc:
        return error_response(RestError("INVALID_REQUEST", str(exc), 400))
    entry["params"] = _redact(params)
    if not limits_mod.take_request_slot(portal.limits, sb.clock.now()):
        return error_response(RestError("QUERY_LIMIT_EXCEEDED", "Too many requests", 503))
    if portal.deleted:
        return error_response(RestError("PORTAL_DELETED", "Portal was deleted", sb.portal_deleted_status))
    try:
        auth = _authenticate(sb, portal, params, webhook)
    except RestError as exc:
        return error_response(exc)
    entry["user_id"] = auth.user_id
    ctx = CallContext(
        sandbox=sb,
        portal=portal,
        user=portal.users[auth.user_id],
        app=None if auth.webhook_code else portal.app,
        access_token=auth.access_token,
        base_url=base_url,
        scope=tuple(auth.scope),
    )
    if method == "upload" and "token" in params:
        return _upload(sb, ctx, params, files)
    try:
        if method == "batch":
            result = run_batch(sb, ctx, auth, params)
            response = json_response(200, {"result": result, "time": sb.time_block(portal, sb.clock.now(), 0.01)})
            times = result["result_time"].values() if isinstance(result["result_time"], dict) else []
            return _late(sb, response, sum(t["duration"] for t in times))
        spec = lookup(method)
        body = call_method(sb, ctx, auth, spec, params)
        return _late(sb, json_response(200, body), body["time"]["duration"])
    except RestError as exc:
        return error_response(exc)
    except Exception as exc:  # a sandbox bug: answer like Bitrix24 would, and keep the evidence for the test
        sb.internal_errors.append(f"{method}: {exc!r}\n{traceback.format_exc()}")
        return json_response(500, {"error": "INTERNAL_SERVER_ERROR", "error_description": "Internal server error"})


def _late(sb: Sandbox, response: Response, operating: float) -> Response:
    """With ``sb.sleep_operating`` the answer also takes (that fraction of) the time it counted."""
    if sb.sleep_operating > 0:
        response.delay += sb.sleep_operating * operating
    return response


def _authenticate(
    sb: Sandbox, portal: Portal, params: dict[str, Any], webhook: tuple[str, str] | None
) -> Auth:
    if webhook is not None:
        uid, code = webhook
        hook = portal.webhooks.get(code)
        if hook is None or str(hook[0]) != uid:
            raise RestError("NO_AUTH_FOUND", "Wrong authorization data", 401)
        user = portal.users.get(hook[0])
        if user is None or not user.active:
            raise RestError("authorization_error", "Unable to authorize user", 401)
        params.pop("auth", None)
        return Auth(user_id=user.id, scope=hook[1], webhook_code=code)
    access = params.pop("auth", None) or params.pop("access_token", None)
    if not access or not isinstance(access, str):
        raise RestError("NO_AUTH_FOUND", "Wrong authorization data", 401)
    token = sb.tokens.by_access.get(access)
    if token is None or token.member_id != portal.member_id:
        raise RestError("NO_AUTH_FOUND", "Wrong authorization data", 401)
    if token.revoked:
        raise RestError("ERROR_OAUTH", "Application not installed", 401)
    if token.access_revoked:
        raise RestError("invalid_token", "Unable to get application by token", 401)
    if token.access_expires_at <= sb.clock.now():
        raise RestError("expired_token", "The access token provided has expired.", 401)
    if portal.app is None:
        raise RestError("ERROR_OAUTH", "Application not installed", 401)
    if portal.app.payment_expired:
        raise RestError("PAYMENT_REQUIRED", "Subscription has been ended", 401)
    user = portal.users.get(token.user_id)
    if user is None or not user.active:
        raise RestError("authorization_error", "Unable to authorize user", 401)
    return Auth(user_id=user.id, scope=token.scope, access_token=access)


def lookup(method: str) -> MethodSpec:
    spec = METHODS.get(method)
    if spec is None:
        raise RestError("ERROR_METHOD_NOT_FOUND", "Method not found!", 404)
    return spec


def check_access(ctx: CallContext, auth: Auth, spec: MethodSpec) -> None:
    if spec.app_only and auth.webhook_code:
        raise RestError("WRONG_AUTH_TYPE", "Current authorization type is denied for this method", 403)
    if spec.scope is not None:
        allowed = SCOPE_SATISFIED_BY.get(spec.scope, {spec.scope})
        if not allowed.intersection(auth.scope):
            raise RestError(
                "insufficient_scope", "The request requires higher privileges than provided by the access token", 403
            )
    if spec.admin_only and not ctx.user.is_admin:
        raise RestError("ACCESS_DENIED", "Access denied!", 403)


def call_method(
    sb: Sandbox,
    ctx: CallContext,
    auth: Auth,
    spec: MethodSpec,
    params: dict[str, Any],
) -> dict[str, Any]:
    """Run one method; returns the envelope ``{"result", ["total", "next"], "time"}``. ``time`` carries
    ``operating``/``operating_reset_at`` (§2.2, §3.2), also for a batch command, whose ``time`` becomes its
    ``result_time`` entry: that is where a client reads the method time of commands sent in a batch."""
    portal = ctx.portal
    now = sb.clock.now()
    op_key = f"{auth.principal}|{spec.name}"
    try:
        check_access(ctx, auth, spec)
        if limits_mod.is_blocked(portal.limits, op_key, now):
            raise RestError("OPERATION_TIME_LIMIT", "Method is blocked due to operation time limit.", 429)
        try:
            result = spec.fn(ctx, params)
        except Exception:
            # A failed call still used the portal's time (what it costs before it creates anything).
            limits_mod.record_operating(portal.limits, op_key, now, sb.method_duration(portal, spec.name))
            raise
    except RestError as exc:
        sb.traffic.command(spec.name, params, error=exc.code or exc.description)
        raise
    duration = sb.method_duration(portal, spec.name, result)
    limits_mod.record_operating(portal.limits, op_key, now, duration)
    body: dict[str, Any] = {"result": result}
    if spec.list_method:
        items = list(result or [])
        start = _int(params.get("start"), 0)
        if start == -1:
            body["result"] = items[:PAGE_SIZE]
        else:
            start = max(start, 0)
            body["result"] = items[start : start + PAGE_SIZE]
            if start + PAGE_SIZE < len(items):
                body["next"] = start + PAGE_SIZE
            body["total"] = len(items)
    time_block = sb.time_block(portal, now, duration)
    used, reset_at = limits_mod.operating(portal.limits, op_key, now)
    if reset_at is not None:
        time_block["operating_reset_at"] = reset_at
    time_block["operating"] = round(used, 4)
    body["time"] = time_block
    sb.traffic.command(spec.name, params, result=body["result"])
    return body


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


_REF_RE = re.compile(r"\$(result|result_total|result_next)((?:\[[^\]]*\])+)")


def _resolve_ref(kind: str, path: str, results: dict[str, dict[str, Any]]) -> Any:
    keys = re.findall(r"\[([^\]]*)\]", path)
    node: Any = results[kind]
    for key in keys:
        if isinstance(node, list):
            idx = _int(key, -1)
            node = node[idx] if 0 <= idx < len(node) else None
        elif isinstance(node, dict):
            node = node.get(key)
        else:
            node = None
        if node is None:
            return None
    return node


def _substitute(value: Any, results: dict[str, dict[str, Any]]) -> Any:
    """``$result[key][0][ID]`` references to earlier sub-calls (§2.6)."""
    if isinstance(value, dict):
        return {k: _substitute(v, results) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, results) for v in value]
    if not isinstance(value, str) or "$result" not in value:
        return value
    whole = _REF_RE.fullmatch(value)
    if whole:
        resolved = _resolve_ref(whole.group(1), whole.group(2), results)
        return "" if resolved is None else resolved

    def repl(match: re.Match[str]) -> str:
        resolved = _resolve_ref(match.group(1), match.group(2), results)
        return "" if resolved is None or isinstance(resolved, dict | list) else str(resolved)

    return _REF_RE.sub(repl, value)


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "y", "yes"}
    return bool(value)


def run_batch(sb: Sandbox, ctx: CallContext, auth: Auth, params: dict[str, Any]) -> dict[str, Any]:
    """§2.6: always HTTP 200 outside; sub-call errors go to ``result_error``; one request for the rate limit;
    each sub-call counts for its own method's operating time."""
    cmd = params.get("cmd")
    if isinstance(cmd, list):
        commands = list(enumerate(cmd))
    elif isinstance(cmd, dict):
        commands = list(cmd.items())
    else:
        raise RestError("ERROR_ARGUMENT", "Argument 'cmd' is null or empty", 400, argument="cmd")
    if len(commands) > MAX_BATCH:
        raise RestError("ERROR_BATCH_LENGTH_EXCEEDED", "Max batch length exceeded", 400)
    halt = _truthy(params.get("halt", False))
    results: dict[str, dict[Any, Any]] = {"result": {}, "result_total": {}, "result_next": {}}
    errors: dict[Any, Any] = {}
    times: dict[Any, Any] = {}
    for key, command in commands:
        name, _, query = str(command).partition("?")
        method = normalize_method(name)
        sub_params = parse_query(query) if query else {}
        sub_params.pop("auth", None)  # outer auth only
        sub_params = _substitute(sub_params, {k: {str(i): v for i, v in d.items()} for k, d in results.items()})
        try:
            if method == "batch":
                raise RestError("ERROR_BATCH_METHOD_NOT_ALLOWED", "Method is not allowed for batch usage", 405)
            spec = lookup(method)
            if not spec.batchable:
                raise RestError("ERROR_BATCH_METHOD_NOT_ALLOWED", "Method is not allowed for batch usage", 405)
            body = call_method(sb, ctx, auth, spec, sub_params)
        except RestError as exc:
            errors[key] = exc.body()
            if halt:
                break
            continue
        results["result"][key] = body["result"]
        if "total" in body:
            results["result_total"][key] = body["total"]
        if "next" in body:
            results["result_next"][key] = body["next"]
        times[key] = body["time"]
    return {
        "result": php_json_array(results["result"]),
        "result_error": php_json_array(errors),
        "result_total": php_json_array(results["result_total"]),
        "result_next": php_json_array(results["result_next"]),
        "result_time": php_json_array(times),
    }


def _upload(sb: Sandbox, ctx: CallContext, params: dict[str, Any], files: dict[str, UploadedFile]) -> Response:
    """``POST {portal}/rest/upload.json?auth=…&token=…`` (the second step of attachRecord's uploadUrl)."""
    from b24sandbox import telephony

    upload = files.get("file")
    if upload is None:
        return error_response(RestError("ERROR_ARGUMENT", "File is not found", 400))
    try:
        result = telephony.handle_upload(ctx, str(params["token"]), upload.filename, upload.content)
    except RestError as exc:
        return error_response(exc)
    return json_response(200, {"result": result, "time": sb.time_block(ctx.portal, sb.clock.now(), 0.05)})


def build_batch_command(method: str, params: dict[str, Any]) -> str:
    """Helper for tests: ``("user.get", {"ID": 1})`` → ``"user.get?ID=1"`` (values URL-encoded, §2.6)."""
    from b24sandbox.phparray import flatten

    return f"{method}?{urlencode(flatten(params))}" if params else method

