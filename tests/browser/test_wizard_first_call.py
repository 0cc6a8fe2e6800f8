"""From a fresh install to the first call, in a real browser, as a newcomer does it: Install on the portal
page, the setup wizard in the frame, the demo PBX's settings page in another tab (paste the events URL and
secret, read back the command URL), both directions checked, installFinish, then the PBX plays a call and
the app's Activity page shows it with its card and recording. Bitrix24 is the sandbox over HTTP, the
connector Django's live server plus a real Celery worker, the PBX the simulator."""

from __future__ import annotations

import pytest

from browser.browser_catalogues import pairs
from browser.browser_fixtures import AppStack, AppView, app_frame, wait_until
from calls.models import Call, PbxConnection
from pbxsim import SimServer
from pbxsim.demo import incoming_call
from portals.models import Portal

E2E_ENV = {
    "CALLS_RETRY_BASE_SECONDS": "0.3",
    "CALLS_RETRY_MAX_SECONDS": "1.5",
    "CALLS_FINISH_SETTLE_SECONDS": "1",
    "CALLS_SWEEP_GRACE_SECONDS": "2",
    "RECORDINGS_ALLOW_HTTP": "1",
    "RECORDINGS_ALLOW_PRIVATE_HOSTS": "1",
}


@pytest.fixture
def demo_pbx() -> SimServer:
    with SimServer(line_number="+74990000001", line_name="Demo line", pair_options={"speed": 0.0}) as pbx:
        yield pbx


@pytest.fixture
def worker(app_stack, monkeypatch, celery_worker_process):
    """A real worker started after app_stack switched the settings it inherits."""
    return celery_worker_process


@pytest.fixture(autouse=True)
def _fast_call_settings(monkeypatch):
    for key, value in E2E_ENV.items():
        monkeypatch.setenv(key, value)


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_a_newcomer_goes_from_install_to_the_first_calls_card_and_recording(app_stack: AppStack, demo_pbx, worker,
                                                                            lang):
    t = pairs(lang, "djangojs")
    b24 = app_stack.create_portal(lang=lang)
    agent = next(u for u in sorted(b24.users.values(), key=lambda u: u.id)
                 if u.active and u.uf_phone_inner and u.user_type == "employee" and u.id != 1)
    watched = app_stack.open_page()
    try:
        _install_to_first_call(app_stack, demo_pbx, worker, watched, b24, agent, t, lang)
    except Exception:
        watched.allow_console(".")  # the failure itself says what went wrong
        raise


