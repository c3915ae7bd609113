"""The member page's privacy actions: erase personal data, download everything held.

``MemberAdmin.get_urls`` adds :func:`privacy_urls`; each view checks its permission
itself (``admin_site.admin_view`` only checks that the user is staff).
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET

from members.models import Member
from members.privacy import (
    ERASE_PERMISSION,
    ERASE_REASON_MAX,
    EXPORT_PERMISSION,
    ErasureRefused,
    member_data_export,
    member_data_export_filename,
    member_erase,
    member_is_erased,
)


class ErasureForm(forms.Form):
    """The reason and an explicit confirmation: an erasure cannot be undone."""

    reason = forms.CharField(
        label=_("Reason"), max_length=ERASE_REASON_MAX,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text=_("E.g. the reference of the member's request. Do not write the member's "
                    "name or contact data here: the reason is kept after the erasure."),
    )
    confirm = forms.BooleanField(
        label=_("I understand that this cannot be undone"), required=True,
        error_messages={"required": _("Tick the box to confirm the erasure.")},
    )


def privacy_urls(model_admin) -> list:
    """Return the URL patterns of the member page's privacy actions."""
    wrap = model_admin.admin_site.admin_view

    def erase(request, member_id):
        return member_erase_view(request, member_id, model_admin=model_admin)

    def export(request, member_id):
        return member_data_export_view(request, member_id, model_admin=model_admin)

    return [
        path("<int:member_id>/erase/", wrap(erase), name="members_member_erase"),
        path("<int:member_id>/data-export/", wrap(export), name="members_member_data_export"),
    ]


def member_privacy_links(request: HttpRequest, member: Member) -> dict:
    """Return which privacy actions the member page offers ``request.user``."""
    erased = member_is_erased(member)
    return {
        "can_erase": request.user.has_perm(ERASE_PERMISSION) and not erased,
        "can_export_data": request.user.has_perm(EXPORT_PERMISSION),
        "erased": erased,
    }


def member_erase_view(request: HttpRequest, member_id: int, *, model_admin):
    """Ask for a reason and a confirmation, then erase the member's personal data."""
    if not request.user.has_perm(ERASE_PERMISSION):
        raise PermissionDenied
    member = get_object_or_404(Member, pk=member_id)
    member_url = reverse("admin:members_member_change", args=[member.pk])
    form = ErasureForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            member_erase(
                member_id=member.pk, reason=form.cleaned_data["reason"], actor=request.user
            )
        except ErasureRefused as refusal:
            form.add_error(None, str(refusal))
        else:
            messages.success(request, gettext(
                "The member's personal data was erased and the membership closed. "
                "Points, purchases and totals are unchanged."
            ))
            return HttpResponseRedirect(member_url)
    return TemplateResponse(request, "admin/members/member/erase.html", {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "title": gettext("Erase personal data"),
        "member": member,
        "member_url": member_url,
        "form": form,
        "already_erased": member_is_erased(member),
        "can_export_data": request.user.has_perm(EXPORT_PERMISSION),
    })


@require_GET
def member_data_export_view(request: HttpRequest, member_id: int, *, model_admin):
    """Download everything held about the member as one JSON file (logged)."""
    if not (request.user.has_perm(EXPORT_PERMISSION)
            and request.user.has_perm("members.view_member")):
        raise PermissionDenied
    member = get_object_or_404(Member, pk=member_id)
    content = member_data_export(member_id=member.pk)
    LogEntry.objects.create(
        user_id=request.user.pk, content_type=ContentType.objects.get_for_model(Member),
        object_id=str(member.pk), object_repr=f"Member #{member.pk}", action_flag=CHANGE,
        change_message="Personal data exported for the member",
    )
    response = HttpResponse(content, content_type="application/json; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="{member_data_export_filename(member)}"'
    )
    response["Cache-Control"] = "no-store"
    return response
