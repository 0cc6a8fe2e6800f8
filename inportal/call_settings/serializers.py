"""The shapes of calls.settings' selectors as this API publishes them (for the schema; validation is the
services'). ``connection_id`` is always the public connection id."""

from __future__ import annotations

from rest_framework import serializers

CARD_MODES = ["ring", "answer", "never"]
CRM_CREATE = ["off", "incoming", "outgoing", "both"]
MISSED_STRATEGIES = ["responsible", "last_rang", "fixed"]


class PersonSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    calls_registered = serializers.BooleanField(required=False)


class OverrideSerializer(serializers.Serializer):
    connection_id = serializers.CharField()
    connection_name = serializers.CharField(required=False)
    extension = serializers.CharField()


class EmployeeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField(allow_blank=True)
    photo = serializers.CharField(allow_null=True)
    active = serializers.BooleanField()
    extension = serializers.CharField(allow_null=True, help_text="UF_PHONE_INNER in Bitrix24")
    overrides = OverrideSerializer(many=True, help_text="this app's extension for the user, per PBX connection")
    register_calls = serializers.BooleanField()
    card_mode = serializers.ChoiceField(choices=CARD_MODES)
    shared_extension = serializers.BooleanField()


class UnownedExtensionSerializer(serializers.Serializer):
    extension = serializers.CharField()
    connection_id = serializers.CharField(allow_null=True)
    connection_name = serializers.CharField(allow_null=True)
    calls = serializers.IntegerField()
    last_seen = serializers.DateTimeField()


class SharedExtensionSerializer(serializers.Serializer):
    extension = serializers.CharField()
    user_ids = serializers.ListField(child=serializers.IntegerField())


class SyncStateSerializer(serializers.Serializer):
    synced_at = serializers.DateTimeField(allow_null=True)
    attempted_at = serializers.DateTimeField(allow_null=True)
    error = serializers.CharField(allow_null=True)
    user_count = serializers.IntegerField()


class EmployeesSerializer(serializers.Serializer):
    users = EmployeeSerializer(many=True)
    unowned_extensions = UnownedExtensionSerializer(many=True)
    shared_extensions = SharedExtensionSerializer(many=True)
    sync = SyncStateSerializer()


class EmployeeSyncSerializer(serializers.Serializer):
    sync = SyncStateSerializer()


class UserSettingsSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    register_calls = serializers.BooleanField(required=False)
    card_mode = serializers.ChoiceField(choices=CARD_MODES, required=False)
    overrides = serializers.DictField(child=serializers.CharField(allow_blank=True), required=False,
                                      help_text="{connection id: extension, or \"\" for UF_PHONE_INNER}")


class UserSettingsReadSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    register_calls = serializers.BooleanField()
    card_mode = serializers.ChoiceField(choices=CARD_MODES)
    overrides = OverrideSerializer(many=True)


class LineSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    connection_id = serializers.CharField()
    connection_name = serializers.CharField()
    number = serializers.CharField(help_text="E.164")
    pbx_name = serializers.CharField(allow_blank=True)
    name = serializers.CharField(allow_blank=True, help_text="the admin's name for the line")
    shown_as = serializers.CharField(help_text="what Bitrix24 shows")
    added_by_admin = serializers.BooleanField()
    registered_in_bitrix24 = serializers.BooleanField()
    sync_error = serializers.CharField(allow_null=True)
    enabled = serializers.BooleanField()
    route_to_responsible = serializers.BooleanField()
    default_extension = serializers.CharField(allow_null=True)
    default_user_id = serializers.IntegerField(allow_null=True)
    callback_user_id = serializers.IntegerField(allow_null=True)
    missed_call_owner_id = serializers.IntegerField(allow_null=True)
    crm_source = serializers.CharField(allow_null=True)


class LineWriteSerializer(serializers.Serializer):
    name = serializers.CharField(required=False, allow_blank=True)
    enabled = serializers.BooleanField(required=False)
    route_to_responsible = serializers.BooleanField(required=False)
    default_extension = serializers.CharField(required=False, allow_blank=True)
    default_user_id = serializers.IntegerField(required=False, allow_null=True)
    callback_user_id = serializers.IntegerField(required=False, allow_null=True)
    missed_call_owner_id = serializers.IntegerField(required=False, allow_null=True)
    crm_source = serializers.CharField(required=False, allow_blank=True)


class UndeclaredLineSerializer(serializers.Serializer):
    number = serializers.CharField()
    connection_id = serializers.CharField()
    connection_name = serializers.CharField()
    first_seen = serializers.DateTimeField()
    last_seen = serializers.DateTimeField()


class DeclareLineSerializer(serializers.Serializer):
    number = serializers.CharField(help_text="any spelling; stored as E.164")
    connection_id = serializers.CharField()


class ChainLinkSerializer(serializers.Serializer):
    link = serializers.CharField()
    strategy = serializers.ChoiceField(choices=MISSED_STRATEGIES, required=False)
    user = PersonSerializer(allow_null=True, required=False)
    lines = serializers.ListField(child=serializers.DictField(), required=False)


class MissedCallOwnerSerializer(serializers.Serializer):
    strategy = serializers.ChoiceField(choices=MISSED_STRATEGIES)
    user_id = serializers.IntegerField(allow_null=True)
    chain = ChainLinkSerializer(many=True, read_only=True, help_text="who owns a missed call, link by link")


class CallSettingsSerializer(serializers.Serializer):
    crm_create = serializers.ChoiceField(choices=CRM_CREATE)
    route_to_responsible = serializers.BooleanField()
    missed_call_owner = MissedCallOwnerSerializer()
    add_to_chat = serializers.BooleanField()
    default_country = serializers.CharField(help_text="ISO 3166-1 alpha-2")
    recordings = serializers.BooleanField()
    default_user_id = serializers.IntegerField(allow_null=True)
    callback_user_id = serializers.IntegerField(allow_null=True)


class CallSettingsWriteSerializer(serializers.Serializer):
    crm_create = serializers.ChoiceField(choices=CRM_CREATE, required=False)
    route_to_responsible = serializers.BooleanField(required=False)
    missed_call_owner = MissedCallOwnerSerializer(required=False)
    add_to_chat = serializers.BooleanField(required=False)
    default_country = serializers.CharField(required=False)
    recordings = serializers.BooleanField(required=False)
    default_user_id = serializers.IntegerField(required=False, allow_null=True)
    callback_user_id = serializers.IntegerField(required=False, allow_null=True)
