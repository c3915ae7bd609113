"""Grant the surveys app's permissions to the roles."""

from django.db import migrations

from members.roles import ANALYST, MARKETING_MANAGER, OPERATIONS, SUPPORT, roles_grant, roles_revoke

_ALL = ("survey", "question", "invitation", "response", "answer", "followup")


def _perms(actions: tuple[str, ...], models: tuple[str, ...]) -> list[str]:
    return [f"surveys.{action}_{model}" for action in actions for model in models]


GRANTS = {
    # Managers configure surveys and send invitations; they read answers and follow-ups and
    # may correct a comment's sentiment or themes.
    MARKETING_MANAGER: _perms(("view",), _ALL)
    + _perms(("add", "change", "delete"), ("survey", "question"))
    + ["surveys.add_invitation", "surveys.change_response"],
    # Support works the follow-up queue and may correct a comment's sentiment or themes.
    SUPPORT: _perms(("view",), _ALL)
    + ["surveys.change_followup", "surveys.resolve_followup", "surveys.change_response"],
    ANALYST: _perms(("view",), _ALL),
    # Operations loads files, answers from an external survey tool among them.
    OPERATIONS: ["surveys.view_survey", "surveys.add_response"],
}


class Migration(migrations.Migration):
    dependencies = [("surveys", "0001_initial"), ("members", "0003_roles")]

    operations = [
        migrations.RunPython(
            lambda apps, schema_editor: roles_grant(apps, GRANTS),
            lambda apps, schema_editor: roles_revoke(apps, GRANTS),
        ),
    ]
