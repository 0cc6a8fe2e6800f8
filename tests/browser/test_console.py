"""The operator console in a real browser (Debian's chromium), as the vendor's staff uses it.

The done-criterion of the console: "why did portal X's call from +7… at 10:42 get no card?" is answered
from the console alone (search by the number as the customer spelled it, open the 10:42 call, read the
verdict and the REST requests), and the metrics count the same call."""

from __future__ import annotations

import json
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "calls"))

from call_scenario_fixtures import *  # noqa: F403  (fixtures: phone, recordings)
from call_scenario_fixtures import drive

from browser.offline import go_offline
from calls.models import Call, DeadLetter, ExtensionOverride
from console.models import AuditEntry

PASSWORD = "console-pw-1"


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user("ops-anna", password=PASSWORD, is_staff=True)


@pytest.fixture
def page(open_page):
    watched = open_page()
    watched.blocked = go_offline(watched.context)
    return watched


def sign_in(page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}/console/")
    page.wait_for_url(re.compile(r"/console/login/"))
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def metrics(page, live_server) -> dict[tuple[str, tuple], float]:
    response = page.request.get(f"{live_server.url}/metrics")
    assert response.ok
    samples = {}
    for family in text_string_to_metric_families(response.text()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def play_as_it_happens(phone, scenario) -> None:
    """Each delivery handled before the next arrives, as a live worker would."""
    for delivery in scenario.deliveries:
        phone.send(*delivery.events)
        drive()


def at_1042() -> datetime:
    now = datetime.now(UTC)
    today = now.replace(hour=10, minute=42, second=5, microsecond=0)
    return today if today < now else today - timedelta(days=1)


def test_a_non_staff_user_is_refused(page, live_server, django_user_model):
    django_user_model.objects.create_user("agent-boris", password=PASSWORD)
    page.allow_console(r"status of 403 \(Forbidden\)")  # the refusal itself
    sign_in(page.page, live_server, "agent-boris")
    page.page.get_by_role("heading", name="Staff only").wait_for()
    assert page.page.locator("nav").count() == 0  # no console navigation for them
    response = page.page.request.get(f"{live_server.url}/console/dead-letters/")
    assert response.status == 403


def test_why_did_the_1042_call_from_this_number_get_no_card(page, live_server, phone, staff):
    p = page.page
    before = metrics(p, live_server)
    key = ("connector_calls_unmapped_extension_total", ())

    # Earlier a call that went fine (the ring group saw the card), then the customer's 10:42 call: it rang
    # extensions 105 and 106, which no Bitrix24 user has.
    play_as_it_happens(phone, phone.scenario("ring_group_second_answers", base_time=at_1042() - timedelta(hours=1)))
    missed = phone.scenario("missed_call", agents=("105", "106"), base_time=at_1042(), call_id="pbx-1042")
    play_as_it_happens(phone, missed)

    sign_in(p, live_server, staff.username)
    p.get_by_role("heading", name="Portals, worst first").wait_for()
    p.get_by_role("searchbox", name="Search").fill("8 (916) 555-01-23")  # how the customer spells it
    p.get_by_role("button", name="Search").click()
    p.get_by_role("heading", name="Calls").wait_for()
    rows = p.locator("table.calls tbody tr")
    assert rows.count() == 2
    p.get_by_role("link", name=re.compile(r"10:42:0\d")).click()

    verdict = p.locator("#card-verdict")
    verdict.wait_for()
    assert "No card: extension(s) 105, 106 rang but no Bitrix24 user has that extension" in verdict.inner_text()
    timeline = p.locator("#timeline")
    # The portal admin's own timeline of the call is in it (the ringing, the problem it names) ...
    assert timeline.locator("li.pbx").filter(has_text="105, 106").count() == 1
    assert timeline.locator("li.problem").filter(has_text="105, 106").count() == 1
    # ... with each Bitrix24 request and its answer.
    assert timeline.get_by_text("telephony.externalcall.register → 200").count() == 1
    assert timeline.get_by_text(re.compile("telephony.externalcall.show")).count() == 0
    # Each REST request opens to its (redacted) request and response.
    timeline.locator("li.bitrix24 summary").first.click()
    assert "EXTERNAL_CALL_ID" in timeline.locator("li.bitrix24 pre").first.inner_text()
    call = Call.objects.get(pbx_call_id="pbx-1042")
    assert str(call.uuid) in p.content()

    # The metrics count the same call: one call with an unmapped extension more, its events in.
    after = metrics(p, live_server)
    assert after[key] == before.get(key, 0) + 1
    ringing = ("connector_pbx_events_total", (("type", "call.ringing"),))
    assert after[ringing] >= before.get(ringing, 0) + 2  # both calls rang
    assert page.blocked == []


def test_dead_letters_replay_dismiss_and_bulk_with_a_dry_run_are_audited(page, live_server, phone, staff):
    ExtensionOverride.objects.create(connection=phone.connection, extension="101", user_id=5)  # dismissed user
    for seed in (1, 2, 3):
        phone.play(phone.scenario("busy_outgoing", seed=seed))
        drive()
    letters = list(DeadLetter.objects.filter(resolved_at=None).order_by("pk"))
    assert len(letters) == 3
    p = page.page
    sign_in(p, live_server, staff.username)
    p.get_by_role("link", name="Dead letters").click()
    p.locator("#match-count").filter(has_text="3 open dead letter(s) match.").wait_for()

    p.locator(f"tr[data-letter='{letters[0].pk}']").get_by_role("button", name="Dismiss").click()
    p.get_by_role("status").filter(has_text=f"Dead letter {letters[0].pk} dismissed.").wait_for()
    p.locator(f"tr[data-letter='{letters[1].pk}']").get_by_role("button", name="Replay").click()
    p.get_by_role("status").filter(has_text=f"Dead letter {letters[1].pk} replayed.").wait_for()

    p.get_by_label("Portal id").fill(str(phone.portal.pk))
    p.get_by_role("button", name="Count for a bulk replay").click()
    p.locator("#bulk-replay").filter(has_text="replaying would re-queue 1 dead letter(s)").wait_for()
    p.get_by_role("button", name="Replay these 1").click()
    p.get_by_role("status").filter(has_text="1 dead letter(s) replayed.").wait_for()
    assert not DeadLetter.objects.filter(resolved_at=None).exists()

    p.get_by_role("link", name="Audit").click()
    audit = p.locator("#audit")
    audit.wait_for()
    for action in ("dead_letter.dismiss", "dead_letter.replay", "dead_letter.bulk_replay"):
        assert audit.get_by_text(action).count() == 1
    assert audit.get_by_text("ops-anna").count() == 3
    assert AuditEntry.objects.filter(user=staff).count() == 3


def test_portals_worst_first_and_a_portals_page(page, live_server, phone, staff, sandbox, client, recordings):
    from call_scenario_fixtures import make_phone_portal

    healthy = make_phone_portal(sandbox, client, recordings, domain="fine.bitrix24.test")
    play_as_it_happens(healthy, healthy.scenario("ring_group_second_answers"))
    # The phone portal's tokens died (Bitrix24 refused the refresh): it must come first.
    phone.portal.status = "tokens_dead"
    phone.portal.dead_reason = "invalid_grant: refresh refused"
    phone.portal.save(update_fields=["status", "dead_reason"])
    p = page.page
    sign_in(p, live_server, staff.username)
    first = p.locator("#portals tbody tr").first
    first.wait_for()
    assert phone.portal.domain in first.inner_text() and "tokens dead" in first.inner_text()
    p.get_by_role("link", name="fine.bitrix24.test").click()
    p.get_by_role("heading", name="fine.bitrix24.test").wait_for()
    for section in ("Tokens and scopes", "Outbox and rate-limit bucket", "Extension map",
                    "Settings that differ from the defaults", "Connections", "Lines", "Recent calls"):
        p.get_by_role("heading", name=section).wait_for()
    assert p.locator("#outbox-depth").inner_text().startswith("0 command(s)")
    assert p.locator("table.calls tbody tr").count() == 1

    # The REST requests of this portal, for a Bitrix24 support ticket.
    with p.expect_download() as download:
        p.get_by_role("link", name="Export REST requests (JSON)").click()
    exported = json.loads(Path(download.value.path()).read_text())
    assert exported["portal"]["domain"] == "fine.bitrix24.test"
    # As sent: the register went inside a batch (the outbox packs a call's commands), in its ``cmd``.
    sent = {r["method"] for r in exported["requests"]} | {
        str(c).partition("?")[0].lower() for r in exported["requests"] if r["method"] == "batch"
        for c in (r["request"].get("cmd") or {}).values()}
    assert "telephony.externalcall.register" in sent
    assert phone.portal.domain not in json.dumps(exported)
    p.get_by_role("link", name="REST log").first.click()
    p.locator("#rest-log tbody tr").first.wait_for()
    assert AuditEntry.objects.filter(user=staff, action="rest_log.export").count() == 1


def test_a_portal_as_its_admin_sees_it_read_only(page, live_server, phone, staff):
    play_as_it_happens(phone, phone.scenario("missed_call", agents=("105", "106")))
    p = page.page
    sign_in(p, live_server, staff.username)
    p.get_by_role("link", name=phone.portal.domain).click()
    p.get_by_role("link", name="As the portal admin sees it").click()
    p.get_by_role("heading", name=f"{phone.portal.domain} as its admin sees it").wait_for()
    status = p.locator("#admin-status tbody tr")
    assert status.count() >= 5  # one verdict per area, as the in-portal status page has them
    for area in ("tokens", "pbx", "extensions"):
        assert p.locator(f"#admin-status tr[data-area='{area}']").count() == 1
    assert "employees with an extension" in p.locator("#admin-status tr[data-area='extensions']").inner_text()
    calls = p.locator("#admin-calls tbody tr")
    assert calls.count() == 1 and "In Bitrix24" in calls.inner_text()  # the admin's wording of the status
    assert p.get_by_role("button").filter(has_text=re.compile("Repair|Fix", re.I)).count() == 0  # read-only
    assert AuditEntry.objects.filter(user=staff, action="portal.view_as_admin", portal=phone.portal).count() == 1
