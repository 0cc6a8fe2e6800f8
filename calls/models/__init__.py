"""Models of the calls app, one module per concern; re-exported here for Django and callers."""

from .calls import Call, DeadLetter, ExtensionDirectory
from .connections import ConnectionSecret, ExtensionOverride, PbxConnection, PbxLine, SeenLineNumber
from .inbox import PbxEvent, PbxWebhookReceipt
from .originate import OriginateCommand
from .routing import LineRouting, RouteDecision

__all__ = [
    "Call",
    "ConnectionSecret",
    "DeadLetter",
    "ExtensionDirectory",
    "ExtensionOverride",
    "LineRouting",
    "OriginateCommand",
    "PbxConnection",
    "PbxEvent",
    "PbxLine",
    "PbxWebhookReceipt",
    "RouteDecision",
    "SeenLineNumber",
]
