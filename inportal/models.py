"""What the in-portal app keeps of its own: each portal's place in the setup wizard."""

from __future__ import annotations

from django.db import models


class WizardState(models.Model):
    """The first-run wizard of one portal: where the admin left it, so it can be resumed."""

    class Step(models.TextChoices):
        CONNECT = "connect", "Connect the PBX"
        CHECK = "check", "Check both directions"
        EMPLOYEES = "employees", "Employees"
        LINES = "lines", "Lines"
        DEFAULTS = "defaults", "Defaults"
        FINISH = "finish", "Finish"

    portal = models.OneToOneField("portals.Portal", on_delete=models.CASCADE, related_name="wizard_state")
    step = models.CharField(max_length=16, choices=Step.choices, default=Step.CONNECT)
    done = models.BooleanField(default=False)
    # Steps the admin went past at least once, in order (the frontend marks them as visited).
    visited = models.JSONField(default=list, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    finished_by = models.PositiveIntegerField(null=True, blank=True, help_text="Bitrix24 user id")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"wizard of portal {self.portal_id}: {'done' if self.done else self.step}"


class ConnectionTest(models.Model):
    """The last signed ``test`` command sent to a connection's originate URL and how the PBX answered."""

    connection = models.OneToOneField("calls.PbxConnection", on_delete=models.CASCADE, related_name="last_test")
    tested_at = models.DateTimeField()
    ok = models.BooleanField(default=False)
    outcome = models.CharField(max_length=20, help_text="accepted | refused | unreachable | no_originate_url")
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    detail = models.CharField(max_length=300, blank=True)
    tested_by = models.PositiveIntegerField(null=True, blank=True, help_text="Bitrix24 user id")

    def __str__(self) -> str:
        return f"test of connection {self.connection_id}: {self.outcome}"
