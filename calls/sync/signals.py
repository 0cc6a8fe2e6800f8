"""What the call sync tells the rest of the service (metrics, for one): explicit signals, connected by
whoever listens in its ``AppConfig.ready()``; the sync does not know who listens.

* ``step_done(step, portal_id, first_fact_at, done_at)``: a Bitrix24 step of a call succeeded: ``register``,
  ``card`` (a card shown), ``finish``, ``recording``. ``first_fact_at``: when the call's first PBX event arrived.
* ``sync_ran(outcome)``: one sync run ended: ``idle`` | ``busy`` | ``retry`` | ``waiting`` | ``dead`` | ``slow_step``.
* ``extensions_unmapped(portal_id, extensions)``: a call's first ringing/answering extensions that map to no
  Bitrix24 user were recorded (once per call).
"""

from __future__ import annotations

from django.dispatch import Signal

step_done = Signal()
sync_ran = Signal()
extensions_unmapped = Signal()
