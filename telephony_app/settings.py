"""Settings from the environment, with safe embedded defaults.

With no environment at all the product runs on SQLite, a filesystem Celery broker and
file-based coordination (locks, rate limiter), so a newcomer needs no servers. With
``DATABASE_URL`` (PostgreSQL, psycopg 3) and ``REDIS_URL`` it runs as in production.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from .env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("APP_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

# development | test | production. Production refuses unsafe defaults at start-up.
APP_ENV = env_str("APP_ENV", "development")
if APP_ENV not in {"development", "test", "production"}:
    raise ImproperlyConfigured(f"APP_ENV must be development, test or production, got {APP_ENV!r}")
IS_PRODUCTION = APP_ENV == "production"

_DEV_SECRET_KEY = "dev-insecure-secret-key-do-not-use-in-production"
SECRET_KEY = env_str("SECRET_KEY", _DEV_SECRET_KEY)
DEBUG = env_bool("DEBUG", default=not IS_PRODUCTION)

APP_BASE_URL = env_str("APP_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver,app.test")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

# --- Bitrix24 ---------------------------------------------------------------------------
BITRIX24_CLIENT_ID = env_str("BITRIX24_CLIENT_ID", "local.sandbox-app" if not IS_PRODUCTION else "")
BITRIX24_CLIENT_SECRET = env_str(
    "BITRIX24_CLIENT_SECRET", "sandbox-client-secret" if not IS_PRODUCTION else ""
)
BITRIX24_OAUTH_SERVER = env_str("BITRIX24_OAUTH_SERVER", "https://oauth.bitrix.info").rstrip("/")
# OAuth hosts that may receive our client_secret. A portal's server_endpoint outside this list
# is never trusted: an attacker-controlled install POST could otherwise name any host.
BITRIX24_OAUTH_HOSTS = env_list("BITRIX24_OAUTH_HOSTS", "oauth.bitrix.info,oauth.bitrix24.tech")
BITRIX24_ALLOW_HTTP = env_bool("BITRIX24_ALLOW_HTTP", default=False)
# Hosts the OAuth connect flow may redirect a browser to (portals.portal_domains): one label under one of
# Bitrix24's cloud zones, or an on-premise Bitrix24 the vendor lists (host, host:port or *.domain).
BITRIX24_CLOUD_ZONES = env_list(
    "BITRIX24_CLOUD_ZONES",
    "bitrix24.ru,bitrix24.by,bitrix24.kz,bitrix24.ua,bitrix24.uz,bitrix24.com,bitrix24.eu,bitrix24.de,"
    "bitrix24.es,bitrix24.fr,bitrix24.it,bitrix24.pl,bitrix24.uk,bitrix24.in,bitrix24.com.br,bitrix24.com.tr,"
    "bitrix24.mx,bitrix24.co,bitrix24.cn,bitrix24.jp,bitrix24.vn,bitrix24.id",
)
BITRIX24_ONPREMISE_HOSTS = env_list("BITRIX24_ONPREMISE_HOSTS", "")
BITRIX24_APP_SCOPES = env_list("BITRIX24_APP_SCOPES", "telephony,crm,user_basic,placement")
BITRIX24_HTTP_TIMEOUT = float(env_str("BITRIX24_HTTP_TIMEOUT", "15"))
# Head-room under Bitrix24's own leaky bucket: other apps and browsers share the portal's budget.
BITRIX24_RATE_HEADROOM = float(env_str("BITRIX24_RATE_HEADROOM", "0.8"))
BITRIX24_REST_LOG_DAYS = env_int("BITRIX24_REST_LOG_DAYS", 7)
# Requests that only Bitrix24 can vouch for (install events, installer/app page tokens, OAuth codes,
# uninstalls to confirm) each cost an outbound call: per source address and per claimed portal, at most this
# many unconfirmed ones per window, then 429 (portals.verification_limits; confirmed ones are refunded).
BITRIX24_VERIFY_LIMIT_PER_SOURCE = env_int("BITRIX24_VERIFY_LIMIT_PER_SOURCE", 20)
BITRIX24_VERIFY_LIMIT_PER_PORTAL = env_int("BITRIX24_VERIFY_LIMIT_PER_PORTAL", 10)
BITRIX24_VERIFY_WINDOW_SECONDS = env_int("BITRIX24_VERIFY_WINDOW_SECONDS", 60)
# Click-to-call and callback events (portals.event_checks): ts at most this far from now (Bitrix24's queue
# may delay delivery); a click-to-call must carry the clicking user's token (confirmed with app.info);
# callbacks per portal and per number, click-to-calls per user are limited.
BITRIX24_EVENT_MAX_AGE = env_int("BITRIX24_EVENT_MAX_AGE", 600)
BITRIX24_CLICK_TO_CALL_REQUIRE_USER_TOKEN = env_bool("BITRIX24_CLICK_TO_CALL_REQUIRE_USER_TOKEN", True)
BITRIX24_CALLBACKS_PER_PORTAL_PER_MINUTE = env_int("BITRIX24_CALLBACKS_PER_PORTAL_PER_MINUTE", 30)
BITRIX24_CALLBACKS_PER_NUMBER_PER_HOUR = env_int("BITRIX24_CALLBACKS_PER_NUMBER_PER_HOUR", 3)
BITRIX24_CLICK_TO_CALLS_PER_USER_PER_MINUTE = env_int("BITRIX24_CLICK_TO_CALLS_PER_USER_PER_MINUTE", 10)

# --- Secrets at rest -----------------------------------------------------------------------
# Comma-separated Fernet keys; the first encrypts, all decrypt (rotation).
TOKEN_ENCRYPTION_KEYS = env_list("TOKEN_ENCRYPTION_KEYS", "")
if not TOKEN_ENCRYPTION_KEYS and not IS_PRODUCTION:
    # A fixed development key: anything encrypted with it is worthless outside a dev box.
    TOKEN_ENCRYPTION_KEYS = ["ZGV2LW9ubHktdG9rZW4ta2V5LTMyLWJ5dGVzLWxvbmc="]

if IS_PRODUCTION:
    _problems = []
    if DEBUG:
        _problems.append("DEBUG must be off")
    if SECRET_KEY == _DEV_SECRET_KEY or len(SECRET_KEY) < 32:
        _problems.append("SECRET_KEY must be set to a long random value")
    if not TOKEN_ENCRYPTION_KEYS:
        _problems.append("TOKEN_ENCRYPTION_KEYS must be set")
    if not BITRIX24_CLIENT_ID or not BITRIX24_CLIENT_SECRET:
        _problems.append("BITRIX24_CLIENT_ID and BITRIX24_CLIENT_SECRET must be set")
    if BITRIX24_ALLOW_HTTP:
        _problems.append("BITRIX24_ALLOW_HTTP must be off")
    if _problems:
        raise ImproperlyConfigured("Refusing to start in production: " + "; ".join(_problems))

# --- Django ----------------------------------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Redoc / Swagger UI served from our static files (docs work offline)
    "portals",
    "calls",
    "ops",
    "console",
    "axes",  # admin and console login throttling
    "inportal",
]

MIDDLEWARE = [
    "ops.middleware.ProbeMiddleware",  # first: probes and scrapes skip host validation and the HTTPS redirect
    "ops.logs.middleware.LogContextMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # telephony_app.web_only: the same middlewares, which the PBX's signed requests skip (no session, no
    # cookie, no CSRF, no language: a signature and English JSON).
    "telephony_app.web_only.WhiteNoiseMiddleware",
    "telephony_app.web_only.SessionMiddleware",
    "telephony_app.web_only.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",  # Content-Length, for the API too
    "telephony_app.web_only.CsrfViewMiddleware",
    "telephony_app.web_only.AuthenticationMiddleware",
    "telephony_app.web_only.MessageMiddleware",
    # Nothing may be framed (X-Frame-Options: DENY) except the pages Bitrix24 frames, which answer
    # frame-ancestors <the portal> instead (portals.iframe).
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "telephony_app.admin_site.AdminHostMiddleware",
    "telephony_app.db_unavailable.DatabaseUnavailableMiddleware",  # a down/hung database: 503 + Retry-After
    "axes.middleware.AxesMiddleware",  # last: it turns a locked-out login into its 429 page
]

# --- The admin and staff logins -----------------------------------------------------------------------
# The admin lives at ADMIN_URL (a path, e.g. "ops-7f3c/") and, with ADMIN_HOST, only on that host (it must be
# in ALLOWED_HOSTS too); elsewhere its path is a 404.
ADMIN_URL = env_str("ADMIN_URL", "admin/").strip("/") + "/"
ADMIN_HOST = env_str("ADMIN_HOST", "")
# Reverse proxies in front of the app that append to X-Forwarded-For (telephony_app.client_ip); 0: none.
TRUSTED_PROXY_HOPS = env_int("TRUSTED_PROXY_HOPS", 0)
# Login throttling (django-axes) for the admin and the operator console: after AXES_FAILURE_LIMIT wrong
# passwords from one address, that address is locked out for AXES_COOLOFF_TIME hours (a 429 page).
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = float(env_str("AXES_COOLOFF_TIME", "0.25"))
AXES_LOCKOUT_PARAMETERS = ["ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "telephony_app.client_ip.client_ip"

ROOT_URLCONF = "telephony_app.urls"
# The DEBUG page and error e-mails mask passwords inside connection URLs too, not only secret-named settings.
DEFAULT_EXCEPTION_REPORTER_FILTER = "telephony_app.error_reports.SecretUrlExceptionReporterFilter"
WSGI_APPLICATION = "telephony_app.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASE_URL = env_str("DATABASE_URL", "")
DB_CONNECT_TIMEOUT = env_int("DB_CONNECT_TIMEOUT", 5)
DB_STATEMENT_TIMEOUT = float(env_str("DB_STATEMENT_TIMEOUT", "15"))
DB_IDLE_IN_TRANSACTION_TIMEOUT = float(env_str("DB_IDLE_IN_TRANSACTION_TIMEOUT", "60"))
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_{os.getpid()}"}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # A hung database must cost seconds, not a web worker for gunicorn's 60 s: give up connecting after
        # DB_CONNECT_TIMEOUT, cancel any statement after DB_STATEMENT_TIMEOUT and end a session left idle in
        # a transaction after DB_IDLE_IN_TRANSACTION_TIMEOUT (0 switches one off, e.g. for a long migration).
        _options = DATABASES["default"].setdefault("OPTIONS", {})
        _options["connect_timeout"] = DB_CONNECT_TIMEOUT
        _options["options"] = " ".join(filter(None, [
            _options.get("options", ""),
            f"-c statement_timeout={int(DB_STATEMENT_TIMEOUT * 1000)}",
            f"-c idle_in_transaction_session_timeout={int(DB_IDLE_IN_TRANSACTION_TIMEOUT * 1000)}",
        ]))
    if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
        # sqlite:///path (e.g. a test worker pointed at the test DB file): same concurrency settings.
        DATABASES["default"]["CONN_MAX_AGE"] = 0
        DATABASES["default"]["OPTIONS"] = {
            "timeout": 30, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"
        }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "db.sqlite3",
            # The worker is a separate process; a file test DB lets it see what the test wrote.
            # Per-process name: parallel test runs on one machine never clobber each other.
            "TEST": {"NAME": str(VAR_DIR / f"test_db_{os.getpid()}.sqlite3")},
            "OPTIONS": {"timeout": 30, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL", "")
# Every Redis client (cache, broker, coordination) gives up on a Redis that accepts but does not answer
# (hung, half-open): without these a request waits forever. A healthy Redis answers in milliseconds; the
# read timeout stays above kombu's 1 s BRPOP poll, which a synchronous drain reads with the same socket.
REDIS_SOCKET_CONNECT_TIMEOUT = float(env_str("REDIS_SOCKET_CONNECT_TIMEOUT", "1"))
REDIS_SOCKET_TIMEOUT = float(env_str("REDIS_SOCKET_TIMEOUT", "2"))
REDIS_CLIENT_OPTIONS = {"socket_connect_timeout": REDIS_SOCKET_CONNECT_TIMEOUT, "socket_timeout": REDIS_SOCKET_TIMEOUT}
# The cache only saves work, so it waits less (no blocking reads on it) and, once Redis failed to answer,
# each process leaves it alone for a few seconds (telephony_app/cache.py): /route stays within its 1 s.
REDIS_CACHE_SOCKET_TIMEOUT = float(env_str("REDIS_CACHE_SOCKET_TIMEOUT", "0.3"))
REDIS_CACHE_SKIP_SECONDS = float(env_str("REDIS_CACHE_SKIP_SECONDS", "5"))

def _next_redis_db(url: str) -> str:
    """The same server, the next logical database (redis://h:6379/0 -> redis://h:6379/1)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    db = int(parts.path.strip("/") or 0)
    return urlunsplit(parts._replace(path=f"/{db + 1}"))


if REDIS_URL:
    # The cache gets its own Redis database: Django's cache.clear() is FLUSHDB, which must never
    # wipe broker queues, rate-limit buckets or refresh locks.
    REDIS_CACHE_URL = env_str("REDIS_CACHE_URL", "") or _next_redis_db(REDIS_URL)
    CACHES = {"default": {"BACKEND": "telephony_app.cache.RedisCache", "LOCATION": REDIS_CACHE_URL,
                          "OPTIONS": {"socket_connect_timeout": min(REDIS_SOCKET_CONNECT_TIMEOUT, REDIS_CACHE_SOCKET_TIMEOUT),
                                      "socket_timeout": REDIS_CACHE_SOCKET_TIMEOUT,
                                      "skip_seconds": REDIS_CACHE_SKIP_SECONDS}}}
else:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": str(VAR_DIR / "cache")}
    }
