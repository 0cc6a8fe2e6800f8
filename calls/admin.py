"""Vendor admin for PBX connections. Signing secrets are never displayed after they are issued:
a new connection's secret and a rotated one are shown once, on the page that issues them."""

from __future__ import annotations

import json
from datetime import timedelta

from django import forms
from django.contrib import admin
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from b24client import redact
from calls import dispatch
from calls.connections.services import DEFAULT_ROTATION_OVERLAP, IssuedSecret, rotate_secret
from calls.followups import FollowUps
from calls.sync import dead_letters, reconciler
from calls.sync import state_machine as sm

from .models import (
    Call,
    ConnectionSecret,
    DeadLetter,
    ExtensionOverride,
    LineSettings,
    OutboxCommand,
    PbxConnection,
    PbxEvent,
    PbxLine,
    PortalCallSettings,
    UserCallSettings,
)

ROTATE_HELP = (
    "To rotate the signing secret, tick this connection in the list and run “Rotate signing secret”, or run "
    "`manage.py rotate_pbx_secret --connection <id> --overlap-hours 24`. The new secret is shown once; the old "
    "one keeps working for 24 hours."
)


class PbxConnectionForm(forms.ModelForm):
    new_recording_secret = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False),
        label="Recording password / token",
        help_text="Write-only: leave empty to keep the stored one.",
    )
    clear_recording_secret = forms.BooleanField(required=False, label="Remove the stored recording password/token")

    class Meta:
        model = PbxConnection
        fields = (
            "portal", "name", "enabled", "is_default", "originate_url",
            "recording_auth", "recording_username", "recording_hosts",
        )

    def save(self, commit: bool = True) -> PbxConnection:
        connection = super().save(commit=False)
        if self.cleaned_data.get("clear_recording_secret"):
            connection.recording_secret = ""
        elif self.cleaned_data.get("new_recording_secret"):
            connection.recording_secret = self.cleaned_data["new_recording_secret"]
        if commit:
            connection.save()
        return connection


class ConnectionSecretInline(admin.TabularInline):
    model = ConnectionSecret
    fields = ("created_at", "expires_at", "state")
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name_plural = "Signing secrets (values are never shown; rotate to issue a new one)"

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.display(description="state")
    def state(self, obj: ConnectionSecret) -> str:
        return "active" if obj.is_active() else "expired"


class PbxLineInline(admin.TabularInline):
    model = PbxLine
    fields = ("number", "name", "bitrix_line_registered", "removed_at", "sync_error")
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name_plural = "Lines (set by the PBX with PUT …/lines)"

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class ExtensionOverrideInline(admin.TabularInline):
    model = ExtensionOverride
    fields = ("extension", "user_id")
    extra = 0


