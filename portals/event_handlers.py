"""Who acts on the Bitrix24 events that concern another app (telephony: click-to-call, callbacks).

An app registers its handlers in its ``AppConfig.ready()``. The event inbox asks for the handler of a
telephony event and gets one or an error: an event nobody handles is a wiring bug to see in the inbox
(``failed``, with this error), never an event quietly marked as handled.
"""

from __future__ import annotations

from collections.abc import Callable

# Bitrix24's telephony events the app is bound to (docs/bitrix24-contract.md §6): another app handles them.
TELEPHONY_EVENTS = frozenset({"ONEXTERNALCALLSTART", "ONEXTERNALCALLBACKSTART"})

EventHandler = Callable[[int], None]  # takes the Bitrix24Event's id; must be idempotent

_handlers: dict[str, EventHandler] = {}


class NoEventHandler(LookupError):
    pass


def register(event: str, handler: EventHandler) -> None:
    """Make ``handler`` the one for ``event``; registering a different one for the same event is an error."""
    current = _handlers.get(event)
    if current is not None and current is not handler:
        raise ValueError(f"{event} already has a handler: {current.__module__}.{current.__qualname__}")
    _handlers[event] = handler


def handler_for(event: str) -> EventHandler:
    try:
        return _handlers[event]
    except KeyError:
        raise NoEventHandler(f"no handler is registered for the Bitrix24 event {event}") from None
