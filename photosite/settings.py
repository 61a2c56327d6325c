"""Settings for photosite, every one from the environment with a safe default.

One machine by default: SQLite (WAL) under var/, an embedded Redis on EMBEDDED_REDIS_PORT, media on disk.
More machines: DATABASE_URL (PostgreSQL), REDIS_URL, and workers on any host that reaches them.
"""

from __future__ import annotations

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from photosite import logs

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool = False) -> bool:
    """Unset or empty (`SECURE_COOKIES=` in an env file) is the default, never a quiet "off"."""
    value = (os.environ.get(name) or "").strip().lower()
    return default if not value else value in ("1", "true", "yes", "on")


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def env_seconds(name: str, default: str) -> int:
    """A duration: seconds, or a number with s, m or h ("30s", "10m")."""
    value = os.environ.get(name, default).strip().lower()
    unit = {"s": 1, "m": 60, "h": 3600}.get(value[-1:])
    return int(float(value[:-1]) * unit) if unit else int(value)


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("Set SECRET_KEY in the environment (or DJANGO_DEBUG=1 for development).")
    SECRET_KEY = "insecure-development-key-only-for-debug"
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_rq",
    "recognition",
    "alerts",
    "jobs",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "recognition.signin.SignInLimitMiddleware",
    "recognition.uploads.RefuseLargeBodiesMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "photosite.urls"
WSGI_APPLICATION = "photosite.wsgi.application"

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
                "alerts.context_processors.unread_alerts",
            ],
        },
    },
]

# Database: SQLite in WAL mode with a busy timeout, or whatever DATABASE_URL names.
# Each web thread keeps its connection this many seconds (0: one per request). Opening one costs SQLite a
# file open, its PRAGMAs and Django's functions registered again: about 1 ms of CPU on every request.
DB_CONN_MAX_AGE = env_int("DB_CONN_MAX_AGE", 60)
if os.environ.get("DATABASE_URL"):
    import dj_database_url

    DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"], conn_max_age=DB_CONN_MAX_AGE)}
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)  # SQLite makes the file, not its folder (a fresh clone has none)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("SQLITE_PATH", str(VAR_DIR / "db.sqlite3")),
            "OPTIONS": {
                "timeout": env_int("SQLITE_BUSY_TIMEOUT", 30),
                # IMMEDIATE takes the write lock when a transaction starts, so two writers queue on the
                # busy timeout instead of failing with "database is locked" when a read turns into a write.
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
            # A file, not memory, so that worker processes started by tests see the test database.
            "TEST": {"NAME": os.environ.get("SQLITE_TEST_PATH", str(VAR_DIR / "test.sqlite3"))},
            "CONN_MAX_AGE": DB_CONN_MAX_AGE,
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# Django's ModelBackend behind brute-force limits: failed sign-ins per account and address (this rate),
# per address and per account (10 times it each; README, recognition/signin.py).
AUTHENTICATION_BACKENDS = ["recognition.signin.RateLimitedBackend"]
SIGN_IN_RATE_LIMIT = os.environ.get("SIGN_IN_RATE_LIMIT", "5/15m")
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "gallery"
LOGOUT_REDIRECT_URL = "login"
ALLOW_SIGNUP = env_bool("ALLOW_SIGNUP", False)

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))
# No MEDIA_URL on purpose: media is served only through views that check the owner.


