"""The campaigns app's panels on the member page: RFM card and messages sent."""

from __future__ import annotations

from django.http import HttpRequest

from campaigns.models import MemberRfm
from campaigns.rfm import RFM_RULES
from campaigns.selectors import member_deliveries
from members.models import Member
from members.panels import MemberPanel, member_panel_register


def rfm_panel_context(request: HttpRequest, member: Member) -> dict | None:
    """Return the member's RFM scores and segment (one query), or None if not allowed."""
    if not request.user.has_perm("campaigns.view_memberrfm"):
        return None
    rfm = MemberRfm.objects.filter(member_id=member.id).first()
    meaning = ""
    if rfm is not None:
        meaning = next((str(r.meaning) for r in RFM_RULES if r.segment == rfm.segment), "")
    return {"rfm": rfm, "meaning": meaning}


def deliveries_panel_context(request: HttpRequest, member: Member) -> dict | None:
    """Return the member's latest messages (one query), or None if not allowed."""
    if not request.user.has_perm("campaigns.view_messagedelivery"):
        return None
    return {"deliveries": member_deliveries(member_id=member.id), "member": member}


def member_panels_register() -> None:
    """Add the RFM card and the messages panel to the member page."""
    member_panel_register(MemberPanel(
        key="campaigns-rfm", template="campaigns/panels/rfm_card.html",
        context=rfm_panel_context, place="summary", order=50,
    ))
    member_panel_register(MemberPanel(
        key="campaigns-deliveries", template="campaigns/panels/deliveries.html",
        context=deliveries_panel_context, place="story", order=50,
    ))
