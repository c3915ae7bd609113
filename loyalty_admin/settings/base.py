"""Settings shared by every environment; each value comes from the environment.

Environment-specific modules (local, test, production) import this and override.
"""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from csp.constants import NONCE, NONE, SELF, UNSAFE_INLINE
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def env_bool(name: str, default: bool) -> bool:
    """Return the environment variable ``name`` read as a boolean."""
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    """Return a comma-separated environment variable as a list of strings."""
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


# ------------------------------------------------------------------ core
SECRET_KEY = os.environ.get("SECRET_KEY", "")
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

# ------------------------------------------------------------------ apps
INSTALLED_APPS = [
    # The admin app is replaced by our config so the branded site is the default.
    "loyalty_admin.apps.LoyaltyAdminSiteConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django.contrib.postgres",
    "crispy_forms",
    "crispy_bootstrap5",
    "django_filters",
    "import_export",
    "loyalty_admin.security.apps.LoginAttemptsConfig",  # django-axes, named for people
    "django_otp",
    "django_otp.plugins.otp_totp",
    "csp",
    "loyalty_admin",
    "loyalty_admin.security.apps.SecurityConfig",
    "members",
    "rewards",
    "campaigns",
    "surveys",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "loyalty_admin.security.middleware.SessionTimeoutMiddleware",
    "loyalty_admin.security.middleware.TwoFactorRequiredMiddleware",
    "loyalty_admin.security.middleware.AuditActorMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a lock-out into the login page with a message.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "loyalty_admin.urls"
WSGI_APPLICATION = "loyalty_admin.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "members.broker_health.background_jobs",
            ],
        },
    },
]

# ------------------------------------------------------------------ database
# PostgreSQL through psycopg 3 when DATABASE_URL is set, else an embedded SQLite
# file so that a fresh machine runs the project with nothing else installed.
DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{BASE_DIR / 'var' / 'db.sqlite3'}",
        conn_max_age=int(os.environ.get("CONN_MAX_AGE", "60")),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and a busy timeout let the dev server and in-process tasks share the file.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL;",
        "transaction_mode": "IMMEDIATE",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Covering indexes (INCLUDE) are PostgreSQL's; SQLite, the embedded default, builds the
# same indexes without the extra columns, which is all it needs.
SILENCED_SYSTEM_CHECKS = ["models.W040"]

# ------------------------------------------------------------------ auth
# https://docs.djangoproject.com/en/5.2/topics/auth/passwords/#password-validation
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": int(os.environ.get("PASSWORD_MIN_LENGTH", "10"))},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# django-axes first: it refuses a locked-out login before the password is checked; it
# has no get_user(), so Client.force_login and sessions use ModelBackend.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "admin:login"

# ------------------------------------------------------------------ sessions
# A session ends after SESSION_IDLE_TIMEOUT seconds without a request and in any case
# SESSION_ABSOLUTE_TIMEOUT seconds after the login (loyalty_admin.security.middleware).
SESSION_IDLE_TIMEOUT = int(os.environ.get("SESSION_IDLE_TIMEOUT", str(30 * 60)))
SESSION_ABSOLUTE_TIMEOUT = int(os.environ.get("SESSION_ABSOLUTE_TIMEOUT", str(10 * 3600)))
SESSION_COOKIE_AGE = SESSION_ABSOLUTE_TIMEOUT
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"

# ------------------------------------------------------------------ login lock-out
# https://django-axes.readthedocs.io/en/latest/4_configuration.html
# LOGIN_FAILURE_LIMIT failed logins for one user name, or LOGIN_FAILURE_LIMIT_ADDRESS from
# one address (an office behind one NAT address shares it), lock further logins out for
# LOGIN_LOCKOUT_MINUTES; support staff lift a lock-out earlier in the admin
# (Access attempts: delete the row).
AXES_ENABLED = env_bool("AXES_ENABLED", True)
AXES_FAILURE_LIMIT = int(os.environ.get("LOGIN_FAILURE_LIMIT", "5"))
LOGIN_FAILURE_LIMIT_ADDRESS = int(os.environ.get("LOGIN_FAILURE_LIMIT_ADDRESS", "20"))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_HANDLER = "loyalty_admin.security.lockout.LoginLockoutHandler"
AXES_COOLOFF_TIME = timedelta(minutes=int(os.environ.get("LOGIN_LOCKOUT_MINUTES", "30")))
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "loyalty_admin.security.lockout.lockout_response"
AXES_HTTP_RESPONSE_CODE = 429
AXES_VERBOSE = False
# Trying again while locked out does not push the end of the lock-out further away.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
# Behind a reverse proxy set AXES_IPWARE_PROXY_COUNT to the number of proxies in front.
AXES_IPWARE_PROXY_COUNT = (
    int(os.environ["AXES_IPWARE_PROXY_COUNT"]) if os.environ.get("AXES_IPWARE_PROXY_COUNT")
    else None
)
AXES_IPWARE_META_PRECEDENCE_ORDER = (
    ("HTTP_X_FORWARDED_FOR", "REMOTE_ADDR") if AXES_IPWARE_PROXY_COUNT else ("REMOTE_ADDR",)
)

