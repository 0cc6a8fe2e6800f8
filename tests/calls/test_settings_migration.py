"""The settings portals kept in ``Portal.settings`` (raw JSON) arrive in the typed settings unchanged in effect."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("calls", "0007_call_settings"), ("portals", "0003_event_refused_status")]
AFTER = [("calls", "0008_settings_from_portal_json")]


@pytest.mark.django_db(transaction=True)
def test_json_settings_move_into_typed_rows_and_back():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    Portal = old.get_model("portals", "Portal")
    common = {"client_endpoint": "https://x.bitrix24.test/rest/"}
    configured = Portal.objects.create(member_id="m1", domain="one.test", **common, settings={
        "missed_call_owner_id": "4", "default_user_id": 7, "crm_create": False, "add_to_chat": False,
        "callback_user_id": 9, "pbx": "kept"})
    untouched = Portal.objects.create(member_id="m2", domain="two.test", **common, settings={"pbx": "kept"})
    bad = Portal.objects.create(member_id="m3", domain="three.test", **common, settings={"missed_call_owner_id": "x"})

    executor = MigrationExecutor(connection)
    executor.migrate(AFTER)
    new = executor.loader.project_state(AFTER).apps
    Settings = new.get_model("calls", "PortalCallSettings")
    row = Settings.objects.get(portal_id=configured.pk)
    assert (row.missed_call_strategy, row.missed_call_user_id, row.default_user_id, row.crm_create, row.add_to_chat,
            row.callback_user_id) == ("fixed", 4, 7, "off", False, 9)
    assert new.get_model("portals", "Portal").objects.get(pk=configured.pk).settings == {"pbx": "kept"}
    assert not Settings.objects.filter(portal_id=untouched.pk).exists()
    garbled = Settings.objects.get(portal_id=bad.pk)  # an id that is no id: the default strategy
    assert (garbled.missed_call_strategy, garbled.missed_call_user_id) == ("responsible", None)

    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    back = executor.loader.project_state(BEFORE).apps.get_model("portals", "Portal").objects.get(pk=configured.pk)
    assert back.settings == {"pbx": "kept", "missed_call_owner_id": 4, "default_user_id": 7, "crm_create": False,
                             "add_to_chat": False, "callback_user_id": 9}
    MigrationExecutor(connection).migrate(executor.loader.graph.leaf_nodes())
