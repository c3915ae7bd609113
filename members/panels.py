"""Panels that higher apps add to the member page.

``members`` imports none of the apps above it, yet the member page shows their parts of
the story too (RFM segment, messages sent, survey follow-ups). Those apps register a panel
here from ``AppConfig.ready``; the member page renders every registered panel in order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.http import HttpRequest

from members.models import Member


@dataclass(frozen=True)
class MemberPanel:
    """One panel of the member page.

    ``context(request, member)`` returns the panel's template context, or None to hide the
    panel (e.g. the user may not see it); it must run a fixed number of queries.
    ``place`` is ``"summary"`` for a small card in the summary row, ``"story"`` for a
    full-width panel below the ledger and purchases.
    """

    key: str
    template: str
    context: Callable[[HttpRequest, Member], dict | None]
    place: str = "story"
    order: int = 100


_panels: dict[str, MemberPanel] = {}


def member_panel_register(panel: MemberPanel) -> None:
    """Add (or replace, by key) a panel of the member page."""
    _panels[panel.key] = panel


def member_panels_render(request: HttpRequest, member: Member) -> dict[str, list[dict]]:
    """Return the visible panels by place: ``{"summary": [...], "story": [...]}``.

    Each item holds ``template`` and ``context`` for ``{% include %}``.
    """
    placed: dict[str, list[dict]] = {"summary": [], "story": []}
    for panel in sorted(_panels.values(), key=lambda item: (item.order, item.key)):
        context = panel.context(request, member)
        if context is None:
            continue
        placed.setdefault(panel.place, []).append(
            {"key": panel.key, "template": panel.template, "context": context}
        )
    return placed