# ------------------------------------------------------------------ two-factor (TOTP)
# https://django-otp-official.readthedocs.io/en/stable/overview.html
# Any staff member may add an authenticator app (Two-factor authentication in the user
# menu); the login then asks for its code. With TWO_FACTOR_REQUIRED_FOR_SUPERUSERS a
# superuser without one is sent to set it up before anything else.
OTP_TOTP_ISSUER = os.environ.get("OTP_TOTP_ISSUER", "Loyalty back-office")
TWO_FACTOR_REQUIRED_FOR_SUPERUSERS = env_bool("TWO_FACTOR_REQUIRED_FOR_SUPERUSERS", False)
# Seconds a password-checked login may wait for its code before starting again.
TWO_FACTOR_CODE_WAIT = 300

# ------------------------------------------------------------------ security headers
# https://django-csp.readthedocs.io/en/latest/configuration.html
# Scripts only from our own static files (the admin's are all files; a template that
# needs an inline script gives it nonce="{{ request.csp_nonce }}"). Inline style
# attributes stay allowed: charts and a few templates use them, and they run no code.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, UNSAFE_INLINE],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# ------------------------------------------------------------------ audit
# Every change to these models is kept (members.ConfigChange) with who, when, before and
# after. "app_label.*" means every concrete model of the app, resolved when the apps are
# ready, so campaign and survey models are covered as they land; the high-volume rows
# that services write per member or per message are left out by name.
LOYALTY_AUDIT_MODELS = [
    "auth.User", "auth.Group",
    "members.ProgrammeSettings", "members.Store", "members.ProductCategory",
    "rewards.Tier", "rewards.EarningRule", "rewards.StampRule", "rewards.Reward",
    "campaigns.*", "surveys.*",
]
LOYALTY_AUDIT_EXCLUDE = [
    # Rows written per member, per message or per night by services and tasks.
    "campaigns.memberrfm", "campaigns.rfmrun", "campaigns.segmentmember",
    "campaigns.campaignrecipient", "campaigns.contestdraw", "campaigns.messagedelivery",
    "campaigns.unsubscribe", "campaigns.campaignresultsnapshot",
    "surveys.invitation", "surveys.response", "surveys.answer", "surveys.responsetheme",
    "surveys.followup", "surveys.responsedaily", "surveys.rollupstate",
]
# Fields that jobs or logins keep up to date: a change to these alone is not logged.
LOYALTY_AUDIT_IGNORED_FIELDS = {
    "auth.user": ["last_login"],
    "campaigns.segment": ["last_count", "last_counted_at"],
}

