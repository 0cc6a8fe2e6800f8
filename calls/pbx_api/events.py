"""PBX event types of the public API (docs/pbx-api.md) and their validation.

DRF serializers are used as the validation library: the same classes document the request
body in the OpenAPI schema, so the published contract and the enforced one cannot drift.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

import inputguard
from calls.recordings.addresses import host_is_allowed
from calls.recordings.conf import recording_settings

MAX_EVENTS_PER_REQUEST = 100
MAX_ID_LENGTH = 128

CALL_STARTED = "call.started"
CALL_RINGING = "call.ringing"
CALL_ANSWERED = "call.answered"
CALL_TRANSFERRED = "call.transferred"
CALL_ENDED = "call.ended"
CALL_RECORDING_READY = "call.recording_ready"
EVENT_TYPES = (CALL_STARTED, CALL_RINGING, CALL_ANSWERED, CALL_TRANSFERRED, CALL_ENDED, CALL_RECORDING_READY)

DISPOSITIONS = (
    "answered",
    "no_answer",
    "busy",
    "declined",
    "cancelled",
    "failed",
    "unavailable",
    "invalid_number",
    "forbidden",
    "no_funds",
    "blocked",
)


@extend_schema_field(OpenApiTypes.DATETIME)
class Rfc3339Field(serializers.Field):
    """A timestamp with an explicit offset: a naive time is ambiguous for delayed events."""

    default_error_messages = {
        "invalid": "Must be an RFC 3339 date-time with an offset, e.g. 2025-03-01T12:00:00+03:00.",
        "no_offset": "Must carry a UTC offset (Z or ±hh:mm): the PBX's local time is unknown to the connector.",
        "unstorable": "{problem}",
    }

    def to_internal_value(self, data: Any) -> datetime:
        if not isinstance(data, str) or ("T" not in data.upper() and " " not in data):
            self.fail("invalid")
        try:
            value = datetime.fromisoformat(data)
        except ValueError:
            self.fail("invalid")
        if value.tzinfo is None or value.utcoffset() is None:
            self.fail("no_offset")
        if problem := inputguard.datetime_problem(value):
            self.fail("unstorable", problem=problem)
        return value

    def to_representation(self, value: datetime) -> str:
        return value.isoformat()


def _id_field(**kwargs: Any) -> serializers.CharField:
    return serializers.CharField(max_length=MAX_ID_LENGTH, **kwargs)


def _extension_field(**kwargs: Any) -> serializers.CharField:
    return serializers.CharField(max_length=64, **kwargs)


class EventEnvelopeSerializer(serializers.Serializer):
    """Fields every event has; used first to pick the type-specific serializer."""

    event_id = _id_field(help_text="Unique per connection; a repeated event_id is a duplicate and causes nothing.")
    type = serializers.ChoiceField(choices=EVENT_TYPES)
    call_id = _id_field(help_text="The PBX's call id, shared by all legs of the call.")
    occurred_at = Rfc3339Field(help_text="When it happened on the PBX (RFC 3339 with offset), not when it was sent.")


def _typed(event_type: str) -> serializers.ChoiceField:
    return serializers.ChoiceField(choices=[event_type])


class CallStartedSerializer(EventEnvelopeSerializer):
    type = _typed(CALL_STARTED)
    direction = serializers.ChoiceField(choices=["inbound", "outbound"])
    client_number = serializers.CharField(
        max_length=64, allow_blank=True, help_text="The outside party, any format; empty when withheld."
    )
    line_number = serializers.CharField(
        max_length=64,
        required=False,
        allow_blank=True,
        allow_null=True,
        help_text="Inbound: the number the client dialled. Outbound: the number shown to the client.",
    )
    extension = _extension_field(
        required=False,
        allow_null=True,
        help_text="Outbound: the agent who dials (required). Inbound: the first target, if known.",
    )
    origin_request_id = _id_field(
        required=False, allow_null=True, help_text="The request_id of the originate command that placed this call."
    )

    def validate(self, attrs: dict) -> dict:
        if attrs["direction"] == "outbound" and not attrs.get("extension"):
            raise serializers.ValidationError({"extension": ["Required for an outbound call: the agent who dials."]})
        return attrs


class CallRingingSerializer(EventEnvelopeSerializer):
    type = _typed(CALL_RINGING)
    extensions = serializers.ListField(
        child=_extension_field(),
        max_length=100,
        allow_empty=True,
        help_text="Extensions whose phones ring now (a ring group, a queue, one agent).",
    )


class CallAnsweredSerializer(EventEnvelopeSerializer):
    type = _typed(CALL_ANSWERED)
    extension = _extension_field(help_text="Who answered.")


class CallTransferredSerializer(EventEnvelopeSerializer):
    type = _typed(CALL_TRANSFERRED)
    from_extension = _extension_field()
    to_extension = _extension_field()
    kind = serializers.ChoiceField(choices=["blind", "attended"])


class CallEndedSerializer(EventEnvelopeSerializer):
    type = _typed(CALL_ENDED)
    disposition = serializers.ChoiceField(choices=DISPOSITIONS)
    talk_seconds = serializers.IntegerField(min_value=0, max_value=7 * 24 * 3600, help_text="0 when never answered.")
    sip_code = serializers.IntegerField(min_value=100, max_value=699, required=False, allow_null=True)
    cost = serializers.RegexField(
        r"^-?[0-9]{1,12}(\.[0-9]{1,6})?$", required=False, allow_null=True, help_text="Decimal string, e.g. \"1.25\"."
    )
    currency = serializers.RegexField(r"^[A-Z]{3}$", required=False, allow_null=True, help_text="ISO 4217.")
    failed_reason = serializers.CharField(max_length=500, required=False, allow_blank=True, allow_null=True)
    vote = serializers.IntegerField(min_value=1, max_value=5, required=False, allow_null=True)


class CallRecordingReadySerializer(EventEnvelopeSerializer):
    type = _typed(CALL_RECORDING_READY)
    url = serializers.URLField(
        max_length=2000,
        help_text="HTTPS URL the connector downloads the recording from, with the connection's recording credentials.",
    )
    filename = serializers.CharField(max_length=255)
    content_type = serializers.RegexField(r"^[A-Za-z0-9.+-]+/[A-Za-z0-9.+-]+$", max_length=100)
    size_bytes = serializers.IntegerField(min_value=0, required=False, allow_null=True)
    sha256 = serializers.RegexField(r"^[0-9a-fA-F]{64}$", required=False, allow_null=True)

    def validate_url(self, value: str) -> str:
        parts = urlsplit(value)
        allow_http = recording_settings().allow_http
        if parts.scheme != "https" and not (allow_http and parts.scheme == "http"):
            raise serializers.ValidationError("Must be an https:// URL.")
        allowed: set[str] | None = self.context.get("allowed_recording_hosts")
        if allowed is None:
            return value
        if not allowed:
            raise serializers.ValidationError(
                "This connection has no recording hosts: ask the connector's admin to set the originate URL "
                "or the allowed recording hosts, or upload the file to …/calls/{call_id}/recording."
            )
        if not host_is_allowed(parts, allowed):
            raise serializers.ValidationError(
                f"Host {parts.hostname!r} is not allowed for this connection; allowed: {', '.join(sorted(allowed))}."
            )
        return value


EVENT_SERIALIZERS: dict[str, type[EventEnvelopeSerializer]] = {
    CALL_STARTED: CallStartedSerializer,
    CALL_RINGING: CallRingingSerializer,
    CALL_ANSWERED: CallAnsweredSerializer,
    CALL_TRANSFERRED: CallTransferredSerializer,
    CALL_ENDED: CallEndedSerializer,
    CALL_RECORDING_READY: CallRecordingReadySerializer,
}


def _flatten(errors: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error structure as ``{"field.sub": [messages]}``."""
    flat: dict[str, list[str]] = {}
    if isinstance(errors, dict):
        for key, value in errors.items():
            name = "" if key == "non_field_errors" else str(key)
            path = f"{prefix}.{name}" if prefix and name else (prefix or name)
            flat.update(_flatten(value, path))
    elif isinstance(errors, list) and errors and all(not isinstance(e, (dict, list)) for e in errors):
        flat.setdefault(prefix, []).extend(str(e) for e in errors)
    elif isinstance(errors, list):
        for item in errors:
            flat.update(_flatten(item, prefix))
    else:
        flat.setdefault(prefix, []).append(str(errors))
    return flat


