"""Create the three back-office roles and grant them the members app's permissions."""

from django.db import migrations

from members.roles import ANALYST, MARKETING_MANAGER, SUPPORT, roles_grant, roles_revoke

_VIEW_ALL = [
    f"members.view_{model}"
    for model in (
        "member", "memberstatuschange", "purchase", "purchaseline", "pointsentry",
        "pointsadjustment", "store", "productcategory", "programmesettings",
    )
]

GRANTS = {
    MARKETING_MANAGER: _VIEW_ALL + [
        "members.add_store", "members.change_store",
        "members.add_productcategory", "members.change_productcategory",
        "members.change_programmesettings",
    ],
    SUPPORT: [
        "members.view_member", "members.add_member", "members.change_member",
        "members.view_memberstatuschange", "members.view_purchase",
        "members.view_purchaseline", "members.view_pointsentry",
        "members.view_pointsadjustment", "members.add_pointsadjustment",
        "members.adjust_points", "members.approve_adjustment",
        "members.view_store", "members.view_productcategory",
    ],
    ANALYST: list(_VIEW_ALL),
}


class Migration(migrations.Migration):
    dependencies = [
        ("members", "0002_postgres_search_and_append_only_ledger"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.RunPython(
            lambda apps, schema_editor: roles_grant(apps, GRANTS),
            lambda apps, schema_editor: roles_revoke(apps, GRANTS),
        ),
    ]
