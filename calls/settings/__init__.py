"""The portal admin's call-handling settings: portal-wide, per Bitrix24 user, per external line.

Models: ``calls.models.settings``. Writes: ``services``; every function validates all it is given
first and raises ``django.core.exceptions.ValidationError`` with ``message_dict`` = {field: [message]}
in the active language, changing nothing, and ``NotFound`` (an ``Http404``) for an id that is not
this portal's; it returns ``Saved(view, follow_ups)``: the caller answers with ``view`` and queues
``follow_ups`` (``calls.dispatch.queue``). Reads: ``selectors`` (plain dicts ready for JSON). Every function takes the portal's
id first and never reads or changes another portal's rows. How calls honour the settings: the policy
in ``calls.sync.state_machine`` (in one place) and its reader, ``policy_for`` in
``calls.sync.reconciler``.
"""

from django.http import Http404


class NotFound(Http404):
    """The portal, line or connection named is not this portal's (an ``Http404``: views answer 404)."""