# ------------------------------------------------------------------ i18n
LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("ru", _("Russian"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
USE_TZ = True
TIME_ZONE = os.environ.get("TIME_ZONE", "Europe/Moscow")
USE_THOUSAND_SEPARATOR = True
FORMAT_MODULE_PATH = ["loyalty_admin.formats"]

# ------------------------------------------------------------------ static files
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", BASE_DIR / "var" / "media"))
MEDIA_URL = "media/"

# ------------------------------------------------------------------ forms
CRISPY_ALLOWED_TEMPLATE_PACKS = "bootstrap5"
CRISPY_TEMPLATE_PACK = "bootstrap5"

# ------------------------------------------------------------------ import / export
# Without these codes any staff user could export every row of every model.
IMPORT_EXPORT_IMPORT_PERMISSION_CODE = "add"
IMPORT_EXPORT_EXPORT_PERMISSION_CODE = "view"
IMPORT_EXPORT_USE_TRANSACTIONS = True

# ------------------------------------------------------------------ imports and exports
# Files are refused above these before they are parsed (an XLSX is a zip: its unpacked
# size and row count are checked first). Keep the web server's upload limit a bit higher.
IMPORT_MAX_BYTES = int(os.environ.get("IMPORT_MAX_BYTES", str(50 * 1024 * 1024)))
IMPORT_MAX_ROWS = int(os.environ.get("IMPORT_MAX_ROWS", "1000000"))
IMPORT_MAX_XLSX_UNCOMPRESSED_BYTES = int(
    os.environ.get("IMPORT_MAX_XLSX_UNCOMPRESSED_BYTES", str(500 * 1024 * 1024))
)
LOYALTY_IMPORT_KINDS = [
    "members.importing.kinds", "rewards.importing", "surveys.importing",
    "loyalty_admin.dashboards.importing",
]
# Exports above this many rows run as a background job with a progress page.
LOYALTY_EXPORT_STREAM_MAX_ROWS = int(os.environ.get("LOYALTY_EXPORT_STREAM_MAX_ROWS", "20000"))

# ------------------------------------------------------------------ mail
EMAIL_BACKEND = os.environ.get(
    "EMAIL_BACKEND", "django.core.mail.backends.filebased.EmailBackend"
)
EMAIL_FILE_PATH = os.environ.get("EMAIL_FILE_PATH", str(BASE_DIR / "var" / "mail"))
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "loyalty@example.com")

# ------------------------------------------------------------------ Celery
# https://docs.celeryq.dev/en/stable/userguide/configuration.html
# Without a broker, tasks run in-process so the embedded default works alone.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND", None)
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# Late acks: a task whose worker dies is delivered again, so every task is idempotent.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A message not acknowledged within the hour goes back to the queue (Redis' default is
# also an hour; say it, since late acks depend on it). A task that killed its worker this
# many times is dropped and reported (members.broker_health.DeliveryGuardedTask).
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
LOYALTY_TASK_MAX_DELIVERIES = int(os.environ.get("LOYALTY_TASK_MAX_DELIVERIES", "3"))
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULE = {
    # Nightly, in the programme's time zone, one job after another.
    "tiers-evaluate-nightly": {
        "task": "rewards.tasks.tiers_evaluate_nightly", "schedule": crontab(hour=1, minute=0),
    },
    "points-expire-nightly": {
        "task": "rewards.tasks.points_expire_nightly", "schedule": crontab(hour=1, minute=30),
    },
    "vouchers-expire-nightly": {
        "task": "rewards.tasks.vouchers_expire_nightly", "schedule": crontab(hour=1, minute=45),
    },
    "birthday-bonuses-daily": {
        "task": "rewards.tasks.birthday_bonuses_daily", "schedule": crontab(hour=8, minute=0),
    },
    "rfm-nightly": {
        "task": "campaigns.tasks.rfm_nightly", "schedule": crontab(hour=2, minute=0),
    },
    "survey-rollup-nightly": {
        "task": "surveys.tasks.responses_rollup_nightly", "schedule": crontab(hour=2, minute=15),
    },
    "dashboards-rollups-nightly": {
        "task": "loyalty_admin.tasks.rollups_nightly", "schedule": crontab(hour=2, minute=30),
    },
    "ledger-verify-nightly": {
        "task": "members.tasks.ledger_verify", "schedule": crontab(hour=4, minute=0),
    },
    # Through the day: campaigns start, stop and fire their triggers; jobs asked for while
    # the broker was down are sent again.
    "campaigns-tick": {
        "task": "campaigns.tasks.campaigns_tick", "schedule": crontab(minute="*/15"),
    },
    "campaigns-results-refresh": {
        "task": "campaigns.tasks.campaign_results_refresh",
        "schedule": crontab(minute="7,22,37,52"),
    },
    "jobs-resubmit-stranded": {
        "task": "members.tasks.jobs_resubmit_stranded", "schedule": crontab(minute="*/5"),
    },
}

# ------------------------------------------------------------------ programme
# The address members reach: survey links and unsubscribe links in messages start with it.
PUBLIC_BASE_URL = os.environ.get("PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
LOYALTY_CURRENCY = os.environ.get("LOYALTY_CURRENCY", "RUB")

# ------------------------------------------------------------------ logging
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
