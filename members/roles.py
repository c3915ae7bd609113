"""The back-office roles as Django groups; data migrations grant each app's permissions.

Kept small and stable because migrations import it: it works on the historical models
the migration passes in.
"""

from django.contrib.auth.management import create_permissions

MARKETING_MANAGER = "Marketing manager"
SUPPORT = "Support"
OPERATIONS = "Operations"
ANALYST = "Analyst"
ROLES = (MARKETING_MANAGER, SUPPORT, ANALYST, OPERATIONS)


def roles_grant(apps, grants: dict[str, list[str]]) -> None:
    """Create the role groups if missing and add ``grants`` ("app_label.codename") to them.

    Permissions are created first: on a fresh database Django would only create them
    after the last migration, too late for a data migration.
    """
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, names in grants.items():
        group, _created = Group.objects.get_or_create(name=role)
        for name in names:
            app_label, codename = name.split(".")
            permission = Permission.objects.get(
                content_type__app_label=app_label, codename=codename
            )
            group.permissions.add(permission)


def roles_revoke(apps, grants: dict[str, list[str]]) -> None:
    """Undo :func:`roles_grant` for the same ``grants`` (migration reverse)."""
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, names in grants.items():
        group = Group.objects.filter(name=role).first()
        if group is None:
            continue
        for name in names:
            app_label, codename = name.split(".")
            group.permissions.remove(
                *Permission.objects.filter(content_type__app_label=app_label, codename=codename)
            )