# Cross-process coordination (distributed locks, per-portal rate limiter): Redis when
# configured, otherwise file locks under var/ (one machine, many processes).
COORDINATION_URL = REDIS_URL or f"file://{VAR_DIR / 'coord'}"

LANGUAGE_CODE = "ru"
LANGUAGES = [("ru", "Русский"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
TIME_ZONE = "UTC"
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# Outside production the admin's assets come from the app directories (no collectstatic needed);
# the empty root keeps WhiteNoise from warning on every request of a fresh checkout.
WHITENOISE_USE_FINDERS = not IS_PRODUCTION
if not IS_PRODUCTION:
    STATIC_ROOT.mkdir(exist_ok=True)

# Bitrix24 frames a few of our pages (frame-ancestors per view, portals.iframe); nothing else may be framed.
X_FRAME_OPTIONS = "DENY"
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
if IS_PRODUCTION:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)

# PBX recordings may be uploaded raw; the view streams them, Django must not buffer 2.5 MB caps.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 5 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
RECORDINGS_DIR = Path(env_str("RECORDINGS_DIR", str(VAR_DIR / "recordings")))
RECORDING_MAX_BYTES = env_int("RECORDING_MAX_BYTES", 500 * 1024 * 1024)
# Recording URLs on private/loopback addresses are refused unless this is on (sandbox, tests).
RECORDINGS_ALLOW_PRIVATE_HOSTS = env_bool("RECORDINGS_ALLOW_PRIVATE_HOSTS", False)
# Private ranges allowed even with the flag off (an on-premise PBX on a known subnet), CIDRs.
RECORDINGS_ALLOWED_PRIVATE_NETWORKS = env_list("RECORDINGS_ALLOWED_PRIVATE_NETWORKS", "")
# Plain-http recording URLs would expose the PBX credentials; allowed with private hosts (sandbox).
RECORDINGS_ALLOW_HTTP = env_bool("RECORDINGS_ALLOW_HTTP", RECORDINGS_ALLOW_PRIVATE_HOSTS)
if IS_PRODUCTION and (RECORDINGS_ALLOW_PRIVATE_HOSTS or RECORDINGS_ALLOW_HTTP):
    # Both open the SSRF guard to every internal address or to credentials in clear text; an on-premise
    # PBX gets its subnet in RECORDINGS_ALLOWED_PRIVATE_NETWORKS instead.
    raise ImproperlyConfigured(
        "Refusing to start in production: RECORDINGS_ALLOW_PRIVATE_HOSTS and RECORDINGS_ALLOW_HTTP must be off"
    )
# ffmpeg converts non-wav/mp3 recordings; a command name or path, "" switches conversion off.
RECORDINGS_FFMPEG = env_str("RECORDINGS_FFMPEG", "ffmpeg")
RECORDING_CONNECT_TIMEOUT = float(env_str("RECORDING_CONNECT_TIMEOUT", "10"))
RECORDING_READ_TIMEOUT = float(env_str("RECORDING_READ_TIMEOUT", "60"))
RECORDING_DOWNLOAD_DEADLINE = float(env_str("RECORDING_DOWNLOAD_DEADLINE", "900"))
RECORDING_UPLOAD_TIMEOUT = float(env_str("RECORDING_UPLOAD_TIMEOUT", "600"))
RECORDING_MAX_REDIRECTS = env_int("RECORDING_MAX_REDIRECTS", 3)
RECORDING_CONVERT_TIMEOUT = float(env_str("RECORDING_CONVERT_TIMEOUT", "900"))

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "PBX API",
    "DESCRIPTION": "How a PBX or contact centre talks to the Bitrix24 connector (version 1).",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
}
# The docs pages load Redoc / Swagger UI from our own static files, never from a CDN.
SPECTACULAR_SETTINGS.update({"REDOC_DIST": "SIDECAR", "SWAGGER_UI_DIST": "SIDECAR", "SWAGGER_UI_FAVICON_HREF": "SIDECAR"})