def s3_options(env: dict[str, str]) -> dict:
    """django-storages' S3 backend options from S3_* variables; any S3-compatible service (MinIO, Ceph,
    R2, B2, Wasabi, Garage) needs only a different S3_ENDPOINT_URL."""
    from botocore.config import Config

    endpoint = env.get("S3_ENDPOINT_URL") or None
    if not env.get("S3_BUCKET"):
        raise ImproperlyConfigured("MEDIA_STORAGE=s3 needs S3_BUCKET (and S3_ENDPOINT_URL unless on AWS).")
    return {
        "bucket_name": env["S3_BUCKET"],
        "endpoint_url": endpoint,
        "access_key": env.get("S3_ACCESS_KEY_ID") or None,
        "secret_key": env.get("S3_SECRET_ACCESS_KEY") or None,
        "region_name": env.get("S3_REGION") or None,
        "location": env.get("S3_PREFIX", "").strip("/"),
        "default_acl": None,  # objects stay private: the bucket's own policy, never public-read
        "querystring_auth": True,
        "querystring_expire": int(env.get("MEDIA_REDIRECT_SECONDS", 300)),
        # Names are random (recognition.models), so no HEAD request per save to find a free one.
        "file_overwrite": True,
        "client_config": Config(
            # Path-style works with every S3-compatible server; AWS itself prefers virtual hosts.
            s3={"addressing_style": env.get("S3_ADDRESSING_STYLE") or ("path" if endpoint else "auto")},
            signature_version="s3v4",
            connect_timeout=float(env.get("S3_CONNECT_TIMEOUT", 5)),
            read_timeout=float(env.get("S3_READ_TIMEOUT", 30)),
            retries={"max_attempts": int(env.get("S3_MAX_ATTEMPTS", 3)), "mode": "standard"},
        ),
    }


