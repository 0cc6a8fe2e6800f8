# The call settings portals kept in ``Portal.settings`` (raw JSON) move into ``PortalCallSettings``.

from django.db import migrations

_KEYS = ("crm_create", "add_to_chat", "missed_call_owner_id", "default_user_id", "callback_user_id")


def _user_id(value):
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def forwards(apps, schema_editor):
    Portal = apps.get_model("portals", "Portal")
    PortalCallSettings = apps.get_model("calls", "PortalCallSettings")
    for portal in Portal.objects.all():
        options = portal.settings if isinstance(portal.settings, dict) else {}
        if not any(key in options for key in _KEYS):
            continue
        row = PortalCallSettings.objects.filter(portal=portal).first() or PortalCallSettings(portal=portal)
        if "crm_create" in options:
            row.crm_create = "both" if options["crm_create"] else "off"
        if "add_to_chat" in options:
            row.add_to_chat = bool(options["add_to_chat"])
        owner = _user_id(options.get("missed_call_owner_id"))
        if owner is not None:
            row.missed_call_strategy, row.missed_call_user_id = "fixed", owner
        row.default_user_id = _user_id(options.get("default_user_id"))
        row.callback_user_id = _user_id(options.get("callback_user_id"))
        row.save()
        portal.settings = {k: v for k, v in options.items() if k not in _KEYS}
        portal.save(update_fields=["settings"])


def backwards(apps, schema_editor):
    """Back into the JSON; what it cannot hold (the newer settings) is lost with the rows."""
    PortalCallSettings = apps.get_model("calls", "PortalCallSettings")
    for row in PortalCallSettings.objects.select_related("portal"):
        portal = row.portal
        options = dict(portal.settings or {})
        options["crm_create"] = row.crm_create != "off"
        options["add_to_chat"] = row.add_to_chat
        if row.missed_call_strategy == "fixed" and row.missed_call_user_id:
            options["missed_call_owner_id"] = row.missed_call_user_id
        for key in ("default_user_id", "callback_user_id"):
            if getattr(row, key):
                options[key] = getattr(row, key)
        portal.settings = options
        portal.save(update_fields=["settings"])
        row.delete()


class Migration(migrations.Migration):

    dependencies = [
        ('calls', '0007_call_settings'),
        ('portals', '0001_initial'),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
