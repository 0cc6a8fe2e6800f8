"""Settings of the call state machine, typed. Their defaults are written once, in ``telephony_app.settings``."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from calls.sync.shards import SLOTS


@dataclass(frozen=True)
class SyncSettings:
    retry_base_seconds: float  # backoff of a failed Bitrix24 step: full jitter from here ...
    retry_max_seconds: float  # ... capped here (far below the broker's visibility timeout)
    retry_min_seconds: float
    give_up_after_seconds: float  # continuous failure before a dead letter
    start_wait_seconds: float  # how long a call's events wait for its call.started
    sync_lease_seconds: float  # one worker syncs a call at a time; the lease ends by itself
    recording_lease_seconds: float  # the slow step holds the call longer
    finish_settle_seconds: float  # late events after call.ended
    answer_wait_seconds: float  # answered, but by whom?
    sweep_grace_seconds: float  # untouched this long: the sweeper re-dispatches
    max_call_seconds: float  # live this long without call.ended: finished as OTHER
    line_cache_seconds: int  # a line known to be in Bitrix24
    extension_max_digits: int  # longer numbers are external numbers, not extensions
    policy_memory_seconds: float  # a portal's rows kept in process memory at most this long (``portal_state``)


def sync_settings() -> SyncSettings:
    return SyncSettings(
        retry_base_seconds=float(settings.CALLS_RETRY_BASE_SECONDS),
        retry_max_seconds=float(settings.CALLS_RETRY_MAX_SECONDS),
        retry_min_seconds=float(settings.CALLS_RETRY_MIN_SECONDS),
        give_up_after_seconds=float(settings.CALLS_GIVE_UP_AFTER_SECONDS),
        start_wait_seconds=float(settings.CALLS_START_WAIT_SECONDS),
        sync_lease_seconds=float(settings.CALLS_SYNC_LEASE_SECONDS),
        recording_lease_seconds=float(settings.CALLS_RECORDING_LEASE_SECONDS),
        finish_settle_seconds=float(settings.CALLS_FINISH_SETTLE_SECONDS),
        answer_wait_seconds=float(settings.CALLS_ANSWER_WAIT_SECONDS),
        sweep_grace_seconds=float(settings.CALLS_SWEEP_GRACE_SECONDS),
        max_call_seconds=float(settings.CALLS_MAX_CALL_SECONDS),
        line_cache_seconds=int(settings.CALLS_LINE_CACHE_SECONDS),
        extension_max_digits=int(settings.CALLS_EXTENSION_MAX_DIGITS),
        policy_memory_seconds=float(settings.CALLS_POLICY_MEMORY_SECONDS),
    )


@dataclass(frozen=True)
class PumpSettings:
    """The portal pump's policy (``calls.sync.pump``): how much one run does before other portals' turn."""

    lease_seconds: float  # one runner per shard of a portal; a dead one's lease ends by itself after this
    slice_seconds: float  # a run goes to the back of the queue after this long ...
    slice_events: int  # ... or this many PBX events applied
    round_events: int  # PBX events one round applies before it brings their calls in line
    drain_requests: int  # requests one round's drain sends at most (the rest: the portal's drain task)
    kick_ttl_seconds: float  # a kick's mark (one pump message waiting per shard) lasts this long at most
    shards: int  # runners of one portal's pump at once, each over its share of the calls (``calls.sync.shards``)


def pump_settings() -> PumpSettings:
    return PumpSettings(
        lease_seconds=float(settings.CALLS_PUMP_LEASE_SECONDS),
        slice_seconds=float(settings.CALLS_PUMP_SLICE_SECONDS),
        slice_events=int(settings.CALLS_PUMP_SLICE_EVENTS),
        round_events=int(settings.CALLS_PUMP_ROUND_EVENTS),
        drain_requests=int(settings.CALLS_PUMP_DRAIN_REQUESTS),
        kick_ttl_seconds=float(settings.CALLS_PUMP_KICK_TTL_SECONDS),
        shards=min(max(1, int(settings.CALLS_PUMP_SHARDS)), SLOTS),
    )
