"""Serializers that describe the PBX API in OpenAPI. Request validation itself lives in
calls.pbx_api.events / calls.lines.services, which these classes reuse, so schema and checks agree."""

from __future__ import annotations

from drf_spectacular.utils import PolymorphicProxySerializer
from rest_framework import serializers

from calls.lines.services import LineSerializer, LineStateSerializer
from calls.pbx_api.events import EVENT_SERIALIZERS

__all__ = [
    "EVENT_SCHEMA",
    "ErrorSerializer",
    "EventsAcceptedSerializer",
    "LineSerializer",
    "LineStateSerializer",
    "RecordingAcceptedSerializer",
    "RecordingUploadSerializer",
]


EVENT_SCHEMA = PolymorphicProxySerializer(
    component_name="PbxEvent",
    # The explicit mapping: each sub-serializer's ``type`` is a one-value choice, which the
    # automatic discovery cannot read a value from.
    serializers=dict(EVENT_SERIALIZERS),
    resource_type_field_name="type",
)


class ErrorSerializer(serializers.Serializer):
    error = serializers.CharField(help_text="Machine-readable code, e.g. invalid_event, invalid_signature.")
    detail = serializers.CharField(help_text="What is wrong, for a human.")
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text='Messages per field; in an array body the key starts with the index: {"3.extension": [...]}.',
    )


class EventsAcceptedSerializer(serializers.Serializer):
    accepted = serializers.IntegerField(help_text="Events stored now; processing happens after the response.")
    duplicates = serializers.IntegerField(help_text="Events whose event_id this connection had seen before.")


class RecordingAcceptedSerializer(EventsAcceptedSerializer):
    size_bytes = serializers.IntegerField()
    sha256 = serializers.CharField()
    discarded = serializers.BooleanField(
        required=False, help_text="True when the portal switched recordings off: the file was not kept (do not resend)."
    )


class RecordingUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="The recording (WAV, MP3 or anything ffmpeg reads).")
