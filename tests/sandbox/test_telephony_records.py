"""telephony.externalCall.attachRecord and the uploadUrl step on the sandbox portal
(docs/bitrix24-contract.md §5.5, §2.6, §12)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from test_telephony_harness import Harness

MP3 = b"ID3\x03\x00\x00\x00\x00\x00\x0f" + bytes(range(256)) * 4
NOT_BASE64 = "File content is not properly encoded. Base64 encoding is expected."
NOT_FINISHED = "Call is not found in the statistic table. Looks like it is not finished yet."


@pytest.fixture
def h() -> Iterator[Harness]:
    with Harness.start() as harness:
        yield harness


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_base64_content_is_attached_to_the_finished_call(h: Harness) -> None:
    """§5.5: FILENAME + FILE_CONTENT → {"FILE_ID": n}; the snapshot has name, size and sha256 of the bytes."""
    call_id = h.finished_call()
    result = h.ok(
        "telephony.externalcall.attachRecord",
        {"CALL_ID": call_id, "FILENAME": "call-001.mp3", "FILE_CONTENT": b64(MP3)},
    )
    assert isinstance(result["FILE_ID"], int) and list(result) == ["FILE_ID"]
    recording = h.call(call_id)["recording"]
    assert recording == {
        **recording,
        "file_id": result["FILE_ID"],
        "filename": "call-001.mp3",
        "size": len(MP3),
        "sha256": hashlib.sha256(MP3).hexdigest(),
        "source": "FILE_CONTENT",
    }
    assert h.state.recordings[call_id].content == MP3


def test_attaching_before_finish_is_refused(h: Harness) -> None:
    """§5.5: only after finish, whatever the mode; nothing is stored."""
    call_id = h.register()["CALL_ID"]
    for params in (
        {"FILENAME": "a.mp3", "FILE_CONTENT": b64(MP3)},
        {"FILENAME": "a.mp3"},
        {"RECORD_URL": "https://pbx.example.test/a.mp3"},
    ):
        assert h.fail("telephony.externalcall.attachrecord", {"CALL_ID": call_id, **params}) == (
            400,
            "",
            NOT_FINISHED,
        )
    assert h.call(call_id)["recording"] is None


def test_neither_url_nor_filename_is_refused_first(h: Harness) -> None:
    """§5.5: "Required parameters are not set. Request should contain either URL or FILENAME parameter"."""
    assert h.fail(
        "telephony.externalcall.attachrecord", {"CALL_ID": "externalCall.unknown.1", "FILE_CONTENT": b64(MP3)}
    ) == (400, "", "Required parameters are not set. Request should contain either URL or FILENAME parameter")


@pytest.mark.parametrize(
    ("filename", "content", "message"),
    [
        ("", b64(MP3), "File name is empty"),
        ("call.ogg", b64(MP3), "Wrong file extension. Only wav and mp3 are allowed"),
        ("call.MP3", b64(MP3), "Wrong file extension. Only wav and mp3 are allowed"),
        ("call", b64(MP3), "Wrong file extension. Only wav and mp3 are allowed"),
        ("call.wav", "", "File content is empty."),
        ("call.wav", "%%% not base64 %%%", NOT_BASE64),
        ("call.wav", "-_--" * 8, NOT_BASE64),  # URL-safe alphabet
        ("call.wav", "data:audio/wav;base64,UklGRg==", NOT_BASE64),
    ],
)
def test_bad_files_are_refused_and_nothing_is_stored(
    h: Harness, filename: str, content: str, message: str
) -> None:
    """§5.5: file name, extension (wav/mp3, compared as written), empty and non-Base64 content (URL-safe
    Base64 and data: URIs too: PHP would skip the odd characters and store a corrupted file)."""
    call_id = h.finished_call()
    assert h.fail(
        "telephony.externalcall.attachrecord",
        {"CALL_ID": call_id, "FILENAME": filename, "FILE_CONTENT": content},
    ) == (400, "", message)
    assert h.call(call_id)["recording"] is None


def test_base64_that_went_through_a_form_encoder_still_decodes(h: Harness) -> None:
    """§5.5: like PHP's saveFile, spaces count as '+', line breaks and missing padding are tolerated."""
    data = b"\xfb\xef\xbe" * 50 + b"x"  # encodes with '+' and '/' and needs padding
    mangled = b64(data).replace("+", " ").rstrip("=")
    mangled = "\n".join(mangled[i : i + 60] for i in range(0, len(mangled), 60))
    call_id = h.finished_call()
    h.ok(
        "telephony.externalcall.attachrecord",
        {"CALL_ID": call_id, "FILENAME": "a.wav", "FILE_CONTENT": mangled},
    )
    assert h.state.recordings[call_id].content == data


