from django.apps import AppConfig


class CallsConfig(AppConfig):
    name = "calls"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from calls.originate import targets, transport

        transport.policy_provider = targets.policy_from_settings
