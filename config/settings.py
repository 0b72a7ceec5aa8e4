"""Pagewise settings: every value comes from the environment, with a safe embedded default.

Embedded mode (no variables set): SQLite under var/, a Celery broker on the local file system,
DEBUG on. Production sets DATABASE_URL, CELERY_BROKER_URL, SECRET_KEY, ALLOWED_HOSTS, DEBUG=0.
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("PAGEWISE_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [part.strip() for part in os.environ.get(name, default).split(",") if part.strip()]


DEBUG = env_bool("DEBUG", True)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = "insecure-embedded-development-key-only-for-debug-mode"  # noqa: S105
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1],testserver")
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
    "labeling",
    "ranking",
    "active_selection",
    "webhooks",
    "data_browser",
    "review",
    "web",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "config.middleware.AdminBadParametersMiddleware",
    "config.middleware.DatabaseBusyMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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

# --- Database -------------------------------------------------------------------------------
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'pagewise.sqlite3'}",
        conn_max_age=int(os.environ.get("DB_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Django's backend with a health check that needs no round trip (config/postgresql/base.py).
    DATABASES["default"]["ENGINE"] = "config.postgresql"
    # Parameters bound by the server, so that psycopg prepares a statement a connection runs
    # often (its fifth time) and PostgreSQL plans it once: the annotator's calls are the same
    # few dozen statements over and over, and planning the claim alone took 1.3 ms.
    server_side = env_bool("PAGEWISE_PG_SERVER_SIDE_BINDING", True)
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        server_side_binding=server_side,
        # Django turns psycopg's prepared statements off unless asked (for poolers such as
        # PgBouncer in transaction mode; set PAGEWISE_PG_PREPARE_THRESHOLD=0 behind one).
        prepare_threshold=(int(os.environ.get("PAGEWISE_PG_PREPARE_THRESHOLD", "5")) or None)
        if server_side
        else None,
    )
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Django's backend whose writers queue for the write lock instead of sleeping in SQLite's busy
    # handler (config/sqlite3).
    DATABASES["default"]["ENGINE"] = "config.sqlite3"
    # The web server and the worker share one file: WAL lets readers go on during a write, and
    # IMMEDIATE transactions take the write lock up front instead of failing half way.
    # Connections are kept like PostgreSQL's (DB_CONN_MAX_AGE): opening one costs ~1.8 ms of CPU
    # (Django registers its SQL functions and runs the pragmas), more than a whole next-task.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        # Seconds a writer waits for the lock before the request is answered 503 + Retry-After.
        "timeout": float(os.environ.get("PAGEWISE_SQLITE_TIMEOUT", "10")),
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # Tests use a file too: an in-memory database shared between threads fails at once with
    # "database table is locked" instead of waiting, unlike the file the server uses.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-pagewise.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
# Failed logins allowed per username and per address within the window, then HTTP 429.
PAGEWISE_LOGIN_FAILURES = int(os.environ.get("PAGEWISE_LOGIN_FAILURES", 5))
PAGEWISE_LOGIN_WINDOW_SECONDS = int(os.environ.get("PAGEWISE_LOGIN_WINDOW_SECONDS", 300))
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Files ----------------------------------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", VAR_DIR / "staticfiles"))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
MEDIA_URL = "media/"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# Upload and import limits (bytes / pixels). An import larger than this is refused whole.
PAGEWISE_MAX_IMPORT_BYTES = int(os.environ.get("PAGEWISE_MAX_IMPORT_BYTES", 512 * 1024 * 1024))
# A training run renews its lease (RerankerVersion.heartbeat_at) every epoch; the sweep takes
# over a version whose heartbeat is older than this.
PAGEWISE_TRAINING_STALL_SECONDS = int(os.environ.get("PAGEWISE_TRAINING_STALL_SECONDS", 300))
# Imports run in a worker: the upload waits in this folder (shared by the web and the workers)
# until its run ends; the worker writes the run's progress every this many lines.
PAGEWISE_IMPORT_DIR = Path(os.environ.get("PAGEWISE_IMPORT_DIR", VAR_DIR / "imports"))
PAGEWISE_IMPORT_PROGRESS_ROWS = int(os.environ.get("PAGEWISE_IMPORT_PROGRESS_ROWS", 5000))
# One line of an import's JSONL (refused with its number beyond this) and the lines of one file
# (blank ones count): what bounds an import's memory and time whatever the file holds.
PAGEWISE_MAX_IMPORT_LINE_BYTES = int(os.environ.get("PAGEWISE_MAX_IMPORT_LINE_BYTES", 1024 * 1024))
PAGEWISE_MAX_IMPORT_LINES = int(os.environ.get("PAGEWISE_MAX_IMPORT_LINES", 5_000_000))
PAGEWISE_MAX_IMAGE_BYTES = int(os.environ.get("PAGEWISE_MAX_IMAGE_BYTES", 10 * 1024 * 1024))
PAGEWISE_MAX_IMAGE_PIXELS = int(os.environ.get("PAGEWISE_MAX_IMAGE_PIXELS", 40_000_000))
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

# --- Cache (login rate limits): Redis when the broker is Redis, so all web processes share it ---
_broker_env = os.environ.get("CELERY_BROKER_URL", "")
# By default the cache lives in the broker's Redis, in database 1, apart from the queues.
_cache_url = os.environ.get("CACHE_URL") or (
    _broker_env.rsplit("/", 1)[0] + "/1"
    if _broker_env.startswith("redis://") and _broker_env.count("/") >= 3
    else ""
)
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": _cache_url,
        "KEY_PREFIX": "pagewise",
    }
    if _cache_url
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
}

# --- Celery ---------------------------------------------------------------------------------
_broker_dir = VAR_DIR / "broker"
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or "filesystem://"
if CELERY_BROKER_URL.startswith("filesystem://"):
    for sub in ("out", "processed", "control"):
        (_broker_dir / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "out"),
        "data_folder_out": str(_broker_dir / "out"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
else:
    # A message a killed worker took but never acknowledged is delivered again after this long.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", 3600))
    }
    # A worker looks for such messages when it starts, then every this many seconds (by default
    # kombu's: a look every 10 s, one in ten of them real, so about every 100 s).
    if os.environ.get("CELERY_UNACKED_RESTORE_SECONDS"):
        CELERY_BROKER_TRANSPORT_OPTIONS |= {
            "unacked_restore_interval": float(os.environ["CELERY_UNACKED_RESTORE_SECONDS"]),
            "unacked_restore_throttle": 1,
        }
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CELERY_TASK_DEFAULT_QUEUE", "celery")
CELERY_RESULT_BACKEND = None
# A killed worker must not lose work: acknowledge after the task ran, and requeue on loss.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Recovery sweep (active_selection/sweep.py): run by `celery beat`, or a worker started with -B.
CELERY_BEAT_SCHEDULE = {
    "sweep-projects": {
        "task": "active_selection.tasks.sweep_projects",
        "schedule": float(os.environ.get("PAGEWISE_SWEEP_SECONDS", 60)),
    }
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# Webhooks: attempts per delivery, the first retry's wait (doubling after each failure, capped at
# an hour) and each request's timeout.
PAGEWISE_WEBHOOK_MAX_ATTEMPTS = int(os.environ.get("PAGEWISE_WEBHOOK_MAX_ATTEMPTS", 6))
PAGEWISE_WEBHOOK_BACKOFF_SECONDS = float(os.environ.get("PAGEWISE_WEBHOOK_BACKOFF_SECONDS", 30))
PAGEWISE_WEBHOOK_TIMEOUT_SECONDS = float(os.environ.get("PAGEWISE_WEBHOOK_TIMEOUT_SECONDS", 10))

# --- REST API -------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "web.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": [
        "labeling.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "web.api_errors.exception_handler",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
}
# The OpenAPI schema (/api/schema/) and its docs page (/api/docs/): signed-in users only unless
# PAGEWISE_PUBLIC_API_SCHEMA=1.
PAGEWISE_PUBLIC_API_SCHEMA = env_bool("PAGEWISE_PUBLIC_API_SCHEMA", False)
SPECTACULAR_SETTINGS = {
    "TITLE": "Pagewise API",
    "DESCRIPTION": "Projects, imports, tasks and judgments for whole-page relevance labeling.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The docs pages load Swagger UI and Redoc from the sidecar's static files, never a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # The schema lists every endpoint and field: signed-in users only, unless made public.
    "SERVE_PERMISSIONS": [
        "rest_framework.permissions.AllowAny"
        if PAGEWISE_PUBLIC_API_SCHEMA
        else "rest_framework.permissions.IsAuthenticated"
    ],
}

# --- Models ---------------------------------------------------------------------------------
PAGEWISE_TORCH_DEVICE = os.environ.get("PAGEWISE_TORCH_DEVICE", "")
# Encode new items (and give unscored ones a built-in upstream score) in a worker after import.
PAGEWISE_EMBED_AFTER_IMPORT = env_bool("PAGEWISE_EMBED_AFTER_IMPORT", True)
# Vision-language scorer (README, "Vision-language scorer"): weights are read from local
# directories only. PAGEWISE_VLM_PATH is the server's model; a project may instead name a model
# directory under PAGEWISE_VLM_ROOT (a name, never a path, so a lead cannot point anywhere).
PAGEWISE_VLM_PATH = os.environ.get("PAGEWISE_VLM_PATH", "")
PAGEWISE_VLM_ROOT = Path(os.environ.get("PAGEWISE_VLM_ROOT", VAR_DIR / "vlm"))
PAGEWISE_VLM_BATCH_SIZE = int(os.environ.get("PAGEWISE_VLM_BATCH_SIZE", 8))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# --- Production hardening (check --deploy is clean when DEBUG is off) -----------------------
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", 31536000))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_REFERRER_POLICY = "same-origin"
    SECURE_CONTENT_TYPE_NOSNIFF = True
    X_FRAME_OPTIONS = "DENY"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# Serve MEDIA_ROOT from Django itself (embedded mode, or a single-host deployment behind gunicorn).
PAGEWISE_SERVE_MEDIA = env_bool("PAGEWISE_SERVE_MEDIA", True)
