"""Grant the campaigns app's permissions to the roles."""

from django.db import migrations

from members.roles import ANALYST, MARKETING_MANAGER, SUPPORT, roles_grant, roles_revoke

_ALL = ("campaignsettings", "memberrfm", "rfmrun", "segment", "segmentmember", "campaign",
        "campaignvariant", "campaignrecipient", "contestdraw", "messagedelivery", "unsubscribe")


def _perms(actions: tuple[str, ...], models: tuple[str, ...]) -> list[str]:
    return [f"campaigns.{action}_{model}" for action in actions for model in models]


GRANTS = {
    # Managers build segments and campaigns; approving needs the custom permission, and the
    # maker-checker rule keeps anyone from approving their own campaign.
    MARKETING_MANAGER: _perms(("view",), _ALL)
    + _perms(("add", "change", "delete"), ("segment", "segmentmember", "campaign",
                                           "campaignvariant"))
    + ["campaigns.change_campaignsettings", "campaigns.approve_campaign"],
    # Support sees what a member was sent and their RFM segment on the member page.
    SUPPORT: _perms(("view",), ("memberrfm", "messagedelivery", "unsubscribe")),
    ANALYST: _perms(("view",), _ALL),
}


class Migration(migrations.Migration):
    dependencies = [("campaigns", "0001_initial"), ("members", "0003_roles")]

    operations = [
        migrations.RunPython(
            lambda apps, schema_editor: roles_grant(apps, GRANTS),
            lambda apps, schema_editor: roles_revoke(apps, GRANTS),
        ),
    ]
