"""The Marketplace card's screenshots: every page of the app at 1280x720, open in the portal's slider, with
realistic demo data, in English and in Russian, into docs/marketplace/screenshots/{en,ru}/.

Run by ``scripts/screenshots``. Everything is the product for real, on a throw-away SQLite database: Django
(runserver) and a Celery worker, the Bitrix24 sandbox with a portal per language, the demo PBX. Each portal
goes through the setup wizard in Chromium as an admin would (the PBX paired on its settings page), then
the demo PBX plays a day's worth of calls (answered with recordings, missed, busy, a click-to-call and a
CRM callback) before the pages are photographed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 1280, "height": 720}
PAGES = ("status", "connections", "employees", "lines", "handling", "activity", "help")

# An English-speaking company for the English card (the sandbox's demo company is Russian).
EN_STAFF = [
    ("Olivia", "Bennett", "Head of sales", "100", True),
    ("James", "Carter", "Sales manager", "101", False),
    ("Sophia", "Nguyen", "Account manager", "102", False),
    ("Daniel", "Fischer", "Sales manager", "103", False),
    ("Emma", "Rossi", "Support engineer", "104", False),
    ("Liam", "O'Connor", "Support engineer", "105", False),
    ("Ava", "Kowalski", "Account manager", "106", False),
    ("Noah", "Patel", "Operator", "107", False),
    ("Mia", "Johansson", "Operator", "108", False),
    ("Lucas", "Martin", "Accountant", "", False),
    ("Grace", "Lee", "Sales manager", "110", False),
    ("Henry", "Walker", "Operator", "111", False),
]
EN_CLIENTS = [
    ("John", "Miller", "+1 415 555 0134"),
    ("Sarah", "Thompson", "+44 20 7946 0321"),
    ("Michael", "Brown", "+1 212 555 0187"),
    ("Laura", "Schmidt", "+49 30 901820"),
]
RU_CALLERS = ("+74951234567", "+79165551234", "+78126000000", "+74959876543")


def _wait_http(url: str, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except Exception:
            time.sleep(0.3)
    raise SystemExit(f"{what} did not start ({url})")


class Stack:
    def __init__(self, var: Path, ports: tuple[int, int, int]) -> None:
        self.var = var
        self.app_port, self.sandbox_port, self.pbx_port = ports
        self.app_url = f"http://localhost:{self.app_port}"
        self.sandbox_url = f"http://127.0.0.1:{self.sandbox_port}"
        self.env = {
            **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")},
            "APP_ENV": "development", "APP_VAR_DIR": str(var), "APP_BASE_URL": self.app_url,
            "BITRIX24_ALLOW_HTTP": "1", "BITRIX24_OAUTH_SERVER": f"{self.sandbox_url}/oauth",
            "BITRIX24_OAUTH_HOSTS": "oauth.bitrix.info,127.0.0.1", "RECORDINGS_ALLOW_PRIVATE_HOSTS": "1",
            "ORIGINATE_ALLOW_PRIVATE_HOSTS": "1",
            "RECORDINGS_ALLOW_HTTP": "1", "CALLS_FINISH_SETTLE_SECONDS": "1", "PYTHONUNBUFFERED": "1",
            "CELERY_BROKER_NAMESPACE": "screenshots",
        }
        self.processes: list[subprocess.Popen] = []

    def start(self) -> None:
        os.environ.update(self.env)
        # Playwright's sync API runs an event loop in this thread; the ORM reads between browser steps are
        # plain synchronous calls all the same.
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "telephony_app.settings")
        python = sys.executable
        subprocess.run([python, "manage.py", "migrate", "--no-input", "-v", "0"], cwd=ROOT, env=self.env, check=True)
        log = (self.var / "web.log").open("wb")
        self.processes.append(subprocess.Popen([python, "manage.py", "runserver", f"localhost:{self.app_port}",
                                                "--noreload"], cwd=ROOT, env=self.env, stdout=log, stderr=log))
        from benchmarks import harness

        self.worker = harness.start_celery_worker(self.var / "worker.log", self.env, name="screenshots@%h")
        import django

        django.setup()
        from b24sandbox.clock import RealClock
        from b24sandbox.sandbox import Sandbox
        from pbxsim import SimServer

        self.sandbox = Sandbox(clock=RealClock(), allow_http=True, seed=2026)
        self.sandbox.register_app(
            "local.sandbox-app", "sandbox-client-secret",
            app_url=f"{self.app_url}/bitrix24/app/", installer_url=f"{self.app_url}/bitrix24/install/",
            install_event_url=f"{self.app_url}/bitrix24/events/",
        )
        self.sandbox_server = self.sandbox.serve("127.0.0.1", self.sandbox_port)
        self.pbx = SimServer("127.0.0.1", self.pbx_port, line_number="+74990000001", line_name="Main line",
                             pair_options={"speed": 0.0}).start()
        _wait_http(f"{self.app_url}/bitrix24/app/", "the app")

    def stop(self) -> None:
        from benchmarks import harness

        for process in self.processes:
            process.terminate()
        if getattr(self, "worker", None) is not None:
            harness.stop_process_group(self.worker)
        for name in ("pbx", "sandbox_server"):
            if getattr(self, name, None) is not None:
                getattr(self, name).stop()


def english_portal(stack: Stack) -> Any:
    from b24sandbox import crm
    from b24sandbox.state import User

    users = [User(i, first, last, f"{first.lower()}.{last.lower().replace(chr(39), '')}@northwind.example",
                  is_admin=admin, uf_phone_inner=ext or None, work_position=position, is_online=i % 3 != 0)
             for i, (first, last, position, ext, admin) in enumerate(EN_STAFF, start=1)]
    portal = stack.sandbox.create_portal("northwind.bitrix24.com", users=users, lang="en", country="US")
    crm.seed_demo(portal, stack.sandbox.rng("en"))
    for index, (first, last, phone) in enumerate(EN_CLIENTS):
        portal.crm.add_contact(first, last, phones=[(phone, "WORK")], assigned_by_id=2 + index % 4)
    return portal


def russian_portal(stack: Stack) -> Any:
    return stack.sandbox.create_portal("vostok-torg.bitrix24.ru", seed="demo", lang="ru")


def run_wizard(stack: Stack, page: Any, portal: Any, lang: str, out: Path) -> None:
    page.goto(f"{stack.sandbox_url}/")
    page.evaluate("""([member, lang]) => {
        const form = document.createElement('form'); form.method = 'post'; form.action = '/frame/install';
        for (const [k, v] of Object.entries({portal: member, lang, view: 'slider'})) {
            const input = document.createElement('input'); input.type = 'hidden'; input.name = k; input.value = v;
            form.appendChild(input);
        }
        document.body.appendChild(form); form.submit();
    }""", [portal.member_id, lang])
    frame = page.wait_for_selector("#app-frame").content_frame()
    frame.wait_for_selector("#page-wizard[data-step=connect]", timeout=30_000)
    frame.click(".connection-submit")
    frame.wait_for_selector(".secret-reveal")
    events_url = frame.input_value(".secret-reveal [data-field=events_url] input")
    secret = frame.input_value(".secret-reveal [data-field=secret] input")
    settle(page)
    page.screenshot(path=str(out / "01-wizard-connect.png"))
    # the admin pastes both into the PBX's own settings page, which shows its command URL
    pbx_page = page.context.new_page()
    pbx_page.set_viewport_size(VIEWPORT)
    pbx_page.goto(f"{stack.pbx.base_url}/")
    pbx_page.fill("#events_url", events_url)
    pbx_page.fill("#secret", secret)
    pbx_page.click("#connect")
    command_url = pbx_page.inner_text(".pairing .command-url")
    recording_host = pbx_page.inner_text(".pairing .recording-host")
    pbx_page.close()
    frame.fill("input[name=originate_url]", command_url)
    frame.fill("input[name=recording_hosts]", recording_host)
    frame.click(".wizard-connect .connection-form:has(input[name=originate_url]) .connection-submit")
    frame.wait_for_selector(".check-inbound[data-state=ok]", timeout=30_000)
    frame.click(".send-test")
    try:
        frame.wait_for_selector(".check-outbound[data-state=ok]", timeout=30_000)
    except Exception:
        raise SystemExit("the test command was not answered: " + frame.inner_text(".check-outbound")) from None
    settle(page)
    page.screenshot(path=str(out / "02-wizard-check.png"))
    for step, loaded in (("employees", "#page-employees"), ("lines", "#page-lines"), ("defaults", "#page-handling"),
                         ("finish", "")):
        frame.click(".wizard-next")
        frame.wait_for_selector(f"#page-wizard[data-step={step}] {loaded}[data-loaded=true]" if loaded
                                else f"#page-wizard[data-step={step}]")
    with page.expect_navigation(url=lambda url: "install_finished=Y" in url):
        frame.click(".wizard-finish-button")


def play_calls(stack: Stack, portal: Any, lang: str) -> None:
    """A morning of calls on the portal's connector (spread over the last three hours, the latest a plain
    answered one); waits until Bitrix24 has every call that reached it, recordings included."""
    from calls.models import Call, PbxConnection
    from pbxsim import PbxSimulator
    from pbxsim.demo import incoming_call
    from pbxsim.scenarios import ScenarioParams, build, play
    from portals.models import Portal

    ours = Portal.objects.get(member_id=portal.member_id)
    pairing = stack.pbx.state.pairings[PbxConnection.objects.get(portal=ours).public_id]
    agents = [u.uf_phone_inner for u in sorted(portal.users.values(), key=lambda u: u.id)
              if u.active and u.uf_phone_inner and u.user_type == "employee"][1:6]
    callers = [c[2] for c in EN_CLIENTS] if lang == "en" else list(RU_CALLERS)
    sim = PbxSimulator(pairing.app_url, pairing.connection_id, pairing.secret)
    now = datetime.now(UTC)
    # in the order they happened, so the list's order and its times agree
    for minutes, name, caller, pair in ((176, "missed_call", callers[1], (agents[2], agents[3])),
                                        (131, "blind_transfer", callers[2], (agents[3], agents[4]))):
        params = ScenarioParams(client_number=caller, line_number=pairing.line_number, agents=pair,
                                recording_base_url=stack.pbx.recording_base_url, base_time=now - timedelta(minutes=minutes),
                                call_id=f"shot-{name}-{int(time.time() * 1000)}")
        play(sim, build(name, params=params))
    for index, (minutes, caller) in enumerate(zip((97, 64, 38, 12), callers, strict=False)):
        incoming_call(stack.pbx, pairing, caller, fallback_extension=agents[index % len(agents)], speed=0,
                      base_time=now - timedelta(minutes=minutes))
    stack.sandbox.click_to_call(portal, 2, callers[0])
    stack.sandbox.submit_callback_form(portal, callers[3], text="Please call me back about the order")
    settled = (Call.Status.DONE, Call.Status.IGNORED, Call.Status.DEAD)
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        calls = Call.objects.filter(connection__portal=ours)
        if calls.count() >= len(callers) + 4 and not calls.exclude(status__in=settled).exists():
            break
        time.sleep(1)
    time.sleep(6)  # the late recordings of the last calls


def fill_settings(page: Any) -> None:
    """What an admin sets after the wizard: the line's name, its default extension and CRM source."""
    frame = page.wait_for_selector("#app-frame").content_frame()
    frame.click("#app-tabs .tab-lines")
    frame.wait_for_selector("#page-lines[data-loaded=true] .line-card")
    frame.fill(".line-card input[name=name]", "Sales" if frame.evaluate("document.documentElement.lang") == "en"
               else "Отдел продаж")
    frame.fill(".line-card input[name=default_extension]", "100")
    frame.fill(".line-card input[name=crm_source]", "CALL")
    frame.click(".line-card .save-line")
    frame.wait_for_selector(".line-card .saved-note")


