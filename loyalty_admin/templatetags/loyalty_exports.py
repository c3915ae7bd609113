"""Template tags of the admin lists' export buttons."""

from django import template
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext

from members.exports import FORMAT_PARAM, NOT_FILTERS, export_allowed
from members.models import ExportJob

register = template.Library()


@register.simple_tag(takes_context=True)
def export_links(context) -> list[dict]:
    """Return the list's export links (CSV, XLSX) with its current filters and search.

    Empty in a popup, for a list without an export resource, or for a user who may
    not export it.
    """
    request = context.get("request")
    changelist = context.get("cl")
    if request is None or changelist is None or context.get("is_popup"):
        return []
    model_admin = changelist.model_admin
    if not export_allowed(request, model_admin):
        return []
    opts = model_admin.opts
    try:
        url = reverse(
            f"{model_admin.admin_site.name}:{opts.app_label}_{opts.model_name}_export"
        )
    except NoReverseMatch:
        return []
    params = request.GET.copy()
    for name in NOT_FILTERS:
        params.pop(name, None)
    links = []
    for file_format, label in (
        (ExportJob.Format.CSV, gettext("Export CSV")),
        (ExportJob.Format.XLSX, gettext("Export XLSX")),
    ):
        params[FORMAT_PARAM] = file_format
        links.append({"format": file_format, "label": label, "url": f"{url}?{params.urlencode()}"})
    return links