def _install_to_first_call(app_stack, demo_pbx, worker, watched, b24, agent, t, lang) -> None:  # type: ignore[no-untyped-def]
    view = AppView(watched, app_stack)
    page = view.page
    page.goto(f"{app_stack.sandbox_url}/")
    page.click("form[action='/frame/install'] button")

    # --- the wizard in the installer's frame: create the connection, its secret shown once
    frame = app_frame(page)
    frame.wait_for_selector("#page-wizard[data-step=connect]", timeout=30_000)
    assert frame.evaluate("() => document.documentElement.lang") == lang
    frame.click(".connection-submit")
    frame.wait_for_selector(".secret-reveal")
    events_url = frame.input_value(".secret-reveal [data-field=events_url] input")
    secret = frame.input_value(".secret-reveal [data-field=secret] input")
    assert events_url.startswith(app_stack.app_url) and secret.startswith("whsec_")

    # --- the PBX's own settings page in another tab: paste, connect, read the command URL back
    pbx_tab = watched.context.new_page()
    pbx_tab.goto(f"{demo_pbx.base_url}/")
    pbx_tab.fill("#events_url", events_url)
    pbx_tab.fill("#secret", secret)
    pbx_tab.click("#connect")
    command_url = pbx_tab.inner_text(".pairing .command-url")
    recording_host = pbx_tab.inner_text(".pairing .recording-host")
    pbx_tab.close()
    assert command_url.startswith(demo_pbx.base_url)

    frame.fill("input[name=originate_url]", command_url)
    frame.fill("input[name=recording_hosts]", recording_host)
    frame.click(".wizard-connect .connection-form:has(input[name=originate_url]) .connection-submit")

    # --- both directions: the PBX's signed request already arrived; the test command is answered
    frame.wait_for_selector("#page-wizard[data-step=check]")
    frame.wait_for_selector(".check-inbound[data-state=ok]", timeout=20_000)
    frame.click(".send-test")
    frame.wait_for_selector(".check-outbound[data-state=ok]", timeout=20_000)
    view.assert_fits()

    # --- employees, lines, defaults: reviewed as they are, then finish
    for step, page_id in (("employees", "page-employees"), ("lines", "page-lines"), ("defaults", "page-handling")):
        frame.click(".wizard-next")
        frame.wait_for_selector(f"#page-wizard[data-step={step}] #{page_id}[data-loaded=true]")
        assert frame.query_selector(f"#{page_id} .error-alert") is None, frame.inner_text(f"#{page_id}")
        view.assert_fits()
    frame.click(".wizard-next")
    frame.wait_for_selector("#page-wizard[data-step=finish]")
    portal = Portal.objects.get(member_id=b24.member_id)
    assert b24.app.installed is False
    with page.expect_navigation(url=lambda url: "install_finished=Y" in url):
        frame.click(".wizard-finish-button")
    assert b24.app.installed is True

    # --- straight into the app: the status, never an empty frame
    frame = app_frame(page)
    frame.wait_for_selector("#page-status .status-area", timeout=30_000)
    assert frame.query_selector("#page-wizard") is None

    # --- the PBX plays the first call: its card opens for the agent, the recording is attached
    pairing = demo_pbx.state.pairings[PbxConnection.objects.get(portal=portal).public_id]
    # Played at half real time (ended 17 s after the ring), as a real call would be: with every event at once a
    # loaded worker may first see the call already ended, and an ended call rightly opens no card.
    pbx_call_id, extension = incoming_call(demo_pbx, pairing, "+74951234567", fallback_extension=agent.uf_phone_inner,
                                           speed=2)
    answering = b24.find_user(phone_inner=extension)  # the client's responsible manager (/route), or the fallback

    def delivered():
        call = Call.objects.filter(connection__portal=portal, pbx_call_id=pbx_call_id).first()
        if call is None or not call.b24_call_id:
            return None
        b24_call = next((c for c in app_stack.sandbox.snapshot(b24)["telephony"]["calls"]
                         if c["call_id"] == call.b24_call_id), None)
        return b24_call if b24_call and b24_call["finished"] and b24_call["recording"] else None

    def state() -> str:
        call = Call.objects.filter(connection__portal=portal, pbx_call_id=pbx_call_id).first()
        return "no call" if call is None else f"{call.status} b24={call.b24_call_id} rec={call.recording_attached_at}"

    try:
        b24_call = wait_until(delivered, timeout=90, what="the call in Bitrix24 with its recording")
    except AssertionError as exc:
        errors = [line for line in worker.log().splitlines() if "ERROR" in line or "Traceback" in line or "rror:" in line]
        raise AssertionError(f"{exc}: {state()}\n" + "\n".join(errors[-30:])) from None
    shown = [h for h in b24_call["history"] if h["op"] == "show"]
    assert answering is not None and shown, b24_call["history"]
    assert answering.id in {int(u) for h in shown for u in h.get("users", [])}, b24_call["history"]

    # --- the app's Activity page shows it, with its timeline and recording
    frame.click("#app-tabs .tab-activity")
    frame.wait_for_selector(".calls-table .call-open")
    frame.click(".calls-table .call-open")
    frame.wait_for_selector("#page-call .call-timeline")
    assert "+7" in frame.inner_text("#page-call .call-summary") or "495" in frame.inner_text("#page-call .call-summary")
    assert frame.inner_text(".call-recording").strip() not in ("", t.get("none", "none"))
    view.assert_fits()