def settle(page: Any) -> None:
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(700)  # the frame's resize round trip after the last render


def shoot_pages(stack: Stack, page: Any, portal: Any, lang: str, out: Path) -> None:
    page.goto(f"{stack.sandbox_url}/frame/?portal={portal.member_id}&user_id=1&lang={lang}&view=slider")
    frame = page.wait_for_selector("#app-frame").content_frame()
    frame.wait_for_selector("#page-status .status-area", timeout=30_000)
    for number, name in enumerate(PAGES, start=3):
        frame.click(f"#app-tabs .tab-{name}")
        frame.wait_for_selector(f"#page-{name}[data-loaded=true]")
        settle(page)
        page.screenshot(path=str(out / f"{number:02d}-{name}.png"))
        if name == "activity" and frame.query_selector(".calls-table .call-open"):
            frame.click(".calls-table .call-open")
            frame.wait_for_selector("#page-call[data-loaded=true] .call-timeline")
            settle(page)
            page.screenshot(path=str(out / f"{number:02d}-activity-call.png"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lang", action="append", choices=["en", "ru"], help="default: both")
    parser.add_argument("--out", default=str(ROOT / "docs" / "marketplace" / "screenshots"))
    parser.add_argument("--ports", default="8150,8151,8152", help="app, sandbox and PBX ports")
    args = parser.parse_args(argv)
    languages = args.lang or ["en", "ru"]
    if len(languages) > 1:
        # one fresh stack (database, worker, sandbox, PBX) per language: a process sets Django up once
        for lang in languages:
            subprocess.run([sys.executable, __file__, "--lang", lang, "--out", args.out, "--ports", args.ports],
                           check=True)
        return 0
    ports = tuple(int(p) for p in args.ports.split(","))
    stack = Stack(Path(tempfile.mkdtemp(prefix="screenshots-")), ports)  # type: ignore[arg-type]
    try:
        stack.start()
        from playwright.sync_api import sync_playwright

        with sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            for lang in languages:
                out = Path(args.out) / lang
                out.mkdir(parents=True, exist_ok=True)
                for old in out.glob("*.png"):
                    old.unlink()
                portal = english_portal(stack) if lang == "en" else russian_portal(stack)
                stack.sandbox.set_limits(portal, enabled=False)
                context = browser.new_context(viewport=VIEWPORT, locale="en-GB" if lang == "en" else "ru-RU")
                page = context.new_page()
                run_wizard(stack, page, portal, lang, out)
                fill_settings(page)
                play_calls(stack, portal, lang)
                shoot_pages(stack, page, portal, lang, out)
                context.close()
                print(f"{lang}: {len(list(out.glob('*.png')))} screenshots in {out}")
            browser.close()
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
