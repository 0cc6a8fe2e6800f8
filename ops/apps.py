from django.apps import AppConfig


class OpsConfig(AppConfig):
    """Health, metrics and structured logs of the service itself (what the vendor's operators watch)."""

    name = "ops"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from ops.logs import celery_context
        from ops.metrics import observers

        observers.connect()
        celery_context.connect()