# --- Celery ------------------------------------------------------------------------------------
# A namespace keeps concurrent test runs (and a demo running beside them) from consuming each
# other's tasks; the test worker subprocess is handed its parent's namespace explicitly.
CELERY_BROKER_NAMESPACE = env_str("CELERY_BROKER_NAMESPACE", "") or (
    f"test-{os.getpid()}" if os.environ.get("PYTEST_VERSION") else ""
)
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "") or REDIS_URL or "filesystem://"
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CELERY_BROKER_TRANSPORT = "telephony_app.broker:Transport"  # kombu's, one Redis client per channel
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600, **REDIS_CLIENT_OPTIONS}
    if CELERY_BROKER_NAMESPACE:
        CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"] = f"{CELERY_BROKER_NAMESPACE}:"
elif CELERY_BROKER_URL == "filesystem://":
    _broker_dir = VAR_DIR / "broker" / (CELERY_BROKER_NAMESPACE or "main")
    _broker_dir.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
    # With acks_late and prefetch 1 a worker takes one message per poll of the folder: poll often.
    CELERY_BROKER_TRANSPORT_OPTIONS["polling_interval"] = 0.1
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {}
# A broker restart must not end the worker (celery/kombu/redis are pinned in requirements.txt for this):
# it reconnects by itself, however long Redis is away (Celery's default gives up after 100 attempts,
# some 45 minutes, and the worker exits), and also when Redis is not up yet as the worker starts.
CELERY_BROKER_CONNECTION_RETRY = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
# Tasks running while the broker is away finish their work (Bitrix24 calls, database writes) instead of
# being killed: their unacknowledged messages come back after the visibility timeout and find the work
# done (every task is idempotent). Set explicitly: Celery 6 turns this on by default.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery's Django fix-up closes the database connection around every task unless this is set; worker
# connections are recycled like request connections instead (CONN_MAX_AGE, health checks: telephony_app.celery).
CELERY_DB_REUSE_MAX = 1000
# The worker lowers its own CPU priority by this much at start (telephony_app.celery): the PBX API first.
CELERY_WORKER_NICE = env_int("CELERY_WORKER_NICE", 10)
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BEAT_SCHEDULE: dict = {}
# REST request/response log: kept BITRIX24_REST_LOG_DAYS (>= 3, Marketplace rule), then pruned.
CELERY_BEAT_SCHEDULE["portals-prune-rest-call-log"] = {
    "task": "portals.tasks.prune_rest_call_log_task",
    "schedule": 3600.0,
}
# Bitrix24 events whose task was lost (broker message gone, worker killed) are re-dispatched.
CELERY_BEAT_SCHEDULE["portals-sweep-bitrix24-events"] = {
    "task": "portals.tasks.sweep_bitrix24_events",
    "schedule": 60.0,
}

