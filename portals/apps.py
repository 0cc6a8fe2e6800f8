from django.apps import AppConfig


class PortalsConfig(AppConfig):
    name = "portals"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from .models import Portal
        from .receivers import portal_saved

        post_save.connect(portal_saved, sender=Portal, dispatch_uid="portals.portal_saved")
        post_delete.connect(portal_saved, sender=Portal, dispatch_uid="portals.portal_deleted")
