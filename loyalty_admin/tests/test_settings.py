"""Settings that protect production and the embedded defaults that let it run anywhere."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    # The test session sets DJANGO_ALLOW_ASYNC_UNSAFE for the browser; production must not.
    dropped = {"DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    clean = {k: v for k, v in os.environ.items() if k not in dropped}
    return subprocess.run(  # noqa: S603 - fixed arguments, our own manage.py
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**clean, **env},
        capture_output=True, text=True, timeout=120, check=False,
    )


def test_production_settings_pass_the_deployment_checklist():
    result = _manage(
        "check", "--deploy", "--fail-level", "WARNING",
        DJANGO_SETTINGS_MODULE="loyalty_admin.settings.production",
        SECRET_KEY=secrets.token_urlsafe(50), ALLOWED_HOSTS="loyalty.example.com",
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_production_refuses_to_start_without_a_secret_key():
    result = _manage(
        "check", DJANGO_SETTINGS_MODULE="loyalty_admin.settings.production", SECRET_KEY="",
    )
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_without_database_url_the_project_uses_an_embedded_sqlite_file_and_eager_tasks():
    result = _manage(
        "shell", "-c",
        "from django.conf import settings as s; "
        "print(s.DATABASES['default']['ENGINE'], s.CELERY_TASK_ALWAYS_EAGER)",
        DJANGO_SETTINGS_MODULE="loyalty_admin.settings.local",
    )
    assert result.returncode == 0, result.stderr
    assert "django.db.backends.sqlite3 True" in result.stdout


@pytest.mark.django_db
def test_the_database_under_test_is_postgresql():
    from django.db import connection

    assert connection.vendor == "postgresql"


def test_production_cookies_are_secure_and_sessions_and_lockouts_come_from_the_environment():
    result = _manage(
        "shell", "-c",
        "from django.conf import settings as s; "
        "print('SETTINGS', s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, "
        "s.SESSION_COOKIE_HTTPONLY, "
        "s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS > 0, s.SESSION_IDLE_TIMEOUT, "
        "s.SESSION_ABSOLUTE_TIMEOUT, s.SESSION_COOKIE_AGE, s.AXES_FAILURE_LIMIT, "
        "s.LOGIN_FAILURE_LIMIT_ADDRESS, s.AXES_COOLOFF_TIME, "
        "s.TWO_FACTOR_REQUIRED_FOR_SUPERUSERS, "
        "s.CONTENT_SECURITY_POLICY['DIRECTIVES']['script-src'][0], "
        "len(s.AUTH_PASSWORD_VALIDATORS))",
        DJANGO_SETTINGS_MODULE="loyalty_admin.settings.production",
        SECRET_KEY=secrets.token_urlsafe(50), ALLOWED_HOSTS="loyalty.example.com",
        SESSION_IDLE_TIMEOUT="900", SESSION_ABSOLUTE_TIMEOUT="28800",
        LOGIN_FAILURE_LIMIT="3", LOGIN_FAILURE_LIMIT_ADDRESS="50",
        LOGIN_LOCKOUT_MINUTES="15", TWO_FACTOR_REQUIRED_FOR_SUPERUSERS="true",
    )
    assert result.returncode == 0, result.stderr
    [line] = [line for line in result.stdout.splitlines() if line.startswith("SETTINGS ")]
    assert line.split()[1:] == [
        "True", "True", "True", "True", "True", "900", "28800", "28800", "3", "50", "0:15:00",
        "True", "'self'", "4",
    ]
