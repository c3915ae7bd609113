"""Grant the programme's permissions to the back-office roles."""

from django.db import migrations

from members.roles import ANALYST, MARKETING_MANAGER, SUPPORT, roles_grant, roles_revoke

_MODELS = ("tier", "membertier", "tierchange", "earningrule", "reward", "voucher",
           "stamprule", "referral")


def _perms(actions: tuple[str, ...], models: tuple[str, ...]) -> list[str]:
    return [f"rewards.{action}_{model}" for action in actions for model in models]


GRANTS = {
    # Managers run the programme: tiers, rules, catalogue; they set tiers by hand.
    MARKETING_MANAGER: _perms(("view",), _MODELS)
    + _perms(("add", "change", "delete"), ("tier", "earningrule", "reward", "stamprule"))
    + ["rewards.change_membertier"],
    # Support redeems (adds vouchers), marks them used, cancels, updates fulfilment.
    SUPPORT: _perms(("view",), _MODELS) + ["rewards.add_voucher", "rewards.change_voucher"],
    ANALYST: _perms(("view",), _MODELS),
}


class Migration(migrations.Migration):
    dependencies = [("rewards", "0001_initial"), ("members", "0003_roles")]

    operations = [
        migrations.RunPython(
            lambda apps, schema_editor: roles_grant(apps, GRANTS),
            lambda apps, schema_editor: roles_revoke(apps, GRANTS),
        ),
    ]
