"""What the back-office home page shows each role: its dashboard at a glance.

:func:`home_context` is meant for ``LoyaltyAdminSite.index`` (extra context): the
programme's key figures of the last 30 days for those who read the dashboards, the
approvals waiting for Support.
"""

from __future__ import annotations

from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from loyalty_admin.dashboards import selectors as figures
from loyalty_admin.dashboards.periods import preset_period
from loyalty_admin.dashboards.rollups import rollup_today_refresh
from loyalty_admin.dashboards.tables import MONEY, PERCENT
from loyalty_admin.dashboards.views import allowed, card, dashboards_for, home_for
from members.selectors import adjustments_pending


def home_context(request: HttpRequest) -> dict:
    """Return the home page's dashboard context for the request's user (empty: none)."""
    user = request.user
    home = home_for(user)
    if home is None:
        return {}
    context = {"dashboard_home": home, "home_dashboards": dashboards_for(user)}
    if home == "overview":
        rollup_today_refresh()
        scope = figures.Scope.of(preset_period("last_30", today=timezone.localdate()))
        sales = figures.sales_summary(scope)
        people = figures.members_summary(scope)
        context["home_scope"] = scope
        context["home_cards"] = [
            card(_("Members"), people.total), card(_("New members"), people.new),
            card(_("Active members"), people.active),
            card(_("Revenue from members"), sales.member_revenue_share, PERCENT),
            card(_("Average order, members"), sales.member_aov, MONEY),
            card(_("Customer retention rate"), people.crr, PERCENT),
        ]
    if allowed(user, "support"):
        context["home_pending"] = list(adjustments_pending()[:5])
    return context

