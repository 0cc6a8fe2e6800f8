"""The simulator against the running app over real HTTP (pytest-django's live server): every
scenario lands in the inbox exactly once, originated calls echo the request id, load runs clean."""

from __future__ import annotations

from collections import Counter

import pytest

from calls.connections.services import create_connection, verification_keys
from calls.models import PbxEvent
from calls.originate.transport import post_originate
from pbxsim import SCENARIOS, PbxSimulator, ScenarioParams, SimServer, build, play, run_load
from portals.models import Portal

pytestmark = pytest.mark.django_db(transaction=True)


def make_connection(n: int = 1, **kwargs):
    portal = Portal.objects.create(
        member_id=f"live-{n}", domain=f"live{n}.bitrix24.test", client_endpoint=f"https://live{n}.bitrix24.test/rest/",
        status=Portal.Status.ACTIVE,
    )
    return create_connection(portal=portal, name=f"PBX {n}", **kwargs)


def test_every_scenario_played_over_http_is_stored_once_per_event(live_server, transactional_db):
    # One live-server test for all scenarios (each on its own connection): a transactional test's
    # teardown costs more than playing a scenario.
    for n, name in enumerate(sorted(SCENARIOS), start=1):
        issued = make_connection(n, originate_url="https://pbx.example.test/originate",
                                 recording_hosts=["pbx.example.test"])
        sim = PbxSimulator(live_server.url, issued.connection.public_id, issued.secret)
        scenario = build(name, seed=1, params=ScenarioParams(origin_request_id="req-1"))
        sent = play(sim, scenario)
        assert {s.response.status for s in sent} == {202}, (name, [s.response.body for s in sent])
        totals = Counter()
        for s in sent:
            totals.update(s.response.json())
        assert totals["accepted"] == len(scenario.events), name
        delivered = sum(len(d.events) for d in scenario.deliveries)
        assert totals["duplicates"] == delivered - len(scenario.events), name
        stored = PbxEvent.objects.filter(connection=issued.connection)
        assert sorted(stored.values_list("event_id", flat=True)) == sorted(e["event_id"] for e in scenario.events)
        assert set(stored.values_list("call_id", flat=True)) == {scenario.call_id}, name


def test_accepted_originate_command_plays_a_call_echoing_the_request_id(live_server, transactional_db, settings):
    settings.RECORDINGS_ALLOW_HTTP = True  # the simulator serves its recordings over plain http on 127.0.0.1
    with SimServer() as pbx:
        issued = make_connection(originate_url=pbx.originate_url("placeholder"), recording_hosts=["127.0.0.1"])
        conn = issued.connection
        conn.originate_url = pbx.originate_url(conn.public_id)
        conn.save()
        pbx.add_connection(conn.public_id, issued.secret, app_url=live_server.url, outcome="answered")
        outcome = post_originate(
            conn.originate_url, verification_keys(conn.pk),
            {"request_id": "rq-77", "kind": "click_to_call", "extension": "105", "client_number": "+74951234567"},
            request_id="rq-77", budget_seconds=15.0, attempt_timeout=5.0,
        )
        assert outcome.status == "accepted"
        pbx.wait_for_calls()
    [(scenario, sent)] = pbx.state.played
    assert [s.response.status for s in sent] == [202] * len(scenario.deliveries)
    started = PbxEvent.objects.get(connection=conn, type="call.started")
    assert started.payload["origin_request_id"] == "rq-77"
    assert started.payload["extension"] == "105"
    assert started.payload["client_number"] == "+74951234567"
    assert PbxEvent.objects.filter(connection=conn, call_id=started.call_id).count() == 5


def test_a_command_without_a_line_is_placed_from_the_pbxs_own_line(live_server, transactional_db, settings):
    """A callback or click-to-call that names no line: the PBX calls from the number it declared, never
    from some spelling of a client's number (the connector would take that for a company line)."""
    settings.RECORDINGS_ALLOW_HTTP = True
    with SimServer() as pbx:
        issued = make_connection(originate_url=pbx.originate_url("placeholder"))
        conn = issued.connection
        conn.originate_url = pbx.originate_url(conn.public_id)
        conn.save()
        pbx.add_connection(conn.public_id, issued.secret, app_url=live_server.url, line_number="+74990000077")
        for request_id, line in (("rq-1", None), ("rq-2", "+74957770000")):
            command = {"request_id": request_id, "kind": "callback", "extension": "101",
                       "client_number": "+74951234567"}
            if line:
                command["line_number"] = line
            assert post_originate(conn.originate_url, verification_keys(conn.pk), command,
                                  request_id=request_id, budget_seconds=15.0, attempt_timeout=5.0).status == "accepted"
        pbx.wait_for_calls()
    lines = dict(PbxEvent.objects.filter(connection=conn, type="call.started")
                 .values_list("payload__origin_request_id", "payload__line_number"))
    assert lines == {"rq-1": "+74990000077", "rq-2": "+74957770000"}


def test_load_generator_spreads_calls_over_connections(live_server, transactional_db):
    issued = [make_connection(n, recording_hosts=["pbx.example.test"]) for n in range(1, 4)]
    report = run_load(
        live_server.url, [(i.connection.public_id, i.secret) for i in issued],
        calls_per_second=20, duration_s=0.5, speed=0, workers=4, run_id="loadtest",
    )
    summary = report.summary()
    assert summary["calls"] == 10
    assert summary["error_count"] == 0, summary["errors"]
    assert set(summary["statuses"]) == {202}
    per_connection = Counter(PbxEvent.objects.values_list("connection__public_id", flat=True))
    assert set(per_connection) == {i.connection.public_id for i in issued}
    assert sum(per_connection.values()) == report.events


def test_load_command_names_its_calls_by_the_run_id_and_prints_the_summary(live_server, transactional_db, tmp_path,
                                                                          capsys):
    # The throughput benchmark runs its intake PBX through this command, in a process of its own, and finds
    # the calls it sent by their run id.
    import json

    from pbxsim.__main__ import main

    issued = make_connection(recording_hosts=["rec.example.test"])  # not the default recording host
    connections = tmp_path / "connections.json"
    connections.write_text(json.dumps([{"connection_id": issued.connection.public_id, "secret": issued.secret}]))
    exit_code = main(["load", "--app", live_server.url, "--connections-file", str(connections), "--rate", "10",
                      "--duration", "0.3", "--speed", "0", "--workers", "2", "--run-id", "intake7",
                      "--recording-base", "https://rec.example.test"])
    summary = json.loads(capsys.readouterr().out)
    assert (exit_code, summary["calls"], summary["errors"]) == (0, 3, [])
    call_ids = set(PbxEvent.objects.values_list("call_id", flat=True))
    assert len(call_ids) == 3 and all(c.startswith("intake7") for c in call_ids)
