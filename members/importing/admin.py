"""Admin screens of imports: the list, a new import, its preview, progress and report.

Register by importing this module at the end of ``members/admin.py``. Who may do what
comes from the kinds alone: a user sees the imports, and may start one, of the kinds
whose permissions they hold (:meth:`ImportKind.has_permission`); nobody changes or
deletes an import here. Files are served only through the permission-checked views.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import uuid
from functools import partial

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import translation
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from members.importing import runner
from members.importing.files import limits_get
from members.importing.forms import ImportUploadForm
from members.importing.registry import ERROR, NEW, UNCHANGED, UPDATED, ImportKind, kinds_all
from members.importing.tasks import import_job_apply_run, import_job_preview_run
from members.models import ImportJob

logger = logging.getLogger(__name__)

CONFIRM_BLOCKED = _(
    "Some rows have errors and “skip bad rows” is off: correct the file and upload it "
    "again, or upload it with “skip bad rows”."
)
CONFIRM_LATE = _("This import is no longer waiting for confirmation.")
CANCEL_LATE = _("This import has already started or ended and cannot be cancelled.")

_RUNNING = (ImportJob.Status.UPLOADED, ImportJob.Status.PREVIEWING, ImportJob.Status.IMPORTING)
_STATUS_CLASSES = {
    ImportJob.Status.DONE: "positive",
    ImportJob.Status.REJECTED: "negative",
    ImportJob.Status.FAILED: "negative",
}


def column_header(column) -> str:
    """Return a column's name in the active language for the sample file.

    Until the catalogue translates a label, a Russian user gets the column's first
    Russian alias, so the sample is in their language either way (and imports back).
    """
    label = str(column.label)
    language = translation.get_language() or ""
    if language.startswith("ru") and label.isascii():
        russian = next((a for a in column.aliases if not a.isascii()), "")
        if russian:
            return russian.capitalize()
    return label[:1].upper() + label[1:]


def _enqueue(task, job: ImportJob) -> None:
    """Send a job's task (after the commit); if the queue is unreachable, fail the job
    with a message rather than leave it waiting for a worker that will never come."""
    try:
        task.delay(job.pk, translation.get_language())
    except Exception:
        logger.exception("Import job %s: the task could not be queued", job.pk)
        runner.import_job_fail(job)


class KindFilter(admin.SimpleListFilter):
    title = _("what is imported")
    parameter_name = "kind"

    def lookups(self, request, model_admin):
        return [(kind.key, kind.label) for kind in model_admin.kinds_allowed(request)]

    def queryset(self, request, queryset):
        return queryset.filter(kind=self.value()) if self.value() else queryset


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    """Every import of the kinds the user may import: status, counts, who and when."""

    list_display = (
        "created_at", "kind_column", "original_name", "status_column", "counts_column",
        "created_by",
    )
    list_display_links = ("created_at", "original_name")
    list_filter = ("status", KindFilter, "created_at")
    list_select_related = ("created_by",)
    search_fields = ("original_name",)
    ordering = ("-id",)
    list_per_page = 50
    show_facets = admin.ShowFacets.NEVER
    change_list_template = "admin/members/importjob/change_list.html"

    # ---------------------------------------------------------------- permissions
    def kinds_allowed(self, request: HttpRequest) -> list[type[ImportKind]]:
        """Return the kinds the user may import (once per request)."""
        if not hasattr(request, "_import_kinds"):
            request._import_kinds = [
                kind for kind in kinds_all().values() if kind.has_permission(request.user)
            ]
        return request._import_kinds

    def _kind_allowed(self, request: HttpRequest, key: str) -> bool:
        return any(kind.key == key for kind in self.kinds_allowed(request))

    def has_module_permission(self, request) -> bool:
        return bool(self.kinds_allowed(request))

    def has_view_permission(self, request, obj=None) -> bool:
        if obj is not None:
            return self._kind_allowed(request, obj.kind)
        return bool(self.kinds_allowed(request))

    def has_add_permission(self, request) -> bool:
        return bool(self.kinds_allowed(request))

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_queryset(self, request):
        keys = [kind.key for kind in self.kinds_allowed(request)]
        return super().get_queryset(request).filter(kind__in=keys)

    # ---------------------------------------------------------------- list
    @admin.display(description=_("what is imported"), ordering="kind")
    def kind_column(self, job: ImportJob) -> str:
        kind = kinds_all().get(job.kind)
        return str(kind.label) if kind else job.kind

    @admin.display(description=_("status"), ordering="status")
    def status_column(self, job: ImportJob) -> str:
        # Plain coloured text, not a badge: the long statuses must be able to wrap.
        return format_html(
            '<strong class="{}">{}</strong>', _STATUS_CLASSES.get(job.status, ""),
            job.get_status_display(),
        )

    @admin.display(description=_("rows"))
    def counts_column(self, job: ImportJob) -> str:
        counts = job.counts or {}
        if not counts:
            return "—"
        return format_html(
            '{}<span class="{}">{}</span>',
            gettext("%(new)s new, %(updated)s updated, %(unchanged)s unchanged, ") % {
                "new": counts.get(NEW, 0), "updated": counts.get(UPDATED, 0),
                "unchanged": counts.get(UNCHANGED, 0),
            },
            "negative" if counts.get(ERROR) else "",
            gettext("%(errors)s errors") % {"errors": counts.get(ERROR, 0)},
        )

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(
            request, {"title": gettext("Imports"), **(extra_context or {})}
        )

    # ---------------------------------------------------------------- pages
    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:job_id>/confirm/", wrap(self.confirm_view),
                 name="members_importjob_confirm"),
            path("<int:job_id>/cancel/", wrap(self.cancel_view),
                 name="members_importjob_cancel"),
            path("<int:job_id>/rejected/", wrap(self.rejected_view),
                 name="members_importjob_rejected"),
            path("template/<str:kind>/", wrap(self.template_view),
                 name="members_importjob_template"),
        ] + super().get_urls()

    def _render(self, request, template: str, title: str, **context):
        return TemplateResponse(request, template, {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "has_view_permission": True,
            **context,
        })

    def _job_or_404(self, request, job_id) -> ImportJob:
        try:
            job_id = int(job_id)
        except (TypeError, ValueError):
            raise Http404 from None
        job = get_object_or_404(ImportJob.objects.select_related("created_by"), pk=job_id)
        if not self.has_view_permission(request, job):
            raise PermissionDenied
        return job

    def _job_url(self, job: ImportJob) -> str:
        return reverse("admin:members_importjob_change", args=[job.pk])

    def add_view(self, request, form_url="", extra_context=None):
        """Upload a file; its check (the preview) runs as a task, then the job page shows it."""
        kinds = self.kinds_allowed(request)
        if not kinds:
            raise PermissionDenied
        form = ImportUploadForm(
            request.POST or None, request.FILES or None, kinds=kinds,
            initial={"kind": request.GET.get("kind")},
        )
        if request.method == "POST" and form.is_valid():
            job = self._job_create(request, form)
            transaction.on_commit(partial(_enqueue, import_job_preview_run, job))
            return HttpResponseRedirect(self._job_url(job))
        return self._render(
            request, "admin/members/importjob/upload.html", gettext("New import"),
            form=form, kinds=[
                {"kind": kind, "columns": [(column, column_header(column))
                                           for column in kind.columns]}
                for kind in kinds
            ],
            limits=limits_get(),
        )

    def _job_create(self, request, form) -> ImportJob:
        upload = form.cleaned_data["file"]
        digest = hashlib.sha256()
        for chunk in upload.chunks():
            digest.update(chunk)
        suffix = ".xlsx" if upload.name.lower().endswith(".xlsx") else ".csv"
        job = ImportJob(
            kind=form.cleaned_data["kind"],
            original_name=upload.name[:255],
            file_size=upload.size,
            file_sha256=digest.hexdigest(),
            skip_bad_rows=form.cleaned_data["skip_bad_rows"],
            created_by=request.user,
        )
        # The stored name is ours: the original one is kept only as data.
        job.file.save(f"{uuid.uuid4().hex}{suffix}", upload, save=False)
        job.save()
        self.log_addition(request, job, [{"added": {}}])
        return job

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """The job page: the check running, its preview, the import's progress, the report."""
        job = self._job_or_404(request, object_id)
        kind = kinds_all().get(job.kind)
        counts = job.counts or {}
        has_errors = bool(counts.get(ERROR))
        earlier = (
            ImportJob.objects.filter(
                file_sha256=job.file_sha256, kind=job.kind, status=ImportJob.Status.DONE,
            ).exclude(pk=job.pk).order_by("-id").first()
            if job.status == ImportJob.Status.PREVIEWED else None
        )
        percent = None
        if job.rows_total:
            percent = min(100, int(job.rows_done * 100 / job.rows_total))
        return self._render(
            request, "admin/members/importjob/job.html",
            gettext("Import of %(name)s") % {"name": job.original_name},
            job=job, kind=kind, counts=counts, running=job.status in _RUNNING,
            percent=percent, has_errors=has_errors, earlier=earlier,
            can_confirm=job.status == ImportJob.Status.PREVIEWED
            and (job.skip_bad_rows or not has_errors),
            can_cancel=job.status in (ImportJob.Status.UPLOADED, ImportJob.Status.PREVIEWING,
                                      ImportJob.Status.PREVIEWED),
            errors_shown=len(job.errors or []),
        )

    def confirm_view(self, request, job_id: int):
        """Start the import of a previewed job (POST); the task runs it."""
        job = self._job_or_404(request, job_id)
        if request.method != "POST":
            return HttpResponseRedirect(self._job_url(job))
        if not job.skip_bad_rows and (job.counts or {}).get(ERROR):
            messages.error(request, CONFIRM_BLOCKED)
        elif runner.import_job_confirm(job):
            transaction.on_commit(partial(_enqueue, import_job_apply_run, job))
        else:
            messages.warning(request, CONFIRM_LATE)
        return HttpResponseRedirect(self._job_url(job))

    def cancel_view(self, request, job_id: int):
        """Drop a job before it is imported (POST)."""
        job = self._job_or_404(request, job_id)
        if request.method != "POST":
            return HttpResponseRedirect(self._job_url(job))
        if not runner.import_job_cancel(job, actor=request.user):
            messages.warning(request, CANCEL_LATE)
            return HttpResponseRedirect(self._job_url(job))
        messages.info(request, job.message)
        return HttpResponseRedirect(reverse("admin:members_importjob_changelist"))

    def rejected_view(self, request, job_id: int):
        """Download the rejected rows of a job, for those who may import its kind."""
        job = self._job_or_404(request, job_id)
        if not job.rejected_file:
            raise Http404
        return FileResponse(
            job.rejected_file.open("rb"), as_attachment=True,
            filename=f"rejected-rows-{job.pk}.csv", content_type="text/csv; charset=utf-8",
        )

    def template_view(self, request, kind: str):
        """Download an empty file with a kind's columns named in the user's language."""
        kind_class = kinds_all().get(kind)
        if kind_class is None:
            raise Http404
        if not self._kind_allowed(request, kind):
            raise PermissionDenied
        language = translation.get_language() or settings.LANGUAGE_CODE
        # Russian Excel splits CSV on “;”, English Excel on “,”.
        delimiter = ";" if language.startswith("ru") else ","
        buffer = io.StringIO()
        csv.writer(buffer, delimiter=delimiter).writerow(
            [column_header(column) for column in kind_class.columns]
        )
        response = HttpResponse(
            "\ufeff" + buffer.getvalue(), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = f'attachment; filename="{kind}-template.csv"'
        return response
