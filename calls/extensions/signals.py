"""What the extension directory tells the rest of calls, connected in ``CallsConfig.ready()``.

* ``reading(portal_id, look_again_in)``: a read of the portal's users has pages in its outbox not yet
  answered (they wait behind the live calls' commands): someone must look at them again in
  ``look_again_in`` seconds (``sync_extensions`` takes in what is answered, and says so again if need be).
"""

from __future__ import annotations

from django.dispatch import Signal

reading = Signal()