class _Validators(threading.local):
    """One bound instance of each event serializer per thread, reused for every event.

    Instantiating a DRF serializer deep-copies its declared fields and binds them: that was half the
    cost of validating an event. ``run_validation`` keeps nothing on the instance (only ``is_valid``
    does), so a bound instance validates any number of events, one at a time; per thread, because
    gthread workers validate concurrently and the context is set per call."""

    def __init__(self) -> None:
        self.envelope = EventEnvelopeSerializer()
        self.typed = {name: serializer_class() for name, serializer_class in EVENT_SERIALIZERS.items()}

    @staticmethod
    def run(serializer: serializers.Serializer, obj: dict, context: dict) -> tuple[Any, Any]:
        """(validated data, None) or (None, DRF's error detail), as ``is_valid`` would have them."""
        serializer._context = context
        try:
            return serializer.run_validation(obj), None
        except serializers.ValidationError as exc:
            return None, exc.detail
        finally:
            serializer._context = {}


_validators = _Validators()


def validate_event(obj: Any, context: dict) -> tuple[dict | None, dict[str, list[str]]]:
    """Validate one event object. Returns (stored payload, {}) or (None, {field: messages})."""
    if not isinstance(obj, dict):
        return None, {"": ["Each event must be a JSON object."]}
    # Before the serializers: unknown fields are stored as sent, and a choice field echoes its value.
    if poison := inputguard.find_poison(obj):
        field, problem = poison
        return None, {field: [problem]}
    serializer = _validators.typed.get(obj["type"]) if isinstance(obj.get("type"), str) else None
    if serializer is None:  # no type, or not one of ours: the envelope says what is wrong
        _, errors = _Validators.run(_validators.envelope, obj, {})
        return None, _flatten(errors)
    validated, errors = _Validators.run(serializer, obj, context)
    if errors is not None:
        # The envelope's fields are the typed serializer's first fields, with the same checks: when one
        # is wrong, only those are reported, as the envelope alone would report them.
        envelope_errors = {k: v for k, v in errors.items() if k in EventEnvelopeSerializer._declared_fields}
        return None, _flatten(envelope_errors or errors)
    # Unknown fields are kept (a newer PBX may send more than this version knows); known
    # fields are stored in their validated, canonical form.
    payload = {**obj, **serializer.to_representation(validated)}
    return payload, {}


