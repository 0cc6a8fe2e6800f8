"""Models of the calls app, one module per concern; re-exported here for Django and callers."""

from .connections import ConnectionSecret, ExtensionOverride, PbxConnection, PbxLine
from .inbox import PbxEvent, PbxWebhookReceipt

__all__ = [
    "ConnectionSecret",
    "ExtensionOverride",
    "PbxConnection",
    "PbxEvent",
    "PbxLine",
    "PbxWebhookReceipt",
]
