from axes.apps import AppConfig as AxesAppConfig
from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SecurityConfig(AppConfig):
    """Connects the audit log and the session clock once every app's models are loaded."""

    name = "loyalty_admin.security"
    label = "loyalty_security"
    verbose_name = _("Security")

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in

        from loyalty_admin.security.middleware import session_clock_start
        from members.audit import audit_connect

        # Here, not in members: the audited models of campaigns and surveys exist only
        # once every app is loaded, and members imports nothing above it.
        audit_connect()
        user_logged_in.connect(session_clock_start, dispatch_uid="security-session-clock")


class LoginAttemptsConfig(AxesAppConfig):
    """django-axes under a name support staff recognise in the admin's menu."""

    verbose_name = _("Login attempts and lock-outs")