def test_upload_url_two_step_flow(h: Harness) -> None:
    """§5.5: FILENAME without FILE_CONTENT → uploadUrl (/rest/upload.json?auth=…&token=telephony|…) and
    fieldName "file"; a multipart POST there attaches the file under its uploaded name."""
    call_id = h.finished_call()
    answer = h.ok("telephony.externalcall.attachrecord", {"CALL_ID": call_id, "FILENAME": "call.mp3"})
    assert answer["fieldName"] == "file" and list(answer) == ["uploadUrl", "fieldName"]
    url = urlsplit(answer["uploadUrl"])
    assert (url.scheme, url.netloc, url.path) == ("https", h.portal.domain, "/rest/upload.json")
    query = parse_qs(url.query)
    assert query["auth"] == [h.token] and query["token"][0].startswith("telephony|")
    assert "%7C" in answer["uploadUrl"]
    assert h.call(call_id)["recording"] is None

    response = requests.post(
        answer["uploadUrl"],
        files={answer["fieldName"]: ("2026-03-10-call.mp3", MP3, "audio/mpeg")},
        timeout=5,
    )
    assert response.status_code == 200
    file_id = response.json()["result"]["FILE_ID"]
    recording = h.call(call_id)["recording"]
    assert (recording["file_id"], recording["filename"], recording["size"], recording["source"]) == (
        file_id,
        "2026-03-10-call.mp3",
        len(MP3),
        "uploadUrl",
    )


def test_upload_checks_the_uploaded_files_name_not_filename(h: Harness) -> None:
    """§5.5: step one hands out an uploadUrl before any name check; the upload itself enforces wav/mp3."""
    call_id = h.finished_call()
    answer = h.ok("telephony.externalcall.attachrecord", {"CALL_ID": call_id, "FILENAME": "notes.txt"})
    refused = requests.post(
        answer["uploadUrl"], files={"file": ("notes.txt", b"text", "text/plain")}, timeout=5
    )
    assert (refused.status_code, refused.json()["error_description"]) == (
        400,
        "Wrong file extension. Only wav and mp3 are allowed",
    )
    accepted = requests.post(
        answer["uploadUrl"], files={"file": ("call.wav", b"RIFF....WAVE", "audio/wav")}, timeout=5
    )
    assert accepted.status_code == 200 and h.call(call_id)["recording"]["filename"] == "call.wav"


def test_upload_token_is_bound_to_its_portal_and_cannot_be_forged(h: Harness) -> None:
    """§5.5/§12: a token from one portal does nothing on another; a tampered token is refused."""
    call_id = h.finished_call()
    answer = h.ok("telephony.externalcall.attachrecord", {"CALL_ID": call_id, "FILENAME": "call.mp3"})
    token = parse_qs(urlsplit(answer["uploadUrl"]).query)["token"][0]

    other = h.sb.create_portal("beta.bitrix24.test")
    h.sb.install(other)
    other_auth = h.sb.issue_token(other, 1)["access_token"]
    cross = requests.post(
        "https://beta.bitrix24.test/rest/upload.json",
        params={"auth": other_auth, "token": token},
        files={"file": ("call.mp3", MP3, "audio/mpeg")},
        timeout=5,
    )
    assert cross.status_code == 400
    forged_call = base64.b64encode(b"callId=externalCall.other.1").decode()
    forged = "|".join(["telephony", forged_call, token.split("|")[2]])
    tampered = requests.post(
        f"https://{h.portal.domain}/rest/upload.json",
        params={"auth": h.token, "token": forged},
        files={"file": ("call.mp3", MP3, "audio/mpeg")},
        timeout=5,
    )
    assert tampered.status_code == 400
    assert h.call(call_id)["recording"] is None and other.telephony.recordings == {}


