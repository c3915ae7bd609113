"""Login lock-out (django-axes): per user name and per address, each with its own limit."""

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username, get_cool_off
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.db.models import Sum
from django.http import HttpRequest
from django.shortcuts import render
from django.utils.translation import gettext, ngettext


class LoginLockoutHandler(AxesDatabaseHandler):
    """Lock out after ``AXES_FAILURE_LIMIT`` failures of one user name, or
    ``LOGIN_FAILURE_LIMIT_ADDRESS`` failures from one address.

    django-axes compares the largest failure count of its lock-out parameters with one
    limit; an office behind one address needs a higher limit than one user name, so the
    address count is scaled onto the user-name limit: ``floor(n * user_limit /
    address_limit)`` reaches ``user_limit`` exactly when ``n`` reaches ``address_limit``.
    """

    def get_failures(self, request, credentials=None) -> int:
        # Same order as AXES_LOCKOUT_PARAMETERS: ["username", "ip_address"].
        by_username, by_address = (
            attempts.aggregate(n=Sum("failures_since_start"))["n"] or 0
            for attempts in self.get_user_attempts(request, credentials)
        )
        user_limit = settings.AXES_FAILURE_LIMIT
        address_limit = max(1, settings.LOGIN_FAILURE_LIMIT_ADDRESS)
        return max(by_username, by_address * user_limit // address_limit)


def lockout_message(request: HttpRequest) -> str:
    """Return the sentence a locked-out person reads on the login page."""
    cool_off = get_cool_off(request)
    if cool_off:
        minutes = max(1, int(cool_off.total_seconds() // 60))
        return ngettext(
            "Too many failed logins: logging in is locked for %(minutes)d minute. "
            "Try again later, or ask support staff or an administrator to unlock it.",
            "Too many failed logins: logging in is locked for %(minutes)d minutes. "
            "Try again later, or ask support staff or an administrator to unlock it.",
            minutes,
        ) % {"minutes": minutes}
    return gettext(
        "Too many failed logins: logging in is locked. Ask support staff or an "
        "administrator to unlock it."
    )


def lockout_response(request: HttpRequest, original_response=None, credentials=None):
    """Show the login page again, with the lock-out message instead of a bare text page."""
    username = get_client_username(request, credentials) or ""
    form = AdminAuthenticationForm(request, initial={"username": username})
    # Rendered now: the middleware that calls this runs after template responses render.
    return render(request, "admin/login.html", {
        **admin.site.each_context(request),
        "title": gettext("Log in"),
        "subtitle": None,
        "app_path": request.get_full_path(),
        "form": form,
        "username": username,
        "lockout_message": lockout_message(request),
    }, status=settings.AXES_HTTP_RESPONSE_CODE)