def validate_events(body: Any, context: dict) -> tuple[list[dict], dict[str, list[str]], str]:
    """Validate a request body (one event or an array). Returns (payloads, field errors, detail).

    Every event is checked before anything is accepted; field keys of an array body are
    prefixed with the event's index (``"3.extension"``).
    """
    if isinstance(body, dict):
        payload, errors = validate_event(body, context)
        if errors:
            return [], errors, "The event is invalid: " + _describe(errors)
        return [payload], {}, ""
    if not isinstance(body, list):
        return [], {}, "The body must be one event object or a JSON array of events."
    if not body:
        return [], {}, "The array is empty: send at least one event."
    if len(body) > MAX_EVENTS_PER_REQUEST:
        return [], {}, f"At most {MAX_EVENTS_PER_REQUEST} events per request; got {len(body)}."
    payloads: list[dict] = []
    all_errors: dict[str, list[str]] = {}
    bad_indexes: list[int] = []
    for index, item in enumerate(body):
        payload, errors = validate_event(item, context)
        if errors:
            bad_indexes.append(index)
            for field, messages in errors.items():
                all_errors[f"{index}.{field}" if field else str(index)] = messages
        else:
            payloads.append(payload)  # type: ignore[arg-type]
    if all_errors:
        first = bad_indexes[0]
        first_errors = {k.split(".", 1)[1] if "." in k else "": v for k, v in all_errors.items()
                        if k == str(first) or k.startswith(f"{first}.")}
        more = f" ({len(bad_indexes) - 1} more invalid event(s), see fields)" if len(bad_indexes) > 1 else ""
        return [], all_errors, f"Event {first} is invalid: {_describe(first_errors)}{more}. Nothing was accepted."
    return payloads, {}, ""


def _describe(errors: dict[str, list[str]]) -> str:
    return "; ".join(f"{field}: {' '.join(msgs)}" if field else " ".join(msgs) for field, msgs in errors.items())