def test_record_url_is_downloaded_synchronously(h: Harness) -> None:
    """§5.5 RECORD_URL: fetched during the call; the name comes from the URL unless FILENAME is given."""
    h.rsps.add(responses.GET, "https://pbx.example.test/rec/2026/03/abc.mp3", body=MP3, status=200)
    call_id = h.finished_call()
    result = h.ok(
        "telephony.externalcall.attachrecord",
        {"CALL_ID": call_id, "RECORD_URL": "https://pbx.example.test/rec/2026/03/abc.mp3"},
    )
    recording = h.call(call_id)["recording"]
    assert (recording["file_id"], recording["filename"], recording["size"], recording["record_url"]) == (
        result["FILE_ID"],
        "abc.mp3",
        len(MP3),
        "https://pbx.example.test/rec/2026/03/abc.mp3",
    )


def test_record_url_wins_over_file_content_and_filename_names_it(h: Harness) -> None:
    """§5.5: with RECORD_URL present the download is used; FILENAME only names the file."""
    h.rsps.add(responses.GET, "https://pbx.example.test/download?id=7", body=MP3, status=200)
    call_id = h.finished_call()
    h.ok(
        "telephony.externalcall.attachrecord",
        {
            "CALL_ID": call_id,
            "RECORD_URL": "https://pbx.example.test/download?id=7",
            "FILENAME": "call-7.mp3",
            "FILE_CONTENT": b64(b"ignored"),
        },
    )
    recording = h.call(call_id)["recording"]
    assert (recording["filename"], recording["size"], recording["source"]) == (
        "call-7.mp3",
        len(MP3),
        "RECORD_URL",
    )


@pytest.mark.parametrize(
    ("url", "status", "body", "message"),
    [
        ("https://pbx.example.test/rec/gone.mp3", 404, b"", "Server returns HTTP error code 404"),
        ("https://pbx.example.test/rec/partial.mp3", 206, MP3, "Server returns HTTP error code 206"),
        ("https://pbx.example.test/rec/download", 200, MP3, "File type is not allowed"),
    ],
)
def test_record_url_failures(h: Harness, url: str, status: int, body: bytes, message: str) -> None:
    """§5.5: anything but HTTP 200 → "Server returns HTTP error code {N}"; a nameless audio file is refused."""
    h.rsps.add(responses.GET, url, body=body, status=status)
    call_id = h.finished_call()
    assert h.fail("telephony.externalcall.attachrecord", {"CALL_ID": call_id, "RECORD_URL": url}) == (
        400,
        "",
        message,
    )
    assert h.call(call_id)["recording"] is None


def test_unreachable_record_url(h: Harness) -> None:
    """§5.5: a connection failure is an error of the call, not a hang."""
    h.rsps.add(responses.GET, "https://pbx.example.test/rec/x.mp3", body=requests.ConnectionError("refused"))
    call_id = h.finished_call()
    assert h.fail(
        "telephony.externalcall.attachrecord",
        {"CALL_ID": call_id, "RECORD_URL": "https://pbx.example.test/rec/x.mp3"},
    )[2] == ("NETWORK: Connection failed")


def test_private_record_urls_can_be_blocked_like_the_cloud_does(h: Harness) -> None:
    """§5.5 (current docs): "Record URL resolves to a non-public address and was blocked." when enabled."""
    h.state.block_private_record_urls = True
    call_id = h.finished_call()
    assert h.fail(
        "telephony.externalcall.attachrecord",
        {"CALL_ID": call_id, "RECORD_URL": "http://127.0.0.1:8080/rec.mp3"},
    )[2] == ("Record URL resolves to a non-public address and was blocked.")


