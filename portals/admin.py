"""Vendor-facing admin: which portals are healthy and why the others are not. Never shows tokens."""

from __future__ import annotations

from django.contrib import admin

from .models import Bitrix24Event, Portal, RestCallLog


@admin.register(Portal)
class PortalAdmin(admin.ModelAdmin):
    list_display = (
        "domain",
        "member_id",
        "status",
        "dead_reason",
        "status_changed_at",
        "plan",
        "install_finished",
        "installed_at",
    )
    list_filter = ("status", "plan", "install_finished")
    search_fields = ("domain", "member_id")
    # application_token is deliberately absent: secrets are never rendered, not even masked.
    fields = (
        "member_id",
        "domain",
        "client_endpoint",
        "server_endpoint",
        "status",
        "dead_reason",
        "status_changed_at",
        "plan",
        "rate_capacity",
        "rate_drain",
        "scopes",
        "installed_at",
        "install_finished",
        "uninstalled_at",
        "default_country",
        "lang",
        "settings",
        "has_credentials",
    )
    readonly_fields = (
        "member_id",
        "client_endpoint",
        "server_endpoint",
        "status",
        "dead_reason",
        "status_changed_at",
        "plan",
        "scopes",
        "installed_at",
        "install_finished",
        "uninstalled_at",
        "has_credentials",
    )

    @admin.display(boolean=True, description="Has OAuth tokens")
    def has_credentials(self, obj: Portal) -> bool:
        return hasattr(obj, "credential")


@admin.register(Bitrix24Event)
class Bitrix24EventAdmin(admin.ModelAdmin):
    # A refused event (a forged uninstall) says why in ``error``.
    list_display = ("id", "portal", "event", "status", "error", "attempts", "received_at", "processed_at")
    list_filter = ("status", "event")
    search_fields = ("portal__domain", "portal__member_id", "event")
    readonly_fields = [f.name for f in Bitrix24Event._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(RestCallLog)
class RestCallLogAdmin(admin.ModelAdmin):
    list_display = ("created_at", "portal", "method", "status", "error", "duration_ms")
    list_filter = ("status", "method")
    search_fields = ("portal__domain", "member_id", "method")
    readonly_fields = [f.name for f in RestCallLog._meta.fields]
    date_hierarchy = "created_at"

    def has_add_permission(self, request) -> bool:
        return False
