"""The words of the call-handling policy: what a portal admin can choose (``calls.settings``, stored by
``calls.models.settings``) and what the call state machine does with it (``calls.sync.state_machine``,
which re-exports them). Pure constants, below both.
"""

from __future__ import annotations

CRM_CREATE_OFF = "off"
CRM_CREATE_INCOMING = "incoming"
CRM_CREATE_OUTGOING = "outgoing"
CRM_CREATE_BOTH = "both"
CRM_CREATE_MODES = (CRM_CREATE_OFF, CRM_CREATE_INCOMING, CRM_CREATE_OUTGOING, CRM_CREATE_BOTH)

CARD_RING = "ring"
CARD_ANSWER = "answer"
CARD_NEVER = "never"
CARD_MODES = (CARD_RING, CARD_ANSWER, CARD_NEVER)

MISSED_RESPONSIBLE = "responsible"  # the client's responsible manager in the CRM
MISSED_LAST_RANG = "last_rang"  # the last agent whose phone rang
MISSED_FIXED = "fixed"  # a chosen user
MISSED_CALL_STRATEGIES = (MISSED_RESPONSIBLE, MISSED_LAST_RANG, MISSED_FIXED)

# Who owns a missed incoming call: the first of these that names a user whose calls are registered.
OWNER_STRATEGY = "strategy"
OWNER_LINE = "line"
OWNER_PORTAL_DEFAULT = "portal_default"
OWNER_INSTALLER = "installer"
MISSED_CALL_OWNER_CHAIN = (OWNER_STRATEGY, OWNER_LINE, OWNER_PORTAL_DEFAULT, OWNER_INSTALLER)
