"""The audit log of configuration changes; Analyst may read it, Support may lift lock-outs."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

from members.roles import ANALYST, SUPPORT, roles_grant, roles_revoke

GRANTS = {
    ANALYST: ["members.view_configchange"],
    # Support unlocks a colleague locked out by failed logins (django-axes).
    SUPPORT: ["axes.view_accessattempt", "axes.delete_accessattempt"],
}


class Migration(migrations.Migration):

    dependencies = [
        ("members", "0008_member_language"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("axes", "0010_accessattemptexpiration"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="ConfigChange",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("changed_at", models.DateTimeField(db_index=True, default=django.utils.timezone.now, verbose_name="changed at")),
                ("actor_name", models.CharField(blank=True, max_length=150, verbose_name="changed by (name)")),
                ("source", models.CharField(blank=True, help_text="The page (method and address) the change was made from; empty for tasks, commands and the shell.", max_length=300, verbose_name="source")),
                ("object_id", models.CharField(db_index=True, max_length=64, verbose_name="object id")),
                ("object_repr", models.CharField(max_length=200, verbose_name="object")),
                ("action", models.CharField(choices=[("create", "Created"), ("update", "Changed"), ("delete", "Deleted")], max_length=10, verbose_name="action")),
                ("changed_fields", models.JSONField(blank=True, default=list, verbose_name="changed fields")),
                ("before", models.JSONField(blank=True, help_text="The changed fields' values before the change (every field for a deletion).", null=True, verbose_name="before")),
                ("after", models.JSONField(blank=True, help_text="The changed fields' values after the change (every field for a creation).", null=True, verbose_name="after")),
                ("actor", models.ForeignKey(blank=True, help_text="Empty when the system made the change (a task, a command, the shell).", null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+", to=settings.AUTH_USER_MODEL, verbose_name="changed by")),
                ("content_type", models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name="+", to="contenttypes.contenttype", verbose_name="kind of object")),
            ],
            options={
                "verbose_name": "configuration change",
                "verbose_name_plural": "configuration changes",
                "ordering": ["-changed_at", "-id"],
                "default_permissions": ("view",),
                "indexes": [models.Index(fields=["content_type", "object_id"], name="members_con_content_db931d_idx")],
            },
        ),
        migrations.RunPython(
            lambda apps, schema_editor: roles_grant(apps, GRANTS),
            lambda apps, schema_editor: roles_revoke(apps, GRANTS),
        ),
    ]
