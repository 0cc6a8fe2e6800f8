"""What the outbox tells the rest of calls, connected in ``CallsConfig.ready()``; the sender does not know who
listens.

* ``drained(portal_id, call_ids, next_due)``: a sender let go of the portal. ``call_ids``: calls whose commands
  got an outcome and whose reconciler is not already running (it reads them next); ``next_due``: when the
  portal's earliest pending command is due (None: nothing pending, or another sender holds the portal).
"""

from __future__ import annotations

from django.dispatch import Signal

drained = Signal()
