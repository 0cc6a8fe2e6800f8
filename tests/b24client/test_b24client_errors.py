"""Error classification rules that callers (tasks, retries) depend on."""

from __future__ import annotations

import pytest
import requests

from b24client import errors


@pytest.mark.parametrize("code", ["expired_token", "EXPIRED_TOKEN", "Expired_Token"])
def test_codes_match_case_insensitively(code):
    assert errors.classify(code) is errors.TokenExpired


@pytest.mark.parametrize(("description", "expected"), [
    ("Call is not found (call should be registered prior to finishing", errors.NotFound),
    ("User is not found or is not active", errors.NotFound),
    ("Access denied", errors.AccessDenied),
    ("ID is not defined or invalid.", errors.InvalidRequest),
    ("The access token provided has expired.", errors.TokenExpired),
])
def test_empty_code_is_matched_on_the_description(description, expected):
    exc = errors.from_payload({"error": "", "error_description": description}, 400)
    assert type(exc) is expected


def test_description_matching_only_applies_when_the_code_is_empty():
    # A coded error whose text happens to say "not found" keeps the class of its code.
    exc = errors.from_payload({"error": "ERROR_METHOD_NOT_FOUND", "error_description": "Method not found!"}, 404)
    assert type(exc) is errors.InvalidRequest


def test_unknown_code_falls_back_on_http_status():
    assert type(errors.from_payload({"error": "BRAND_NEW"}, 503)) is errors.Transient
    assert type(errors.from_payload({"error": "BRAND_NEW"}, 400)) is errors.InvalidRequest
    assert type(errors.from_payload(None, 504)) is errors.Transient


def test_rate_limit_and_method_block_carry_their_timing():
    rl = errors.from_payload({"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}, 503,
                             "user.get", retry_after=2.5)
    mb = errors.from_payload({"error": "OPERATION_TIME_LIMIT"}, 429, "crm.item.list", blocked_until=1773131378)
    assert isinstance(rl, errors.RateLimited) and rl.retry_after == 2.5
    assert isinstance(mb, errors.MethodBlocked) and (mb.method, mb.until) == ("crm.item.list", 1773131378)


@pytest.mark.parametrize(("exc", "retryable"), [
    (errors.Transient("INTERNAL_SERVER_ERROR"), True),
    (errors.RateLimited(1.0), True),
    (errors.MethodBlocked("m", 0), True),
    (errors.TokenExpired("expired_token"), True),
    (errors.TokenDead("invalid_grant"), False),
    (errors.InvalidRequest("ERROR_CORE"), False),
    (errors.AccessDenied("insufficient_scope"), False),
    (errors.NotFound(""), False),
    (requests.ConnectionError(), True),
    (requests.ReadTimeout(), True),
    (ValueError("bug"), False),
])
def test_is_retryable(exc, retryable):
    assert errors.is_retryable(exc) is retryable


def test_error_message_names_code_method_and_status():
    exc = errors.from_payload({"error": "ACCESS_DENIED", "error_description": "Access denied!"}, 403, "app.info")
    assert str(exc) == "ACCESS_DENIED in app.info (HTTP 403): Access denied!"


def test_b24client_imports_without_django():
    import subprocess
    import sys

    code = ("import sys, b24client, b24client.client, b24client.oauth, b24client.coordination, "
            "b24client.memory_store; assert not [m for m in sys.modules if m.split('.')[0] == 'django'], 'django'")
    from pathlib import Path

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"PATH": ""},
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
