"""The service's Prometheus metrics, defined once. Labels are bounded by design: Bitrix24 methods are the
ones this code calls, results are error classes, event types and steps are fixed sets; no label holds a
portal, a call or a number (the console answers per-portal questions).

With ``PROMETHEUS_MULTIPROC_DIR`` set before start (gunicorn workers, Celery prefork children) every
process writes its values to files in that directory and ``/metrics`` adds them up.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from ops.metrics.exposition import ensure_multiprocess_dir

ensure_multiprocess_dir()

# Seconds from the PBX event to the Bitrix24 step: card pops are meant to be sub-second, recordings minutes.
STEP_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600)
REQUEST_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 15)

PBX_EVENTS = Counter("connector_pbx_events_total", "PBX events accepted into the inbox", ["type"])
B24_REQUESTS = Counter("connector_b24_requests_total", "HTTP requests to Bitrix24 (REST and OAuth)",
                       ["method", "result"])
B24_COMMANDS = Counter("connector_b24_commands_total",
                       "Bitrix24 commands by method and result; each command of a batch counted on its own",
                       ["method", "result"])
B24_REQUEST_SECONDS = Histogram("connector_b24_request_seconds", "Duration of one Bitrix24 request",
                                ["method"], buckets=REQUEST_BUCKETS)
B24_OVERLOAD = Counter("connector_b24_overload_total", "Bitrix24 answers 429 (rate limit) and 503 (overload)",
                       ["status"])
TOKEN_REFRESHES = Counter("connector_b24_token_refreshes_total", "OAuth token refreshes", ["outcome"])
CALL_STEP_SECONDS = Histogram("connector_call_step_seconds",
                              "From the call's first PBX event to a Bitrix24 step done (register, card, finish, recording)",
                              ["step"], buckets=STEP_BUCKETS)
CALL_SYNC_RUNS = Counter("connector_call_sync_runs_total", "Call sync runs by outcome (retry = a step failed, tried again later)",
                         ["outcome"])
CALLS_UNMAPPED = Counter("connector_calls_unmapped_extension_total",
                         "Calls whose ringing or answering extension maps to no Bitrix24 user (no card for it)")
DEAD_LETTERS = Counter("connector_dead_letters_total", "Dead letters written", ["kind"])
TASKS = Counter("connector_celery_tasks_total", "Celery tasks run", ["task", "state"])
TASK_RETRIES = Counter("connector_celery_task_retries_total", "Celery task retries", ["task"])
TASK_SECONDS = Histogram("connector_celery_task_seconds", "Celery task run time", ["task"], buckets=REQUEST_BUCKETS)
