"""Models of the calls app, one module per concern; re-exported here for Django and callers."""

from .calls import Call, DeadLetter, ExtensionDirectory
from .connections import ConnectionSecret, ExtensionOverride, PbxConnection, PbxLine
from .inbox import PbxEvent, PbxWebhookReceipt

__all__ = [
    "Call",
    "DeadLetter",
    "ExtensionDirectory",
    "ConnectionSecret",
    "ExtensionOverride",
    "PbxConnection",
    "PbxEvent",
    "PbxLine",
    "PbxWebhookReceipt",
]