# --- Call state machine (calls.sync) ----------------------------------------------------------------
# Retries of Bitrix24 steps: exponential backoff with full jitter from BASE, capped at MAX (keep it far
# below the Redis visibility timeout), dead letter after GIVE_UP of continuous failure (outlives a
# Bitrix24 outage of an hour). Rate-limit waits are re-scheduled and never count as failures.
CALLS_RETRY_BASE_SECONDS = float(env_str("CALLS_RETRY_BASE_SECONDS", "2"))
CALLS_RETRY_MAX_SECONDS = float(env_str("CALLS_RETRY_MAX_SECONDS", "300"))
CALLS_RETRY_MIN_SECONDS = float(env_str("CALLS_RETRY_MIN_SECONDS", "0.5"))
CALLS_GIVE_UP_AFTER_SECONDS = float(env_str("CALLS_GIVE_UP_AFTER_SECONDS", str(6 * 3600)))
# How long events of a call wait for its call.started before they become a dead letter.
CALLS_START_WAIT_SECONDS = float(env_str("CALLS_START_WAIT_SECONDS", "600"))
# One worker syncs a call at a time; a worker that dies leaves its lease to expire after this long
# (longer than one Bitrix24 request with its token refresh; the recording step holds it longer).
CALLS_SYNC_LEASE_SECONDS = float(env_str("CALLS_SYNC_LEASE_SECONDS", "60"))
CALLS_RECORDING_LEASE_SECONDS = float(env_str("CALLS_RECORDING_LEASE_SECONDS", "1900"))
# Finish (final in Bitrix24) waits this long after call.ended for events the PBX sent before it but
# that arrive after it; up to ANSWER_WAIT when the call was answered but we do not know by whom yet.
CALLS_FINISH_SETTLE_SECONDS = float(env_str("CALLS_FINISH_SETTLE_SECONDS", "3"))
CALLS_ANSWER_WAIT_SECONDS = float(env_str("CALLS_ANSWER_WAIT_SECONDS", "30"))
# The sweeper re-dispatches inbox events and calls left untouched for longer than this.
CALLS_SWEEP_GRACE_SECONDS = float(env_str("CALLS_SWEEP_GRACE_SECONDS", "60"))
CALLS_SWEEP_INTERVAL_SECONDS = float(env_str("CALLS_SWEEP_INTERVAL_SECONDS", "30"))
# A call still live this long after call.started is finished as OTHER (its call.ended never came).
CALLS_MAX_CALL_SECONDS = float(env_str("CALLS_MAX_CALL_SECONDS", str(4 * 3600)))
CALLS_EXTENSIONS_TTL = env_int("CALLS_EXTENSIONS_TTL", 600)
CALLS_EXTENSIONS_MISS_INTERVAL = env_int("CALLS_EXTENSIONS_MISS_INTERVAL", 60)
CALLS_EXTENSION_MAX_DIGITS = env_int("CALLS_EXTENSION_MAX_DIGITS", 5)
CALLS_LINE_CACHE_SECONDS = env_int("CALLS_LINE_CACHE_SECONDS", 3600)
# What a portal's call syncs read about it (settings, extension map, lines, token pair) is kept in process
# memory (calls.sync.portal_state) until a change moves the portal's epoch, and this long at most.
CALLS_POLICY_MEMORY_SECONDS = float(env_str("CALLS_POLICY_MEMORY_SECONDS", "30"))
# The outbox (calls.outbox): one sender per portal at a time holds a lease of SENDER_LEASE (longer than one
# Bitrix24 request with its token refresh; a dead sender's commands are re-sent after it); a call's
# reconciler sends up to INLINE_REQUESTS itself (a quiet portal's card with no task hop) and leaves the
# rest to the drain task; the beat kicks portals whose commands are REKICK_GRACE past due; commands of
# calls finished RETENTION ago are deleted.
CALLS_OUTBOX_SENDER_LEASE_SECONDS = float(env_str("CALLS_OUTBOX_SENDER_LEASE_SECONDS", "30"))
CALLS_OUTBOX_INLINE_REQUESTS = env_int("CALLS_OUTBOX_INLINE_REQUESTS", 3)
CALLS_OUTBOX_BUCKET_WAIT_SECONDS = float(env_str("CALLS_OUTBOX_BUCKET_WAIT_SECONDS", "2"))
CALLS_OUTBOX_CLAIM_WINDOW = env_int("CALLS_OUTBOX_CLAIM_WINDOW", 500)
CALLS_OUTBOX_REKICK_GRACE_SECONDS = float(env_str("CALLS_OUTBOX_REKICK_GRACE_SECONDS", "5"))
CALLS_OUTBOX_REKICK_INTERVAL_SECONDS = float(env_str("CALLS_OUTBOX_REKICK_INTERVAL_SECONDS", "10"))
CALLS_OUTBOX_RETENTION_SECONDS = float(env_str("CALLS_OUTBOX_RETENTION_SECONDS", str(3 * 24 * 3600)))
# The portal's pump (calls.sync.pump): one runner per portal holds a lease of PUMP_LEASE (renewed each round;
# a dead runner's portal is taken over after it); a run applies up to ROUND_EVENTS pending PBX events a round
# and sends the round's commands in at most DRAIN_REQUESTS requests, then goes to the back of the queue after
# SLICE_SECONDS or SLICE_EVENTS, so other portals' pumps go in between; a kick leaves a mark for KICK_TTL
# so that one pump message at most waits per portal. A round's cards pop once its calls are written: small rounds
# keep a burst's first cards from waiting for its last calls (100-call burst: card pop p50 4.6 s at 100, 3.4 s at 20).
CALLS_PUMP_LEASE_SECONDS = float(env_str("CALLS_PUMP_LEASE_SECONDS", "30"))
CALLS_PUMP_SLICE_SECONDS = float(env_str("CALLS_PUMP_SLICE_SECONDS", "0.4"))
CALLS_PUMP_SLICE_EVENTS = env_int("CALLS_PUMP_SLICE_EVENTS", 400)
CALLS_PUMP_ROUND_EVENTS = env_int("CALLS_PUMP_ROUND_EVENTS", 20)
CALLS_PUMP_DRAIN_REQUESTS = env_int("CALLS_PUMP_DRAIN_REQUESTS", 5)
CALLS_PUMP_KICK_TTL_SECONDS = float(env_str("CALLS_PUMP_KICK_TTL_SECONDS", "30"))
# A portal's pump runs as PUMP_SHARDS runners side by side, each over its share of the portal's calls (a lease
# and a kick mark each, calls.sync.shards), so one portal's burst spreads over that many worker processes; with
# the shipped 2 workers x 4 processes, 2 leaves 6 to other portals. Measured, single runs on 2 shared CPUs at
# load ~4 (standard 100-call burst): card pop p50/p99 11.1/14.6 s with 1 and 4.8/7.9 s with 2 back to back,
# 5.8/9.9 s with 4; each runner drains the portal's outbox on its own, so more shards send smaller batches
# (57 requests for the burst with 2 against 26 with 1), spending a standard portal's request bucket sooner.
CALLS_PUMP_SHARDS = env_int("CALLS_PUMP_SHARDS", 2)
# Celery's autodiscovery looks only at ``<app>.tasks``; calls keeps its tasks next to their scenario.
CELERY_IMPORTS = ("calls.sync.tasks", "calls.lines.tasks", "calls.outbox.tasks")
CELERY_BEAT_SCHEDULE["calls-sweep-overdue"] = {
    "task": "calls.tasks.sweep_overdue",
    "schedule": CALLS_SWEEP_INTERVAL_SECONDS,
}
CELERY_BEAT_SCHEDULE["calls-outbox-rekick"] = {
    "task": "calls.outbox_tasks.rekick_outboxes",
    "schedule": CALLS_OUTBOX_REKICK_INTERVAL_SECONDS,
}
CELERY_BEAT_SCHEDULE["calls-outbox-prune"] = {
    "task": "calls.outbox_tasks.prune_outbox",
    "schedule": 3600.0,
}

