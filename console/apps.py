from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    """The vendor's operator console: staff-only pages over every portal, each action audited."""

    name = "console"
    default_auto_field = "django.db.models.BigAutoField"
