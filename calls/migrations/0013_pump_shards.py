"""The portal's pump in shards (``calls.sync.shards``): a slot on every event and call, one lease row per
(portal, shard).

The lease rows a running pump holds become shard 0's (its ``portal_id`` column stays, and ``shard`` has a
database default), so a worker of the version before keeps taking, renewing and releasing them through the
migration. Calls still in progress and events still pending get their real slot, so that their shard is the
one their next events go to; finished calls keep 0 (no pump looks at them again)."""

import django.db.models.deletion
from django.db import migrations, models

from calls.sync.shards import slot_of

_IN_PROGRESS = ("new", "waiting_for_start", "pending", "live")


def set_slots(apps, schema_editor):
    Call = apps.get_model("calls", "Call")
    PbxEvent = apps.get_model("calls", "PbxEvent")
    calls = Call.objects.filter(status__in=_IN_PROGRESS, connection__isnull=False, pbx_call_id__isnull=False)
    for pk, connection_id, call_id in calls.values_list("pk", "connection_id", "pbx_call_id").iterator():
        Call.objects.filter(pk=pk).update(slot=slot_of(connection_id, call_id))
    events = PbxEvent.objects.filter(status="pending")
    for pk, connection_id, call_id in events.values_list("pk", "connection_id", "call_id").iterator():
        PbxEvent.objects.filter(pk=pk).update(slot=slot_of(connection_id, call_id))


class Migration(migrations.Migration):

    dependencies = [
        ('calls', '0012_extension_directory_reading_since'),
        ('portals', '0004_event_replay_key'),
    ]

    operations = [
        migrations.AddField(
            model_name='call',
            name='slot',
            field=models.PositiveSmallIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='pbxevent',
            name='slot',
            field=models.PositiveSmallIntegerField(default=0),
        ),
        migrations.AlterField(
            model_name='portalpump',
            name='portal',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='pumps', to='portals.portal'),
        ),
        migrations.AddField(
            model_name='portalpump',
            name='id',
            field=models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID'),
        ),
        migrations.AddField(
            model_name='portalpump',
            name='shard',
            field=models.PositiveSmallIntegerField(db_default=0, default=0),
        ),
        migrations.AddIndex(
            model_name='pbxevent',
            index=models.Index(condition=models.Q(('status', 'pending')), fields=['connection', 'slot', 'received_at'], name='calls_pbx_event_pending_slot'),
        ),
        migrations.AddConstraint(
            model_name='portalpump',
            constraint=models.UniqueConstraint(fields=('portal', 'shard'), name='calls_portal_pump_unique_shard'),
        ),
        migrations.RunPython(set_slots, migrations.RunPython.noop, elidable=True),
    ]
