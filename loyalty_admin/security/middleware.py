"""Request middleware of the back-office: session clock, required two-factor, audit actor."""

import time

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse
from django.utils.translation import gettext

from members.audit import audit_actor

# Session keys of the session clock.
SESSION_STARTED = "security:started_at"
SESSION_SEEN = "security:seen_at"
# The last-seen time is written at most this often: a session save per request would
# turn every page view into a database write.
SEEN_WRITE_EVERY = 60


def session_clock_start(sender, request, user, **kwargs) -> None:
    """Start the absolute and idle clocks of a new login (``user_logged_in`` receiver)."""
    if request is not None and hasattr(request, "session"):
        now = int(time.time())
        request.session[SESSION_STARTED] = now
        request.session[SESSION_SEEN] = now


class SessionTimeoutMiddleware:
    """Log a person out after ``SESSION_IDLE_TIMEOUT`` idle seconds or
    ``SESSION_ABSOLUTE_TIMEOUT`` seconds after the login, whichever comes first."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        if request.user.is_authenticated:
            now = int(time.time())
            started = request.session.setdefault(SESSION_STARTED, now)
            seen = request.session.get(SESSION_SEEN, now)
            if (now - seen > settings.SESSION_IDLE_TIMEOUT
                    or now - started > settings.SESSION_ABSOLUTE_TIMEOUT):
                logout(request)
                messages.info(request, gettext(
                    "Your session expired. Please log in again."
                ))
                return HttpResponseRedirect(
                    f"{reverse('admin:login')}?next={request.path}"
                )
            if now - seen >= SEEN_WRITE_EVERY or SESSION_SEEN not in request.session:
                request.session[SESSION_SEEN] = now
        return self.get_response(request)


class TwoFactorRequiredMiddleware:
    """With ``TWO_FACTOR_REQUIRED_FOR_SUPERUSERS``, send a superuser who has not passed a
    code in this session to the two-factor page (to add a device, or to log in again)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        user = request.user
        if (settings.TWO_FACTOR_REQUIRED_FOR_SUPERUSERS and user.is_authenticated
                and user.is_superuser and not user.is_verified()):
            allowed = {
                reverse("admin:two_factor"), reverse("admin:logout"),
                reverse("admin:login"), reverse("admin:login_code"),
            }
            static = "/" + settings.STATIC_URL.lstrip("/")
            if request.path not in allowed and not request.path.startswith((static, "/i18n/")):
                return HttpResponseRedirect(reverse("admin:two_factor"))
        return self.get_response(request)


class AuditActorMiddleware:
    """Attribute configuration changes made while serving a request to its user."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        with audit_actor(request.user, f"{request.method} {request.path}"):
            return self.get_response(request)
