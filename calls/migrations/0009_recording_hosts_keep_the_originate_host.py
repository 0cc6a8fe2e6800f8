"""The originate URL's host used to be an implied recording host; it no longer is. Connections that
relied on it get it written into their recording hosts, so nothing changes for them on deploy."""

from urllib.parse import urlsplit

from django.db import migrations


def list_the_originate_host(apps, schema_editor):
    PbxConnection = apps.get_model("calls", "PbxConnection")
    for connection in PbxConnection.objects.exclude(originate_url="").iterator():
        host = (urlsplit(connection.originate_url).hostname or "").lower().rstrip(".")
        hosts = [h for h in connection.recording_hosts or [] if h]
        if host and host not in {h.strip().lower().rstrip(".") for h in hosts}:
            connection.recording_hosts = [*hosts, host]
            connection.save(update_fields=["recording_hosts"])


class Migration(migrations.Migration):
    dependencies = [("calls", "0008_settings_from_portal_json")]

    operations = [migrations.RunPython(list_the_originate_host, migrations.RunPython.noop)]
