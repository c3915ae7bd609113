"""Imports of CSV and XLSX files: members, purchases, voucher uses, opening balances.

- :mod:`.files` reads a file into numbered rows and parses cells;
- :mod:`.registry` declares kinds of import and finds them (``LOYALTY_IMPORT_KINDS``);
- :mod:`.kinds` is the members app's own kind; ``rewards.importing`` holds the programme's;
- :mod:`.runner` previews and runs an :class:`~members.models.ImportJob`;
- :mod:`.tasks` are the Celery tasks, :mod:`.admin` the screens.
"""
