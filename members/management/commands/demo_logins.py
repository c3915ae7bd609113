"""Create the demo logins named in the README: a superuser and one user per role."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError

from members.roles import ANALYST, MARKETING_MANAGER, OPERATIONS, SUPPORT

# (username, password, role or None for the superuser); demo only, see README.
DEMO_LOGINS = (
    ("admin", "demo-admin-2026", None),
    ("manager", "demo-manager-2026", MARKETING_MANAGER),
    ("support", "demo-support-2026", SUPPORT),
    ("support2", "demo-support-2026", SUPPORT),
    ("analyst", "demo-analyst-2026", ANALYST),
    ("operations", "demo-operations-2026", OPERATIONS),
)


class Command(BaseCommand):
    help = "Create the demo logins (superuser and one per role) when they are missing."

    def add_arguments(self, parser):
        parser.add_argument(
            "--force", action="store_true",
            help="Create them even with DEBUG off (never on a real installation).",
        )

    def handle(self, *args, force: bool = False, **options):
        if not settings.DEBUG and not force:
            raise CommandError("Demo logins are for development only (DEBUG is off).")
        User = get_user_model()
        for username, password, role in DEMO_LOGINS:
            user, created = User.objects.get_or_create(
                username=username,
                defaults={"is_staff": True, "is_superuser": role is None,
                          "first_name": username.capitalize()},
            )
            if created:
                user.set_password(password)
                user.save(update_fields=["password"])
            if role is not None:
                user.groups.add(Group.objects.get(name=role))
            state = "created" if created else "exists "
            self.stdout.write(f"{state} {username:<9} {role or 'superuser'}")
