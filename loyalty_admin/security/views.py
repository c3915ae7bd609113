"""Login in two steps when the person has an authenticator app, and the page to add one.

Step one is the admin's own login form (user name and password, counted by django-axes).
When the password is right and the person has a confirmed TOTP device, nobody is logged
in yet: the user's id waits in the session for ``TWO_FACTOR_CODE_WAIT`` seconds and the
code page asks for the six digits. A wrong code counts as a failed login.
"""

import base64
import time

import qrcode
import qrcode.image.svg
from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import REDIRECT_FIELD_NAME, get_user_model, user_login_failed
from django.contrib.auth import login as auth_login
from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import resolve_url
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice

PENDING = "security:two_factor_pending"
DEVICE_NAME = "Authenticator app"


class CodeForm(forms.Form):
    """The six digits an authenticator app shows."""

    code = forms.CharField(
        label=_("Code from your authenticator app"), max_length=8, min_length=6,
        widget=forms.TextInput(attrs={
            "autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True,
            "pattern": "[0-9 ]*",
        }),
    )

    def clean_code(self) -> str:
        code = self.cleaned_data["code"].replace(" ", "")
        if not code.isdigit():
            raise forms.ValidationError(gettext("The code is six digits."))
        return code


class PasswordConfirmForm(forms.Form):
    """Turning two-factor off asks for the password again."""

    password = forms.CharField(label=_("Your password"), widget=forms.PasswordInput)


def confirmed_device(user) -> TOTPDevice | None:
    """Return the user's confirmed authenticator device, or None."""
    return TOTPDevice.objects.filter(user=user, confirmed=True).order_by("id").first()


class TwoStepLoginView(LoginView):
    """The admin login: a person with an authenticator app goes on to the code page."""

    def form_valid(self, form):
        user = form.get_user()
        if confirmed_device(user) is None:
            return super().form_valid(form)
        self.request.session[PENDING] = {
            "user": user.pk, "backend": user.backend, "at": int(time.time()),
        }
        url = reverse("admin:login_code")
        next_url = self.get_redirect_url()
        if next_url:
            url = f"{url}?{REDIRECT_FIELD_NAME}={next_url}"
        return HttpResponseRedirect(url)


def _safe_next(request: HttpRequest) -> str:
    next_url = request.POST.get(REDIRECT_FIELD_NAME) or request.GET.get(REDIRECT_FIELD_NAME)
    if next_url and url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return next_url
    return resolve_url("admin:index")


@sensitive_post_parameters("code")
@csrf_protect
@never_cache
def login_code_view(request: HttpRequest, admin_site):
    """Step two of the login: the code from the authenticator app."""
    pending = request.session.get(PENDING)
    if not pending or time.time() - pending["at"] > settings.TWO_FACTOR_CODE_WAIT:
        request.session.pop(PENDING, None)
        messages.info(request, gettext("Please log in again."))
        return HttpResponseRedirect(reverse("admin:login"))
    user = get_user_model()._default_manager.filter(pk=pending["user"], is_active=True).first()
    device = confirmed_device(user) if user is not None else None
    if device is None:
        request.session.pop(PENDING, None)
        return HttpResponseRedirect(reverse("admin:login"))
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if device.verify_token(form.cleaned_data["code"]):
            request.session.pop(PENDING, None)
            user.otp_device = device  # auth_login then marks the session as verified
            auth_login(request, user, backend=pending["backend"])
            return HttpResponseRedirect(_safe_next(request))
        form.add_error("code", gettext(
            "That code is not right. Check the time on your phone and type the code "
            "your app shows now."
        ))
        # A wrong code is a failed login: django-axes counts it and may lock out.
        user_login_failed.send(
            sender=__name__, credentials={"username": user.get_username()}, request=request
        )
    return TemplateResponse(request, "admin/two_factor/login_code.html", {
        **admin_site.each_context(request),
        "title": gettext("Two-factor authentication"),
        "form": form,
        "next": request.GET.get(REDIRECT_FIELD_NAME, ""),
        "username": user.get_username(),
    })


def _qr_svg(url: str) -> str:
    """Return an inline SVG QR code of ``url`` (drawn here: no image service, no CDN)."""
    image = qrcode.make(url, image_factory=qrcode.image.svg.SvgPathImage, box_size=8, border=2)
    # The SVG holds only the code's squares, generated from our own URL.
    return mark_safe(image.to_string(encoding="unicode"))  # noqa: S308


def two_factor_view(request: HttpRequest, admin_site):
    """Turn two-factor authentication on (scan, type a code) or off (password) for oneself."""
    user = request.user
    device = confirmed_device(user)
    code_form = CodeForm(request.POST if request.POST.get("action") == "enable" else None)
    password_form = PasswordConfirmForm(
        request.POST if request.POST.get("action") == "disable" else None
    )
    if request.method == "POST" and device is None and code_form.is_valid():
        pending = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("-id").first()
        if pending is not None and pending.verify_token(code_form.cleaned_data["code"]):
            pending.confirmed = True
            pending.save(update_fields=["confirmed"])
            TOTPDevice.objects.filter(user=user, confirmed=False).delete()
            otp_login(request, pending)
            messages.success(request, gettext(
                "Two-factor authentication is on: the next login asks for a code."
            ))
            return HttpResponseRedirect(reverse("admin:two_factor"))
        code_form.add_error("code", gettext(
            "That code is not right. Scan the QR code again and type the code your app "
            "shows now."
        ))
    if request.method == "POST" and device is not None and password_form.is_valid():
        if user.check_password(password_form.cleaned_data["password"]):
            TOTPDevice.objects.filter(user=user).delete()
            messages.success(request, gettext("Two-factor authentication is off."))
            return HttpResponseRedirect(reverse("admin:two_factor"))
        password_form.add_error("password", gettext("That is not your password."))
    context = {
        **admin_site.each_context(request),
        "title": gettext("Two-factor authentication"),
        "device": device,
        "code_form": code_form,
        "password_form": password_form,
        "required": settings.TWO_FACTOR_REQUIRED_FOR_SUPERUSERS and user.is_superuser,
    }
    if device is None:
        pending = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("-id").first()
        if pending is None:
            pending = TOTPDevice.objects.create(user=user, name=DEVICE_NAME, confirmed=False)
        context.update(
            qr_svg=_qr_svg(pending.config_url),
            secret=base64.b32encode(pending.bin_key).decode("ascii"),
        )
    return TemplateResponse(request, "admin/two_factor/setup.html", context)
