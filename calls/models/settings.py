"""How a portal wants its calls handled: portal-wide, per Bitrix24 user and per external line.

Written only through ``calls.settings.services`` (validated, field by field), read through
``calls.settings.selectors`` and, for a call, by ``policy_for`` in the call state machine's reader. A
missing row means every default below: portals that never opened the settings behave as documented.
Users are Bitrix24 user ids (chosen with Bitrix24's user picker in the app).
"""

from __future__ import annotations

from django.db import models


class CrmCreate(models.TextChoices):
    """Which calls from numbers the CRM does not know create a CRM entity (register's ``CRM_CREATE``)."""

    OFF = "off", "Never"
    INCOMING = "incoming", "Incoming calls"
    OUTGOING = "outgoing", "Outgoing calls"
    BOTH = "both", "Incoming and outgoing calls"


class MissedCallStrategy(models.TextChoices):
    """Who owns an incoming call nobody answered (the user it is finished under)."""

    RESPONSIBLE = "responsible", "The client's responsible manager"
    LAST_RANG = "last_rang", "The last agent whose phone rang"
    FIXED = "fixed", "A chosen user"


class CardMode(models.TextChoices):
    """When a user's call card opens."""

    RING = "ring", "When their phone rings"
    ANSWER = "answer", "When they answer"
    NEVER = "never", "Never"


class PortalCallSettings(models.Model):
    portal = models.OneToOneField("portals.Portal", on_delete=models.CASCADE, related_name="call_settings")
    crm_create = models.CharField(max_length=8, choices=CrmCreate.choices, default=CrmCreate.BOTH)
    route_to_responsible = models.BooleanField(
        default=True, help_text="/route sends incoming calls to the client's responsible manager"
    )
    missed_call_strategy = models.CharField(
        max_length=16, choices=MissedCallStrategy.choices, default=MissedCallStrategy.RESPONSIBLE
    )
    missed_call_user_id = models.PositiveIntegerField(
        null=True, blank=True, help_text="The owner of missed calls with the 'fixed' strategy"
    )
    default_user_id = models.PositiveIntegerField(
        null=True, blank=True,
        help_text="Who a call is registered under when no agent maps to a user (else the installing admin)",
    )
    callback_user_id = models.PositiveIntegerField(
        null=True, blank=True, help_text="Who takes CRM-form callbacks when the line has no callback agent"
    )
    add_to_chat = models.BooleanField(default=True, help_text="ADD_TO_CHAT of register and finish")
    recordings = models.BooleanField(default=True, help_text="Download recordings and attach them to calls")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "portal call settings"
        verbose_name_plural = "portal call settings"

    def __str__(self) -> str:
        return f"call settings of portal {self.portal_id}"


class UserCallSettings(models.Model):
    """One Bitrix24 user's call settings; only users whose settings differ from the defaults have a row."""

    portal = models.ForeignKey("portals.Portal", on_delete=models.CASCADE, related_name="user_call_settings")
    user_id = models.PositiveIntegerField(help_text="Bitrix24 user id")
    register_calls = models.BooleanField(default=True, help_text="Register this user's calls in Bitrix24")
    card_mode = models.CharField(max_length=8, choices=CardMode.choices, default=CardMode.RING)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["portal_id", "user_id"]
        constraints = [models.UniqueConstraint(fields=["portal", "user_id"], name="calls_user_settings_unique")]
        verbose_name = "user call settings"
        verbose_name_plural = "user call settings"

    def __str__(self) -> str:
        return f"call settings of user {self.user_id} on portal {self.portal_id}"

    @property
    def is_default(self) -> bool:
        return self.register_calls and self.card_mode == CardMode.RING


class LineSettings(models.Model):
    """What the portal admin decided about one external line (kept apart from ``PbxLine``, which mirrors
    what the PBX reports and is rewritten by every ``PUT /lines``)."""

    line = models.OneToOneField("calls.PbxLine", on_delete=models.CASCADE, related_name="settings")
    name = models.CharField(
        max_length=255, blank=True, help_text="Name shown in Bitrix24 (empty: the name the PBX gave)"
    )
    enabled = models.BooleanField(default=True, help_text="Register the calls of this line in Bitrix24")
    route_to_responsible = models.BooleanField(
        default=True, help_text="Ask Bitrix24 CRM for the client's responsible manager on incoming calls"
    )
    default_extension = models.CharField(
        max_length=64, blank=True, help_text="Where the call goes when no responsible manager can take it"
    )
    default_user_id = models.PositiveIntegerField(
        null=True, blank=True, help_text="Bitrix24 user of the fallback (else the owner of default_extension)"
    )
    callback_user_id = models.PositiveIntegerField(
        null=True, blank=True, help_text="Bitrix24 user who takes CRM-form callbacks on this line"
    )
    missed_call_owner_id = models.PositiveIntegerField(
        null=True, blank=True, help_text="Owner of this line's missed calls when the portal's strategy finds nobody"
    )
    crm_source = models.CharField(
        max_length=50, blank=True, help_text="CRM_SOURCE of register: a source STATUS_ID of the portal's CRM"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "line settings"
        verbose_name_plural = "line settings"

    def __str__(self) -> str:
        return f"settings of line {self.line_id}"
