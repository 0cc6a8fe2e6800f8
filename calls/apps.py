from django.apps import AppConfig


class CallsConfig(AppConfig):
    name = "calls"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Everything calls reacts to, in one place: model changes that invalidate what it keeps in
        memory and caches, what portals tells it (``portals.signals``), and the Bitrix24 telephony
        events it handles (``portals.event_handlers``)."""
        from django.db.models.signals import post_delete, post_save

        from calls import bitrix24_events, receivers
        from calls.extensions import signals as extension_signals
        from calls.models import (
            ConnectionSecret,
            ExtensionDirectory,
            ExtensionOverride,
            LineSettings,
            PbxConnection,
            PbxLine,
            PortalCallSettings,
            UserCallSettings,
        )
        from calls.outbox import signals as outbox_signals
        from portals import event_handlers
        from portals.models import PortalCredential
        from portals.signals import portal_changed, portal_data_purge_requested

        for model, receiver in (
            (PbxConnection, receivers.connection_changed),
            (ConnectionSecret, receivers.secret_changed),
            (PbxLine, receivers.line_changed),
            (LineSettings, receivers.line_routing_changed),
            (ExtensionOverride, receivers.extension_override_changed),
        ):
            for signal in (post_save, post_delete):
                signal.connect(receiver, sender=model, dispatch_uid=f"calls.{receiver.__name__}.{signal is post_save}")
        # What the calls' syncs keep in memory per portal (``calls.sync.portal_state``).
        for model in (PortalCallSettings, UserCallSettings, LineSettings, ExtensionDirectory, ExtensionOverride,
                      PbxLine, PortalCredential):
            for signal in (post_save, post_delete):
                signal.connect(receivers.policy_row_changed, sender=model,
                               dispatch_uid=f"calls.policy_row_changed.{model.__name__}.{signal is post_save}")
        outbox_signals.drained.connect(receivers.outbox_drained, dispatch_uid="calls.outbox_drained")
        extension_signals.reading.connect(receivers.users_being_read, dispatch_uid="calls.users_being_read")
        portal_changed.connect(receivers.portals_changed, dispatch_uid="calls.portals_changed")
        portal_data_purge_requested.connect(receivers.portal_purge_requested, dispatch_uid="calls.portal_purge")
        event_handlers.register("ONEXTERNALCALLSTART", bitrix24_events.handle_click_to_call)
        event_handlers.register("ONEXTERNALCALLBACKSTART", bitrix24_events.handle_callback)

        from calls.connections import targets

        targets.policy_provider = targets.policy_from_settings
