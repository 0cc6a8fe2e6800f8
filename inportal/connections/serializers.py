"""What the connections API reads and writes. Secrets are write-only or shown once."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from calls.models import PbxConnection
from calls.originate.targets import validate_originate_url

from ..models import ConnectionTest
from . import services


def _host_ok(value: str) -> bool:
    host = value[2:] if value.startswith("*.") else value
    name, _sep, port = host.partition(":")
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        return False
    labels = name.split(".")
    return bool(name) and all(label and len(label) <= 63 and all(c.isalnum() or c == "-" for c in label)
                              for label in labels)


class RecordingWriteSerializer(serializers.Serializer):
    auth = serializers.ChoiceField(choices=PbxConnection.RecordingAuth.values, required=False)
    username = serializers.CharField(max_length=200, required=False, allow_blank=True)
    secret = serializers.CharField(max_length=2000, required=False, allow_blank=True, write_only=True,
                                   trim_whitespace=False, help_text="password or bearer token; never read back")
    hosts = serializers.ListField(child=serializers.CharField(max_length=255), required=False, max_length=20,
                                  help_text="extra hosts recordings may come from: host, host:port, *.domain")

    def validate_hosts(self, value: list[str]) -> list[str]:
        hosts = [h.strip().lower().rstrip(".") for h in value if h.strip()]
        bad = [h for h in hosts if not _host_ok(h)]
        if bad:
            raise serializers.ValidationError(_("Not a host name: %(hosts)s") % {"hosts": ", ".join(bad)})
        return hosts

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("auth") == PbxConnection.RecordingAuth.BASIC and "username" in attrs and not attrs["username"]:
            raise serializers.ValidationError({"username": [_("Basic authentication needs a user name.")]})
        return attrs


class ConnectionWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    enabled = serializers.BooleanField(required=False)
    is_default = serializers.BooleanField(required=False, help_text="true makes this the portal's default connection")
    originate_url = serializers.URLField(max_length=500, required=False, allow_blank=True,
                                         help_text="where the connector sends click-to-call, callback and test commands")
    recording = RecordingWriteSerializer(required=False)

    def validate_name(self, value: str) -> str:
        value = value.strip()
        if not value:
            raise serializers.ValidationError(_("A connection needs a name."))
        return value

    def validate_originate_url(self, value: str) -> str:
        if value and not value.lower().startswith(("https://", "http://")):
            raise serializers.ValidationError(_("Enter an http(s) address."))
        try:  # public addresses only, https (calls.originate.targets): a portal admin sets this URL
            validate_originate_url(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict["originate_url"]) from exc
        return value

    def validate_is_default(self, value: bool) -> bool:
        if value is False and self.instance is not None and self.instance.is_default:
            raise serializers.ValidationError(_("Make another connection the default instead."))
        return value


class RotateSerializer(serializers.Serializer):
    overlap_hours = serializers.IntegerField(min_value=0, max_value=168, default=24,
                                             help_text="how long the previous secret keeps working")


class SecretStateSerializer(serializers.Serializer):
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True)


class ConnectionTestSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    outcome = serializers.ChoiceField(choices=["accepted", "refused", "unreachable", "no_originate_url"])
    http_status = serializers.IntegerField(allow_null=True)
    detail = serializers.CharField(allow_blank=True)
    tested_at = serializers.DateTimeField()


class RecordingReadSerializer(serializers.Serializer):
    auth = serializers.ChoiceField(choices=PbxConnection.RecordingAuth.values)
    username = serializers.CharField(allow_blank=True)
    secret_set = serializers.BooleanField()
    hosts = serializers.ListField(child=serializers.CharField())


class ConnectionSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="the connection id of every PBX API URL")
    name = serializers.CharField()
    enabled = serializers.BooleanField()
    is_default = serializers.BooleanField()
    originate_url = serializers.CharField(allow_blank=True)
    recording = RecordingReadSerializer()
    events_url = serializers.URLField()
    api_base = serializers.URLField()
    first_signed_request_at = serializers.DateTimeField(allow_null=True)
    last_signed_request_at = serializers.DateTimeField(allow_null=True)
    secrets = SecretStateSerializer(many=True)
    last_test = ConnectionTestSerializer(allow_null=True)
    lines = serializers.IntegerField(help_text="numbers the PBX declared")
    created_at = serializers.DateTimeField()


class IssuedConnectionSerializer(ConnectionSerializer):
    secret = serializers.CharField(help_text="whsec_…: shown this once, never again")


class RotatedSerializer(serializers.Serializer):
    secret = serializers.CharField(help_text="the new whsec_… secret: shown this once")
    previous_valid_until = serializers.DateTimeField(allow_null=True)
    connection = ConnectionSerializer()


class CheckSerializer(serializers.Serializer):
    seen = serializers.BooleanField(help_text="has the PBX ever sent a correctly signed request")
    first_signed_request_at = serializers.DateTimeField(allow_null=True)
    last_signed_request_at = serializers.DateTimeField(allow_null=True)
    last_test = ConnectionTestSerializer(allow_null=True)


def test_data(connection: PbxConnection) -> dict[str, Any] | None:
    test = ConnectionTest.objects.filter(connection=connection).first()
    if test is None:
        return None
    return {"ok": test.ok, "outcome": test.outcome, "http_status": test.http_status, "detail": test.detail,
            "tested_at": test.tested_at}


def connection_data(connection: PbxConnection) -> dict[str, Any]:
    from django.utils import timezone

    now = timezone.now()
    secrets = [s for s in connection.secrets.all() if s.expires_at is None or s.expires_at > now]
    return {
        "id": connection.public_id,
        "name": connection.name,
        "enabled": connection.enabled,
        "is_default": connection.is_default,
        "originate_url": connection.originate_url,
        "recording": {
            "auth": connection.recording_auth,
            "username": connection.recording_username,
            "secret_set": bool(connection.recording_secret),
            "hosts": list(connection.recording_hosts),
        },
        "events_url": services.events_url(connection),
        "api_base": services.pbx_api_base(connection),
        "first_signed_request_at": connection.first_signed_request_at,
        "last_signed_request_at": connection.last_signed_request_at,
        "secrets": [{"created_at": s.created_at, "expires_at": s.expires_at} for s in secrets],
        "last_test": test_data(connection),
        "lines": connection.lines.filter(removed_at__isnull=True).count(),
        "created_at": connection.created_at,
    }
