"""Admin of the project package: the export log, where people find their exports.

Each person sees their own exports (a superuser sees everyone's): what was exported
with which filters, a progress bar while a background export runs, and the download
link when it is done. Files are served only through :meth:`ExportJobAdmin.download_view`,
which checks who asks; the media directory is never public.
"""

from django.apps import apps
from django.contrib import admin
from django.contrib.admin.exceptions import NotRegistered
from django.contrib.admin.views.main import ORDER_VAR, SEARCH_VAR
from django.contrib.humanize.templatetags.humanize import intcomma
from django.http import FileResponse, Http404, HttpRequest, QueryDict
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils.html import format_html
from django.utils.text import capfirst
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from members.exports import PERSONAL_DATA_PERMISSION, export_allowed, export_filename
from members.models import ExportJob

RUNNING = (ExportJob.Status.QUEUED, ExportJob.Status.RUNNING)


def _source_label(job: ExportJob) -> str:
    """Return the list an export came from as people call it, e.g. "Members"."""
    try:
        return str(capfirst(apps.get_model(job.source)._meta.verbose_name_plural))
    except (LookupError, ValueError):
        return job.source


def _list_url(job: ExportJob) -> str | None:
    """Return the list the export came from, with the same filters, or None."""
    app_label, _dot, model_name = job.source.partition(".")
    try:
        url = reverse(f"admin:{app_label}_{model_name}_changelist")
    except NoReverseMatch:  # a list that is no longer in the admin
        return None
    return f"{url}?{job.query}" if job.query else url


def _filters_in_words(job: ExportJob) -> list[tuple[str, str]]:
    """Return the export's filters as (what, value) pairs, e.g. ("search", "Petrov")."""
    words = []
    for name, values in QueryDict(job.query).lists():
        if name == ORDER_VAR:
            label = gettext("sorted by column")
        elif name == SEARCH_VAR:
            label = gettext("search")
        else:
            label = name.removesuffix("__exact").replace("__", " ")
        words.extend((label, value) for value in values)
    return words


@admin.register(ExportJob)
class ExportJobAdmin(admin.ModelAdmin):
    """The export log; read-only, and each person's own exports only."""

    list_display = (
        "created_at", "source_column", "file_format", "status_column", "progress_column",
        "personal_data", "user", "download_column",
    )
    list_display_links = None
    list_filter = ("status", "file_format", "personal_data")
    list_select_related = ("user",)
    ordering = ("-id",)
    list_per_page = 50
    show_facets = admin.ShowFacets.NEVER

    # ---------------------------------------------------------------- list
    @admin.display(description=_("what"))
    def source_column(self, job: ExportJob) -> str:
        url = reverse("admin:members_exportjob_progress", args=[job.pk])
        return format_html('<a href="{}">{}</a>', url, _source_label(job))

    @admin.display(description=_("status"), ordering="status")
    def status_column(self, job: ExportJob) -> str:
        return format_html(
            '<span class="export-status export-status-{}">{}</span>',
            job.status, job.get_status_display(),
        )

    @admin.display(description=_("rows"))
    def progress_column(self, job: ExportJob) -> str:
        if job.rows_total is None or job.status not in RUNNING:
            return intcomma(job.rows_done)
        return f"{intcomma(job.rows_done)} / {intcomma(job.rows_total)}"

    @admin.display(description=_("file"))
    def download_column(self, job: ExportJob) -> str:
        if job.status != ExportJob.Status.DONE:
            return "—"
        if not job.file:
            return format_html('<span class="quiet nowrap">{}</span>', gettext("streamed"))
        url = reverse("admin:members_exportjob_download", args=[job.pk])
        return format_html('<a href="{}">{}</a>', url, gettext("Download"))

    def get_list_display(self, request):
        # Each person sees only their own: "exported by" says something to a superuser only.
        if request.user.is_superuser:
            return self.list_display
        return tuple(name for name in self.list_display if name != "user")

    # ---------------------------------------------------------------- permissions
    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(user=request.user)

    def has_module_permission(self, request) -> bool:
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request, obj=None) -> bool:
        if not (request.user.is_active and request.user.is_staff):
            return False
        return obj is None or request.user.is_superuser or obj.user_id == request.user.pk

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    # ---------------------------------------------------------------- pages
    def changelist_view(self, request, extra_context=None):
        title = gettext("Exports") if request.user.is_superuser else gettext("Your exports")
        return super().changelist_view(request, {"title": title, **(extra_context or {})})

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:job_id>/progress/", wrap(self.progress_view),
                 name="members_exportjob_progress"),
            path("<int:job_id>/download/", wrap(self.download_view),
                 name="members_exportjob_download"),
        ] + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # The progress page is the one page of an export; nothing in it is edited.
        job = self.get_object(request, object_id)
        if job is None:
            raise Http404
        return self.progress_view(request, job.pk)

    def _job_or_404(self, request: HttpRequest, job_id: int) -> ExportJob:
        """Return the caller's own job (any job for a superuser); others do not exist."""
        return get_object_or_404(self.get_queryset(request), pk=job_id)

    def progress_view(self, request: HttpRequest, job_id: int):
        """Show one export: what, status, a progress bar while it runs, the download."""
        job = self._job_or_404(request, job_id)
        running = job.status in RUNNING
        percent = None
        if job.rows_total:
            percent = min(100, round(100 * job.rows_done / job.rows_total))
        elif job.status == ExportJob.Status.DONE:
            percent = 100
        return TemplateResponse(request, "admin/members/exportjob/progress.html", {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": gettext("Export: %(what)s") % {"what": _source_label(job)},
            "job": job,
            "running": running,
            "percent": percent,
            "source_label": _source_label(job),
            "filters": _filters_in_words(job),
            "list_url": _list_url(job),
            "download_url": reverse("admin:members_exportjob_download", args=[job.pk])
            if job.status == ExportJob.Status.DONE and job.file else None,
            "filename": export_filename(job),
        })

    def download_view(self, request: HttpRequest, job_id: int):
        """Send the file of a finished export to its owner (or a superuser)."""
        job = self._job_or_404(request, job_id)
        if job.status != ExportJob.Status.DONE or not job.file:
            raise Http404
        # Whoever lost the right to export the list since has lost the file too.
        try:
            model_admin = self.admin_site.get_model_admin(apps.get_model(job.source))
        except (LookupError, ValueError, NotRegistered) as missing:
            raise Http404 from missing
        if not export_allowed(request, model_admin) or (
            job.personal_data and not request.user.has_perm(PERSONAL_DATA_PERMISSION)
        ):
            raise Http404
        return FileResponse(job.file.open("rb"), as_attachment=True, filename=export_filename(job))
