# Typed call-handling settings: portal-wide, per Bitrix24 user, per line (LineRouting becomes LineSettings).

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('calls', '0006_connection_signed_request_seen'),
        ('portals', '0001_initial'),
    ]

    operations = [
        migrations.RenameModel('LineRouting', 'LineSettings'),
        migrations.AlterModelOptions(
            name='linesettings',
            options={'verbose_name': 'line settings', 'verbose_name_plural': 'line settings'},
        ),
        migrations.AlterField(
            model_name='linesettings',
            name='line',
            field=models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='settings', to='calls.pbxline'),
        ),
        migrations.AddField(
            model_name='linesettings',
            name='name',
            field=models.CharField(blank=True, help_text='Name shown in Bitrix24 (empty: the name the PBX gave)', max_length=255),
        ),
        migrations.AddField(
            model_name='linesettings',
            name='enabled',
            field=models.BooleanField(default=True, help_text='Register the calls of this line in Bitrix24'),
        ),
        migrations.AddField(
            model_name='linesettings',
            name='missed_call_owner_id',
            field=models.PositiveIntegerField(blank=True, help_text="Owner of this line's missed calls when the portal's strategy finds nobody", null=True),
        ),
        migrations.AddField(
            model_name='linesettings',
            name='crm_source',
            field=models.CharField(blank=True, help_text="CRM_SOURCE of register: a source STATUS_ID of the portal's CRM", max_length=50),
        ),
        migrations.CreateModel(
            name='PortalCallSettings',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('crm_create', models.CharField(choices=[('off', 'Never'), ('incoming', 'Incoming calls'), ('outgoing', 'Outgoing calls'), ('both', 'Incoming and outgoing calls')], default='both', max_length=8)),
                ('route_to_responsible', models.BooleanField(default=True, help_text="/route sends incoming calls to the client's responsible manager")),
                ('missed_call_strategy', models.CharField(choices=[('responsible', "The client's responsible manager"), ('last_rang', 'The last agent whose phone rang'), ('fixed', 'A chosen user')], default='responsible', max_length=16)),
                ('missed_call_user_id', models.PositiveIntegerField(blank=True, help_text="The owner of missed calls with the 'fixed' strategy", null=True)),
                ('default_user_id', models.PositiveIntegerField(blank=True, help_text='Who a call is registered under when no agent maps to a user (else the installing admin)', null=True)),
                ('callback_user_id', models.PositiveIntegerField(blank=True, help_text='Who takes CRM-form callbacks when the line has no callback agent', null=True)),
                ('add_to_chat', models.BooleanField(default=True, help_text='ADD_TO_CHAT of register and finish')),
                ('recordings', models.BooleanField(default=True, help_text='Download recordings and attach them to calls')),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('portal', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='call_settings', to='portals.portal')),
            ],
            options={'verbose_name': 'portal call settings', 'verbose_name_plural': 'portal call settings'},
        ),
        migrations.CreateModel(
            name='UserCallSettings',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('user_id', models.PositiveIntegerField(help_text='Bitrix24 user id')),
                ('register_calls', models.BooleanField(default=True, help_text="Register this user's calls in Bitrix24")),
                ('card_mode', models.CharField(choices=[('ring', 'When their phone rings'), ('answer', 'When they answer'), ('never', 'Never')], default='ring', max_length=8)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('portal', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='user_call_settings', to='portals.portal')),
            ],
            options={'verbose_name': 'user call settings', 'verbose_name_plural': 'user call settings', 'ordering': ['portal_id', 'user_id']},
        ),
        migrations.AddConstraint(
            model_name='usercallsettings',
            constraint=models.UniqueConstraint(fields=('portal', 'user_id'), name='calls_user_settings_unique'),
        ),
        migrations.AddField(
            model_name='extensiondirectory',
            name='users',
            field=models.JSONField(blank=True, default=list),
        ),
        migrations.AddField(
            model_name='pbxline',
            name='added_by_admin',
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name='call',
            name='skip_reason',
            field=models.CharField(blank=True, max_length=200),
        ),
        migrations.AlterField(
            model_name='call',
            name='status',
            field=models.CharField(choices=[('new', 'Waiting for the PBX to place the call'), ('waiting_for_start', 'Waiting for call.started'), ('pending', 'Bitrix24 steps outstanding'), ('live', 'In progress, Bitrix24 up to date'), ('done', 'Finished in Bitrix24'), ('ignored', 'Not for Bitrix24 (between extensions, or kept out by the settings)'), ('dead', 'Dead letter')], db_index=True, default='new', max_length=20),
        ),
    ]
