"""The Operations role: loads files from the POS, the CRM and a previous programme."""

from django.db import migrations

from members.roles import OPERATIONS, roles_grant, roles_revoke

GRANTS = {
    OPERATIONS: [
        # members file: create and update members
        "members.view_member", "members.add_member", "members.change_member",
        # purchases file: receipts earn points through the programme's rules
        "members.view_purchase", "members.add_purchase", "members.view_store",
        "members.view_productcategory",
        # opening balances and tiers from a previous programme
        "members.view_pointsentry", "members.add_pointsentry",
        "rewards.view_membertier", "rewards.change_membertier", "rewards.view_tier",
        # redemptions and voucher uses from the POS
        "rewards.view_voucher", "rewards.change_voucher", "rewards.add_voucher",
        "rewards.view_reward",
        "members.view_importjob",
    ],
}


class Migration(migrations.Migration):
    dependencies = [("rewards", "0002_roles"), ("members", "0007_member_fillfactor")]

    operations = [
        migrations.RunPython(
            lambda apps, schema_editor: roles_grant(apps, GRANTS),
            lambda apps, schema_editor: roles_revoke(apps, GRANTS),
        ),
    ]