@admin.register(PbxConnection)
class PbxConnectionAdmin(admin.ModelAdmin):
    form = PbxConnectionForm
    list_display = ("name", "public_id", "portal", "enabled", "is_default", "originate_url", "created_at")
    list_filter = ("enabled", "is_default", "portal__status")
    search_fields = ("name", "public_id", "portal__domain", "portal__member_id")
    list_select_related = ("portal",)
    readonly_fields = ("public_id", "created_at", "rotation")
    inlines = (ConnectionSecretInline, PbxLineInline, ExtensionOverrideInline)
    actions = ("rotate_signing_secret",)

    def get_fields(self, request: HttpRequest, obj: PbxConnection | None = None):  # type: ignore[no-untyped-def]
        fields = [*list(PbxConnectionForm.Meta.fields), "new_recording_secret", "clear_recording_secret"]
        return (["public_id", "created_at", "rotation", *fields]) if obj else fields

    @admin.display(description="Secret rotation")
    def rotation(self, obj: PbxConnection) -> str:
        return ROTATE_HELP

    def save_model(self, request: HttpRequest, obj: PbxConnection, form: forms.Form, change: bool) -> None:
        with transaction.atomic():
            if not change and not PbxConnection.objects.filter(portal=obj.portal).exists():
                obj.is_default = True  # as create_connection does: a portal's first connection
            if obj.is_default:
                PbxConnection.objects.filter(portal=obj.portal, is_default=True).exclude(pk=obj.pk).update(
                    is_default=False
                )
            super().save_model(request, obj, form, change)
            if not change:
                # A brand-new connection has no secret yet: issue the first one.
                request._pbx_issued = [rotate_secret(obj, overlap=timedelta(0))]  # type: ignore[attr-defined]

    def response_add(self, request: HttpRequest, obj: PbxConnection, post_url_continue: str | None = None):  # type: ignore[no-untyped-def]
        issued = getattr(request, "_pbx_issued", None)
        if issued:
            return self._secrets_page(request, issued, "Connection created", overlap_hours=0)
        return super().response_add(request, obj, post_url_continue)

    @admin.action(description="Rotate signing secret (the old one stays valid 24 h)")
    def rotate_signing_secret(self, request: HttpRequest, queryset) -> HttpResponse:  # type: ignore[no-untyped-def]
        issued = [rotate_secret(connection) for connection in queryset]
        return self._secrets_page(
            request, issued, "New signing secrets",
            overlap_hours=int(DEFAULT_ROTATION_OVERLAP.total_seconds() // 3600),
        )

    def _secrets_page(
        self, request: HttpRequest, issued: list[IssuedSecret], heading: str, *, overlap_hours: int
    ) -> TemplateResponse:
        items = [
            {
                "connection": item.connection,
                "secret": item.secret,
                "events_url": reverse("pbx-events", kwargs={"connection_id": item.connection.public_id}),
            }
            for item in issued
        ]
        response = TemplateResponse(
            request,
            "admin/calls/pbxconnection/secrets_issued.html",
            {
                **self.admin_site.each_context(request),
                "heading": heading,
                "issued": items,
                "overlap_hours": overlap_hours,
                "back_url": reverse("admin:calls_pbxconnection_changelist"),
                "opts": self.model._meta,
            },
        )
        # The page holds secrets: no caching anywhere.
        response["Cache-Control"] = "no-store"
        return response


@admin.register(PbxEvent)
class PbxEventAdmin(admin.ModelAdmin):
    list_display = ("received_at", "connection", "type", "call_id", "event_id", "status", "attempts")
    list_filter = ("status", "type")
    search_fields = ("call_id", "event_id", "webhook_id", "connection__public_id")
    list_select_related = ("connection",)
    readonly_fields = [f.name for f in PbxEvent._meta.fields]
    actions = ("requeue",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Process again (set pending and enqueue)")
    def requeue(self, request: HttpRequest, queryset) -> None:  # type: ignore[no-untyped-def]
        with transaction.atomic():
            ids = list(queryset.values_list("pk", flat=True))
            PbxEvent.objects.filter(pk__in=ids).update(status=PbxEvent.Status.PENDING, error="", processed_at=None)
            dispatch.queue(FollowUps(process_events=ids))
        self.message_user(request, f"{len(ids)} event(s) queued again at {timezone.now():%H:%M:%S}.")


# --- the call state machine (calls.sync.reconciler): calls and the dead-letter list -------------------------


class _OpenFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "open"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin):  # type: ignore[no-untyped-def]
        return (("yes", "Open"), ("no", "Resolved"))

    def queryset(self, request: HttpRequest, queryset):  # type: ignore[no-untyped-def]
        if self.value() == "yes":
            return queryset.filter(resolved_at=None)
        if self.value() == "no":
            return queryset.exclude(resolved_at=None)
        return queryset


@admin.register(DeadLetter)
class DeadLetterAdmin(admin.ModelAdmin):
    """What failed for good, per portal; replay once the cause is fixed (every step is idempotent)."""

    list_display = ("created_at", "portal", "kind", "reason", "call", "pbx_event", "resolved_at", "replay_count")
    list_filter = (_OpenFilter, "kind", "reason")
    search_fields = ("reason", "detail", "portal__domain", "portal__member_id", "call__pbx_call_id",
                     "call__b24_call_id")
    list_select_related = ("portal", "call", "pbx_event")
    readonly_fields = [f.name for f in DeadLetter._meta.fields]
    actions = ("replay", "dismiss")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Replay (try the call / event again)")
    def replay(self, request: HttpRequest, queryset) -> None:  # type: ignore[no-untyped-def]
        replayed = sum(dispatch.replay_dead_letter(pk) for pk in queryset.values_list("pk", flat=True))
        self.message_user(request, f"{replayed} dead letter(s) replayed.")

    @admin.action(description="Dismiss (handled by hand, do not replay)")
    def dismiss(self, request: HttpRequest, queryset) -> None:  # type: ignore[no-untyped-def]
        dismissed = sum(dead_letters.dismiss(pk) for pk in queryset.values_list("pk", flat=True))
        self.message_user(request, f"{dismissed} dead letter(s) dismissed.")


@admin.register(Call)
class CallAdmin(admin.ModelAdmin):
    list_display = ("created_at", "portal", "origin", "direction", "client_number", "status", "b24_call_id",
                    "answered_by", "attempts")
    list_filter = ("status", "origin", "direction")
    search_fields = ("pbx_call_id", "b24_call_id", "origin_request_id", "client_number", "portal__domain",
                     "uuid")
    list_select_related = ("portal", "connection")
    readonly_fields = ["explain", *[f.name for f in Call._meta.fields]]
    actions = ("sync_now",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="What Bitrix24 should have / still needs")
    def explain(self, obj: Call) -> str:
        try:
            desired, achieved = reconciler.desired_state(obj)
        except Exception as exc:  # the explain view must never break the page
            return f"cannot derive: {type(exc).__name__}: {exc}"
        steps = sm.plan(desired, achieved)
        cards = ", ".join(str(u) for u in sorted(desired.cards)) or "nobody"
        todo = ", ".join(step.kind.value for step in steps) or "nothing"
        unmapped = ", ".join(sorted(desired.unmapped_extensions)) or "none"
        kept_out = f"; not registered: {desired.skip_reason}" if desired.skip_reason and not achieved.b24_call_id else ""
        finished_as = f" ({desired.finish_user_source})" if desired.finish_user_source else ""
        finish_user = desired.finish.get("USER_ID") if desired.finish else None
        return (f"phase {desired.phase.value}; card for: {cards}; answered by: {desired.answered_by or '-'}; "
                f"finish under: {finish_user or '-'}{finished_as}; unmapped extensions: {unmapped}; "
                f"steps left: {todo}{kept_out}")

    @admin.action(description="Sync with Bitrix24 now")
    def sync_now(self, request: HttpRequest, queryset) -> None:  # type: ignore[no-untyped-def]
        ids = list(queryset.values_list("pk", flat=True))
        dispatch.queue(FollowUps(sync_calls=ids))
        self.message_user(request, f"{len(ids)} call(s) queued for sync.")


class _ReadOnlySettingsAdmin(admin.ModelAdmin):
    """What a portal set in the app, for support; changed only in the app (its services validate)."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(PortalCallSettings)
class PortalCallSettingsAdmin(_ReadOnlySettingsAdmin):
    list_display = ("portal", "crm_create", "route_to_responsible", "missed_call_strategy", "missed_call_user_id",
                    "add_to_chat", "recordings", "updated_at")
    search_fields = ("portal__domain", "portal__member_id")


@admin.register(UserCallSettings)
class UserCallSettingsAdmin(_ReadOnlySettingsAdmin):
    list_display = ("portal", "user_id", "register_calls", "card_mode", "updated_at")
    search_fields = ("portal__domain", "portal__member_id")


@admin.register(LineSettings)
class LineSettingsAdmin(_ReadOnlySettingsAdmin):
    list_display = ("line", "name", "enabled", "default_extension", "default_user_id", "callback_user_id",
                    "missed_call_owner_id", "crm_source", "updated_at")
    search_fields = ("line__number", "line__connection__portal__domain")


# --- the outbox (calls.outbox): every Bitrix24 command a call needs, per portal ---------------------------


@admin.register(OutboxCommand)
class OutboxCommandAdmin(admin.ModelAdmin):
    """What each portal's sender has to send and what became of it, for support; never changed here (the
    sender and the reconcilers own the rows: an edit would break exactly-once)."""

    list_display = ("created_at", "portal", "call", "kind", "method", "status", "priority", "due_at", "attempts",
                    "error_code")
    list_filter = ("status", "kind", "portal")
    search_fields = ("key", "method", "portal__domain", "portal__member_id", "call__pbx_call_id",
                     "call__b24_call_id")
    list_select_related = ("portal", "call")
    # The JSON fields are shown redacted: a command's parameters or answer could carry a secret-named field.
    fields = ("portal", "call", "key", "kind", "method", "status", "priority", "due_at", "depends_on",
              "attempts", "attempted_at", "completed_at", "applied_at", "created_at", "updated_at",
              "params_shown", "sent_params_shown", "result_shown", "error_shown")
    readonly_fields = fields
    ordering = ("-created_at", "-pk")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.display(description="error")
    def error_code(self, obj: OutboxCommand) -> str:
        return str((obj.error or {}).get("code") or "") if isinstance(obj.error, dict) else ""

    @admin.display(description="params")
    def params_shown(self, obj: OutboxCommand) -> str:
        return _json_shown(obj.params)

    @admin.display(description="sent params")
    def sent_params_shown(self, obj: OutboxCommand) -> str:
        return _json_shown(obj.sent_params)

    @admin.display(description="result")
    def result_shown(self, obj: OutboxCommand) -> str:
        return _json_shown(obj.result)

    @admin.display(description="error")
    def error_shown(self, obj: OutboxCommand) -> str:
        return _json_shown(obj.error)


def _json_shown(value: object) -> str:
    if value is None:
        return "-"
    return format_html("<pre>{}</pre>", json.dumps(redact.redact(value), ensure_ascii=False, indent=2))
