"""Models of the calls app, one module per concern; re-exported here for Django and callers."""

from .calls import Call, DeadLetter, ExtensionDirectory
from .connections import ConnectionSecret, ExtensionOverride, PbxConnection, PbxLine, SeenLineNumber
from .inbox import PbxEvent, PbxWebhookReceipt
from .originate import OriginateCommand
from .outbox import OutboxCommand, OutboxSender
from .pump import PortalPump
from .routing import RouteDecision
from .settings import LineSettings, PortalCallSettings, UserCallSettings

__all__ = [
    "Call",
    "ConnectionSecret",
    "DeadLetter",
    "ExtensionDirectory",
    "ExtensionOverride",
    "LineSettings",
    "OriginateCommand",
    "OutboxCommand",
    "OutboxSender",
    "PbxConnection",
    "PbxEvent",
    "PbxLine",
    "PbxWebhookReceipt",
    "PortalCallSettings",
    "PortalPump",
    "RouteDecision",
    "SeenLineNumber",
    "UserCallSettings",
]
