"""What the PBX API tells the rest of the service (metrics, for one): explicit signals, connected by whoever
listens in its ``AppConfig.ready()``; the API does not know who listens.

* ``events_accepted(portal_id, types)``: a request's events were stored and its transaction has ended
  (``calls.pbx_api.intake``); ``types`` holds the type of each event stored. Sent once per request that stored
  any: a duplicate event, a replayed ``webhook-id`` (whatever its body) and a refused request send nothing.
  (Counting inbox rows as they are saved counted the events of a replayed request, which are rolled back.)
"""

from __future__ import annotations

from django.dispatch import Signal

events_accepted = Signal()
