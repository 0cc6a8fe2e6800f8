"""Write-side services of the calls app, one module per concern; hooks other apps call are re-exported here."""

from .bitrix24_events import handle_bitrix24_telephony_event

__all__ = ["handle_bitrix24_telephony_event"]