# json (default in production) or plain.
LOG_FORMAT = env_str("LOG_FORMAT", "json" if IS_PRODUCTION else "plain")
if LOG_FORMAT not in {"json", "plain"}:
    raise ImproperlyConfigured(f"LOG_FORMAT must be json or plain, got {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "b24client.redact.RedactingFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        # One JSON object per line with portal_id / call_id / pbx_call_id of the work in hand (ops.logs).
        "json": {"()": "ops.logs.formatting.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["redact"]}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # urllib3 logs full URLs, and Bitrix24's OAuth GET carries secrets in the query string.
    "loggers": {"urllib3": {"level": "WARNING"}, "requests_oauthlib": {"level": "WARNING"}},
}

# --- Click-to-call, callbacks, routing (calls.originate, calls.routing) ------------------------------
# Originate: each attempt waits at most ATTEMPT_TIMEOUT; timeouts and 5xx are retried until BUDGET is
# spent (pbx-api.md: within 15 s). An accepted command whose call.started has not arrived after
# START_TIMEOUT fails its Bitrix24 call.
ORIGINATE_BUDGET_SECONDS = float(env_str("ORIGINATE_BUDGET_SECONDS", "15"))
ORIGINATE_ATTEMPT_TIMEOUT = float(env_str("ORIGINATE_ATTEMPT_TIMEOUT", "5"))
ORIGINATE_START_TIMEOUT = env_int("ORIGINATE_START_TIMEOUT", 120)
# Originate URLs (set by portal admins) get the recordings' SSRF guard (calls.connections.targets): public
# addresses only, https only; an on-premise PBX gets its subnet in ORIGINATE_ALLOWED_PRIVATE_NETWORKS. The two
# flags are for the sandbox and tests and are refused in production.
ORIGINATE_ALLOW_PRIVATE_HOSTS = env_bool("ORIGINATE_ALLOW_PRIVATE_HOSTS", False)
ORIGINATE_ALLOW_HTTP = env_bool("ORIGINATE_ALLOW_HTTP", ORIGINATE_ALLOW_PRIVATE_HOSTS)
ORIGINATE_ALLOWED_PRIVATE_NETWORKS = env_list("ORIGINATE_ALLOWED_PRIVATE_NETWORKS", "")
if IS_PRODUCTION and (ORIGINATE_ALLOW_PRIVATE_HOSTS or ORIGINATE_ALLOW_HTTP):
    raise ImproperlyConfigured(
        "Refusing to start in production: ORIGINATE_ALLOW_PRIVATE_HOSTS and ORIGINATE_ALLOW_HTTP must be off"
    )
# A click-to-call or callback request older than this (its event's ts) is not dialled: the person who asked
# has given up (e.g. an event stored during an outage and processed late); the call is finished as failed.
ORIGINATE_CLICK_MAX_AGE = float(env_str("ORIGINATE_CLICK_MAX_AGE", "60"))
ORIGINATE_CALLBACK_MAX_AGE = float(env_str("ORIGINATE_CALLBACK_MAX_AGE", "300"))
# /route: wait at most LOOKUP_DEADLINE for Bitrix24, then answer the line's fallback and mark the
# portal slow for SLOW_SECONDS; CRM lookups stay cached CACHE_SECONDS.
ROUTE_LOOKUP_DEADLINE = float(env_str("ROUTE_LOOKUP_DEADLINE", "0.5"))
ROUTE_SLOW_SECONDS = env_int("ROUTE_SLOW_SECONDS", 15)
ROUTE_CACHE_SECONDS = env_int("ROUTE_CACHE_SECONDS", 120)
ROUTE_LOOKUP_THREADS = env_int("ROUTE_LOOKUP_THREADS", 8)
# /route's own statement timeout (PostgreSQL): a hung database answers the PBX's own plan (extension null)
# within the 1 s promise instead of after DB_STATEMENT_TIMEOUT.
ROUTE_DB_TIMEOUT = float(env_str("ROUTE_DB_TIMEOUT", "0.7"))
# Where /route keeps its webhook-id receipts: "cache" (Redis, SET NX with a 24 h expiry) or "database"
# (PbxWebhookReceipt, like the other endpoints). The file cache used without Redis culls entries.
PBX_ROUTE_RECEIPTS = env_str("PBX_ROUTE_RECEIPTS", "cache" if REDIS_URL else "database")
# PBX API authentication keeps each connection's row, portal and keys in process memory this long at
# most; changes of a connection or its portal (saves and bulk updates) apply at once (shared epoch).
PBX_AUTH_CACHE_SECONDS = float(env_str("PBX_AUTH_CACHE_SECONDS", "5"))
CELERY_IMPORTS = (*CELERY_IMPORTS, "calls.originate.tasks", "calls.routing.tasks")
CELERY_BEAT_SCHEDULE["calls-sweep-originate-commands"] = {
    "task": "calls.originate_tasks.sweep_originate_commands",
    "schedule": 30.0,
}
CELERY_BEAT_SCHEDULE["calls-prune-route-decisions"] = {
    "task": "calls.routing_tasks.prune_route_decisions_task",
    "schedule": 3600.0,
}
# Webhook-id receipts past their 24 h replay window, and signing secrets expired over a week ago (kept
# that long for the audit trail).
CELERY_IMPORTS = (*CELERY_IMPORTS, "calls.pbx_api.tasks", "calls.connections.tasks")
CELERY_BEAT_SCHEDULE["calls-purge-expired-receipts"] = {
    "task": "calls.pbx_api.tasks.purge_expired_receipts",
    "schedule": 3600.0,
}
CELERY_BEAT_SCHEDULE["calls-purge-expired-secrets"] = {
    "task": "calls.connections.tasks.purge_expired_secrets",
    "schedule": 24 * 3600.0,
}

# --- Recordings housekeeping (calls.recordings.tasks) ---------------------------------------------------
# Download/conversion temp files a killed worker left in RECORDINGS_DIR/tmp (older than 6 h) are removed.
CELERY_IMPORTS = (*CELERY_IMPORTS, "calls.recordings.tasks")
CELERY_BEAT_SCHEDULE["calls-recordings-remove-stale-temp-files"] = {
    "task": "calls.recordings.tasks.remove_stale_temp_files",
    "schedule": 3600.0,
}

# --- Extension directory (calls.extensions.tasks): "sync now" from the app's employee page -------------
CELERY_IMPORTS = (*CELERY_IMPORTS, "calls.extensions.tasks")

# --- Health (ops.health): /healthz, /readyz, `manage.py healthcheck web|worker|beat` --------------------
# Workers touch HEALTH_HEARTBEAT_DIR/worker-<node>.heartbeat every WORKER_HEARTBEAT seconds; beat writes
# its heartbeat to the cache; older than the STALE limits = not ready / reported stale.
HEALTH_HEARTBEAT_DIR = env_str("HEALTH_HEARTBEAT_DIR", str(VAR_DIR / "health"))
HEALTH_WORKER_HEARTBEAT_SECONDS = float(env_str("HEALTH_WORKER_HEARTBEAT_SECONDS", "10"))
HEALTH_WORKER_STALE_SECONDS = float(env_str("HEALTH_WORKER_STALE_SECONDS", "60"))
HEALTH_BEAT_HEARTBEAT_SECONDS = float(env_str("HEALTH_BEAT_HEARTBEAT_SECONDS", "10"))
HEALTH_BEAT_STALE_SECONDS = float(env_str("HEALTH_BEAT_STALE_SECONDS", "120"))
CELERY_BEAT_SCHEDULER = "ops.beat:HeartbeatScheduler"

# --- Metrics (ops.metrics): /metrics on the web, METRICS_WORKER_PORT on each worker -------------------
# Readable with "Authorization: Bearer METRICS_TOKEN", or without it straight from METRICS_ALLOWED_NETWORKS
# (never through a proxy). PROMETHEUS_MULTIPROC_DIR (environment only) adds up gunicorn/pool processes.
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
METRICS_ALLOWED_NETWORKS = env_list("METRICS_ALLOWED_NETWORKS", "" if IS_PRODUCTION else "127.0.0.0/8,::1/128")

# --- Operator console (console/, /console/, staff only) -------------------------------------------------
CONSOLE_PBX_SILENT_HOURS = float(env_str("CONSOLE_PBX_SILENT_HOURS", "24"))
CONSOLE_WINDOW_HOURS = float(env_str("CONSOLE_WINDOW_HOURS", "24"))