MEDIA_STORAGE = os.environ.get("MEDIA_STORAGE", "file")
if MEDIA_STORAGE == "s3":
    MEDIA_BACKEND = {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": s3_options(dict(os.environ))}
elif MEDIA_STORAGE in ("file", ""):
    MEDIA_BACKEND = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
else:  # any Django storage class, by its dotted path
    MEDIA_BACKEND = {"BACKEND": MEDIA_STORAGE}
STORAGES = {
    "default": MEDIA_BACKEND,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Media views answer with a short-lived presigned URL of the object (S3 only) instead of streaming it.
MEDIA_REDIRECT = env_bool("MEDIA_REDIRECT", False)
MEDIA_REDIRECT_SECONDS = env_int("MEDIA_REDIRECT_SECONDS", 300)
# An upload or a media request while storage is down answers 503 with this Retry-After (seconds).
STORAGE_RETRY_AFTER = env_int("STORAGE_RETRY_AFTER", 30)
WHITENOISE_USE_FINDERS = True

# Uploads
PHOTO_MAX_BYTES = env_int("PHOTO_MAX_BYTES", 30 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
# Uploads (photos and references, every way in) per user, counted in Redis for all web processes.
UPLOAD_RATE_LIMIT = os.environ.get("UPLOAD_RATE_LIMIT", "600/hour")
# Redis unreachable: rate limits let everything through for this many seconds, then count per process.
RATE_LIMIT_FAIL_OPEN = env_int("RATE_LIMIT_FAIL_OPEN", 60)
# Bytes of originals (photos and references) a user may store; 0 is no quota.
USER_QUOTA_BYTES = env_int("USER_QUOTA_BYTES", 0)
# Past this many jobs waiting on the uploads queue, new photos wait in the database instead.
QUEUE_MAX_DEPTH = env_int("QUEUE_MAX_DEPTH", 10_000)
# Fair share: photos one user may have queued or processing at once (at least one per running worker);
# their next ones wait their turn in the database, so one user's backlog costs the others little. At least 1.
FAIR_SHARE_JOBS = max(1, env_int("FAIR_SHARE_JOBS", 4))

# Face engine, chosen by measurement (README): 1200 px with upsampling 1 keeps every face of
# 150-900 px in a 4032x3024 photo at 2.2 photos/s; 1024 px lost one.
FACES_DETECT_MAX_SIDE = env_int("FACES_DETECT_MAX_SIDE", 1200)
FACES_UPSAMPLE = env_int("FACES_UPSAMPLE", 1)
# Each face is encoded from pixels where its box is at least this wide (the original's when it is smaller):
# the detection copy, the draft it came from, or a second, larger decode (README "How it works").
FACES_ENCODE_MIN_SIDE = env_int("FACES_ENCODE_MIN_SIDE", 100)
FACES_MAX_PIXELS = env_int("FACES_MAX_PIXELS", 80_000_000)
# Faces encoded per photo or reference: past it, the largest ones (encoding costs ~60 ms a face).
FACES_MAX_PER_PHOTO = env_int("FACES_MAX_PER_PHOTO", 100)
# The match rule (README, benchmarks/accuracy.py): nearest reference within FACES_MATCH_DISTANCE and
# every other person at least FACES_MATCH_MARGIN farther away.
FACES_MATCH_DISTANCE = env_float("FACES_MATCH_DISTANCE", 0.55)
FACES_MATCH_MARGIN = env_float("FACES_MATCH_MARGIN", 0.1)
# Each process keeps the galleries it matched against lately (recognition.matching.GalleryCache), up to this
# many MB: 100,000 references take 51 MB, a typical gallery of 1,000 half a MB. 0: load them every time.
GALLERY_CACHE_MB = env_int("GALLERY_CACHE_MB", 128)
THUMBNAIL_SIZE = env_int("THUMBNAIL_SIZE", 400)
# Grouping unknown faces into people to name (recognition.grouping, README "Who is this?"): faces within
# FACES_GROUP_DISTANCE link into one group; a face joins a group when its
# FACES_GROUP_JOIN_VOTES nearest faces within FACES_GROUP_JOIN_DISTANCE are all of it (all of a smaller group).
# Groups under FACES_GROUP_MIN_FACES are not shown; a group within FACES_GROUP_SUGGEST_DISTANCE of a known
# person (on average over its faces) is shown with "Looks like <person>?".
FACES_GROUP_MIN_FACES = env_int("FACES_GROUP_MIN_FACES", 3)
FACES_GROUP_DISTANCE = env_float("FACES_GROUP_DISTANCE", 0.45)
FACES_GROUP_JOIN_DISTANCE = env_float("FACES_GROUP_JOIN_DISTANCE", 0.53)
FACES_GROUP_JOIN_VOTES = env_int("FACES_GROUP_JOIN_VOTES", 3)
FACES_GROUP_SUGGEST_DISTANCE = env_float("FACES_GROUP_SUGGEST_DISTANCE", 0.6)

# Redis and RQ: Redis is only transport; the database is the source of truth.
EMBEDDED_REDIS_PORT = env_int("EMBEDDED_REDIS_PORT", 6380)
REDIS_URL = os.environ.get("REDIS_URL", "")
RQ_REDIS_URL = REDIS_URL or f"redis://127.0.0.1:{EMBEDDED_REDIS_PORT}/0"
# A Redis that does not answer costs an upload this long (seconds) to connect, or per command, before the
# photo waits in the database instead, as in an outage.
REDIS_CONNECT_TIMEOUT = env_float("REDIS_CONNECT_TIMEOUT", 5)
REDIS_SOCKET_TIMEOUT = env_float("REDIS_SOCKET_TIMEOUT", 30)
JOB_TIMEOUT = env_int("JOB_TIMEOUT", 300)
# Workers run at this niceness, so that the web server keeps answering while they are saturated.
WORKER_NICENESS = env_int("WORKER_NICENESS", 10)
# A work horse runs this many jobs before a fresh one is forked (1: a horse per job, as RQ does), and is
# replaced sooner once its resident memory passes WORKER_HORSE_MAX_MB, or after a job that failed or left a
# database transaction open (jobs/horse.py).
WORKER_HORSE_JOBS = max(1, env_int("WORKER_HORSE_JOBS", 100))
WORKER_HORSE_MAX_MB = env_int("WORKER_HORSE_MAX_MB", 1024)
# Web workers and processes that detect faces keep up to this much freed memory (MB) for the next photo
# instead of handing it back to the kernel and faulting it in again (photosite/memory.py); 0: glibc's default.
MEMORY_KEEP_FREED_MB = env_int("MEMORY_KEEP_FREED_MB", 64)
JOB_RETRY_INTERVALS = [int(s) for s in env_list("JOB_RETRY_INTERVALS", "10,60,300")]
RQ_QUEUES = {
    name: {"URL": RQ_REDIS_URL, "DEFAULT_TIMEOUT": JOB_TIMEOUT} for name in ("high", "default", "alerts", "low")
}
RQ = {"COMMIT_MODE": "on_db_commit", "WORKER_CLASS": "jobs.worker.FaceWorker"}
RQ_SHOW_ADMIN_LINK = True
# GET /metrics/ answers staff sessions, and requests with `Authorization: Bearer <METRICS_TOKEN>` when set.
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
# How often the worker's scheduler runs `reconcile` (seconds).
RECONCILE_INTERVAL = env_int("RECONCILE_INTERVAL", 300)

# Alerts (the alerts app). Email: console by default.
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_FILE_PATH = os.environ.get("EMAIL_FILE_PATH", str(VAR_DIR / "mail"))  # for the file-based backend
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "photosite@localhost")
SITE_URL = os.environ.get("SITE_URL", "http://127.0.0.1:8000")
# Per person and channel: after a message, more matches within this window go as one follow-up.
ALERT_COOLDOWN = env_seconds("ALERT_COOLDOWN", "10m")
# After bulk reprocessing, the summary of earlier photos waits until the run has been quiet this long.
ALERT_EARLIER_SETTLE = env_seconds("ALERT_EARLIER_SETTLE", "30s")
# A delivery job never runs longer than this; failures that may mend are retried after these intervals.
ALERT_JOB_TIMEOUT = env_seconds("ALERT_JOB_TIMEOUT", "30s")
ALERT_RETRY_INTERVALS = [int(s) for s in env_list("ALERT_RETRY_INTERVALS", "10,60,300")]
# The link that confirms an alert email address works this long.
ALERT_EMAIL_CONFIRM_MAX_AGE = env_seconds("ALERT_EMAIL_CONFIRM_MAX_AGE", "72h")
WEBHOOK_TIMEOUT = env_float("WEBHOOK_TIMEOUT", 5)
# Webhooks to loopback, link-local (cloud metadata) and unspecified addresses are refused unless this is on.
WEBHOOK_ALLOW_LOCAL = env_bool("WEBHOOK_ALLOW_LOCAL", False)
MQTT_TIMEOUT = env_float("MQTT_TIMEOUT", 5)
# The same for MQTT brokers (a Mosquitto on this machine needs it). The site's own Redis and database are
# refused to both channels whatever these say.
MQTT_ALLOW_LOCAL = env_bool("MQTT_ALLOW_LOCAL", False)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "recognition.api.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "photosite.openapi.AutoSchema",
}
# The OpenAPI schema at /api/schema/ and Swagger UI at /api/docs/, served from the sidecar package (no CDN).
SPECTACULAR_SETTINGS = {
    "TITLE": "photosite API",
    "DESCRIPTION": "Upload photos, manage the people you know, read the alerts. Token or session auth.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],  # like the rest of the API
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "PhotoStatusEnum": "recognition.models.PhotoStatus",
        "ReferenceStatusEnum": "recognition.models.ReferenceStatus",
        "DeliveryStatusEnum": "alerts.models.DeliveryStatus",
    },
}

# Production hardening; `manage.py check --deploy` is clean with DEBUG off.
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 3600)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_REDIRECT_EXEMPT = [r"^health/$"]  # load balancers check over plain HTTP
if env_bool("BEHIND_HTTPS_PROXY", False):
    # Only behind a proxy that sets (and strips from clients) X-Forwarded-Proto; otherwise it is spoofable.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG)
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SILENCED_SYSTEM_CHECKS = env_list("SILENCED_SYSTEM_CHECKS", "")

# LOG_FORMAT=json: one JSON object per line, with photo_id, job_id, queue and duration_ms on job lines.
LOG_FORMAT = os.environ.get("LOG_FORMAT", "plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured("LOG_FORMAT is plain or json")
LOGGING = logs.logging_config(os.environ.get("LOG_LEVEL", "INFO"))
LOGGING_CONFIG = "photosite.logs.configure"