def test_a_second_attach_replaces_the_first(h: Harness) -> None:
    """§5.5: a repeat call for the same CALL_ID replaces the recording (new FILE_ID, activity points to it)."""
    h.portal.crm.add_contact("Иван", "Петров", phones=["+74951112233"])
    call_id = h.finished_call()
    first = h.ok(
        "telephony.externalcall.attachrecord",
        {"CALL_ID": call_id, "FILENAME": "a.mp3", "FILE_CONTENT": b64(b"first")},
    )["FILE_ID"]
    second = h.ok(
        "telephony.externalcall.attachrecord",
        {"CALL_ID": call_id, "FILENAME": "b.wav", "FILE_CONTENT": b64(b"second")},
    )["FILE_ID"]
    assert second != first
    call = h.call(call_id)
    assert (call["recording"]["file_id"], call["recording"]["filename"]) == (second, "b.wav")
    assert [r["file_id"] for r in call["replaced_recordings"]] == [first]
    assert h.portal.crm.activities[call["crm_activity_id"]].record_file_ids == [second]


def test_attach_record_is_not_allowed_in_batch(h: Harness) -> None:
    """§2.6/§5.5: file methods are refused inside batch with ERROR_BATCH_METHOD_NOT_ALLOWED."""
    call_id = h.finished_call()
    result = h.ok(
        "batch",
        {
            "cmd": {
                "rec": f"telephony.externalcall.attachrecord?CALL_ID={call_id}&FILENAME=a.mp3"
                f"&FILE_CONTENT={b64(b'abc')}"
            }
        },
    )
    assert result["result_error"]["rec"]["error"] == "ERROR_BATCH_METHOD_NOT_ALLOWED"
    assert h.call(call_id)["recording"] is None


def test_attach_record_works_with_webhooks(h: Harness) -> None:
    """§5: attachRecord has webhook examples, so a webhook may attach to the app's call."""
    call_id = h.finished_call()
    code = h.sb.add_webhook(h.portal, 1, ["telephony"])
    h.ok(
        "telephony.externalCall.attachRecord",
        {"CALL_ID": call_id, "FILENAME": "a.mp3", "FILE_CONTENT": b64(MP3)},
        webhook=(1, code),
    )
    assert h.call(call_id)["recording"]["size"] == len(MP3)


def test_upload_url_points_at_the_real_http_server_in_server_mode() -> None:
    """§5.5 + server mode: the uploadUrl is built from how the portal is addressed
    ({base}/portal/{domain}/rest/upload.json), and posting a file there over real HTTP attaches it."""
    from test_telephony_harness import APP_URL, CLIENT_ID, START

    from b24sandbox.clock import ManualClock
    from b24sandbox.sandbox import Sandbox

    sb = Sandbox(clock=ManualClock(START))
    sb.register_app(CLIENT_ID, "app-secret", scopes=["telephony"], app_url=APP_URL)
    sb.event_transport = lambda url, body, headers: 200
    sb.page_transport = lambda url, body, headers: 200
    portal = sb.create_portal("acme.bitrix24.test")
    sb.install(portal)
    with sb.serve() as server:
        rest = f"{server.portal_url(portal.domain)}/rest/"
        auth = sb.issue_token(portal, 1)["access_token"]

        def call(method: str, params: dict[str, object]) -> dict[str, object]:
            response = requests.post(rest + method, json={**params, "auth": auth}, timeout=5)
            assert response.status_code == 200, response.text
            return response.json()["result"]

        call_id = call(
            "telephony.externalcall.register", {"USER_ID": 2, "PHONE_NUMBER": "+74951112233", "TYPE": 2}
        )["CALL_ID"]
        call("telephony.externalcall.finish", {"CALL_ID": call_id, "USER_ID": 2, "DURATION": 5})
        answer = call("telephony.externalcall.attachrecord", {"CALL_ID": call_id, "FILENAME": "call.mp3"})
        assert answer["uploadUrl"].startswith(f"{rest}upload.json?auth=")
        uploaded = requests.post(
            answer["uploadUrl"], files={"file": ("call.mp3", MP3, "audio/mpeg")}, timeout=5
        )
        assert uploaded.status_code == 200, uploaded.text
    assert portal.telephony.recordings[call_id].content == MP3
