"""Public pages of the campaigns app (no login): unsubscribing from a message's link."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import translation
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from campaigns.messaging import unsubscribe_token_read
from campaigns.services import member_unsubscribe
from members.models import Member


# The signed token is the credential, and one-click unsubscribe (RFC 8058) posts from the
# mail provider without a CSRF cookie; unsubscribing twice changes nothing.
@csrf_exempt
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """Ask to confirm (GET), then opt the member out of the channel (POST).

    GET changes nothing, so a mail scanner that follows links cannot unsubscribe anyone.
    """
    data = unsubscribe_token_read(token)
    if data is None:
        return render(request, "campaigns/unsubscribe.html", {"invalid": True}, status=404)
    member = Member.objects.filter(id=data["m"]).only("id", "language", "email", "phone").first()
    if member is None:
        return render(request, "campaigns/unsubscribe.html", {"invalid": True}, status=404)
    with translation.override(member.language or None):
        done = False
        if request.method == "POST":
            member_unsubscribe(member_id=member.id, channel=data["c"], delivery_id=data.get("d"))
            done = True
        return render(request, "campaigns/unsubscribe.html", {
            "done": done, "channel": data["c"], "token": token,
            "address": _masked(member.email if data["c"] == "email" else member.phone),
        })


def _masked(address: str) -> str:
    """Return an address with most of it hidden: the page is public."""
    if "@" in address:
        name, _at, domain = address.partition("@")
        return f"{name[:1]}***@{domain}"
    return f"***{address[-4:]}" if address else ""
