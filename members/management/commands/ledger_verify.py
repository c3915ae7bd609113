"""Check that every member's cached balance equals the sum of their ledger."""

from django.core.management.base import BaseCommand, CommandError

from members.selectors import ledger_mismatches


class Command(BaseCommand):
    help = (
        "Check the points invariant (cached balance = sum of the ledger) for every member; "
        "exit with status 1 naming the members where it does not hold."
    )

    def handle(self, *args, **options):
        mismatches = list(ledger_mismatches())
        if not mismatches:
            self.stdout.write(self.style.SUCCESS("Ledger OK: every balance equals its ledger sum."))
            return
        for row in mismatches:
            self.stderr.write(
                f"member {row['id']} (card {row['card_number']}): balance "
                f"{row['points_balance']} but ledger sum {row['ledger_sum']}"
            )
        raise CommandError(
            f"{len(mismatches)} member(s) with a balance that differs from the ledger."
        )
