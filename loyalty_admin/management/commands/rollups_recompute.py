"""Recompute the dashboards' roll-ups for a date range, or rebuild them all.

    manage.py rollups_recompute --from 2025-01-01 --to 2025-01-31
    manage.py rollups_recompute --all
"""

from datetime import date

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from loyalty_admin.dashboards import rollups


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise CommandError(f"“{text}” is not a date: write it as yyyy-mm-dd.") from None


class Command(BaseCommand):
    help = "Recompute the dashboards' daily roll-ups for a date range (or --all)."

    def add_arguments(self, parser):
        parser.add_argument("--from", dest="first", help="First day, yyyy-mm-dd.")
        parser.add_argument("--to", dest="last", help="Last day, yyyy-mm-dd (default today).")
        parser.add_argument("--all", action="store_true",
                            help="Rebuild everything from the first day of history.")

    def handle(self, *args, first=None, last=None, all=False, **options):
        if all:
            runs = rollups.rollup_rebuild()
            seconds = sum(run.seconds or 0 for run in runs)
            self.stdout.write(f"Rebuilt every roll-up in {seconds:.1f} s.")
            return
        if not first:
            raise CommandError("Give --from (and --to), or --all.")
        first_day = _day(first)
        last_day = _day(last) if last else timezone.localdate()
        if last_day < first_day:
            raise CommandError("The first day must not be after the last day.")
        run = rollups.rollup_days(first=first_day, last=last_day)
        self.stdout.write(f"Recomputed {first_day} to {last_day} in {run.seconds:.1f} s.")
