"""Grant the dashboards' permissions to the back-office roles."""

from django.db import migrations

from members.roles import ANALYST, MARKETING_MANAGER, OPERATIONS, SUPPORT, roles_grant, roles_revoke

GRANTS = {
    # Managers read every dashboard, record marketing spend and may recompute roll-ups.
    MARKETING_MANAGER: [
        "loyalty_admin.view_programme_dashboards",
        "loyalty_admin.recompute_rollups",
        "loyalty_admin.view_marketingspend",
        "loyalty_admin.add_marketingspend",
        "loyalty_admin.change_marketingspend",
        "loyalty_admin.delete_marketingspend",
    ],
    # Analysts read everything and export; they change nothing.
    ANALYST: [
        "loyalty_admin.view_programme_dashboards",
        "loyalty_admin.view_marketingspend",
    ],
    # Support has a dashboard of its own: approvals, adjustments, follow-ups.
    SUPPORT: ["loyalty_admin.view_support_dashboard"],
    # Operations load files, marketing spend among them.
    OPERATIONS: [
        "loyalty_admin.view_marketingspend",
        "loyalty_admin.add_marketingspend",
        "loyalty_admin.change_marketingspend",
    ],
}


class Migration(migrations.Migration):
    dependencies = [("loyalty_admin", "0001_dashboards"), ("members", "0003_roles")]

    operations = [
        migrations.RunPython(
            lambda apps, schema_editor: roles_grant(apps, GRANTS),
            lambda apps, schema_editor: roles_revoke(apps, GRANTS),
        ),
    ]
