"""Pagination for tables of millions of rows, where an exact COUNT(*) is too slow."""

from django.core.paginator import Paginator
from django.db import connection
from django.utils.functional import cached_property

# Above this many matches the list says "more than N" instead of counting them all.
COUNT_CAP = 10_000


class LargeTablePaginator(Paginator):
    """Count at most ``COUNT_CAP + 1`` rows; estimate an unfiltered table from statistics.

    ``count_kind`` tells templates how to word the number: "exact", "estimate"
    ("about N") or "capped" ("more than COUNT_CAP").
    """

    count_kind = "exact"
    count_cap = COUNT_CAP

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        query = getattr(queryset, "query", None)
        if query is None:
            return super().count
        if connection.vendor == "postgresql" and not query.where:
            estimate = self._estimate(queryset.model._meta.db_table)
            if estimate > COUNT_CAP:
                self.count_kind = "estimate"
                return estimate
        # Counting a LIMIT-ed subquery stops after COUNT_CAP + 1 rows.
        capped = queryset.order_by()[: COUNT_CAP + 1].count()
        if capped > COUNT_CAP:
            self.count_kind = "capped"
        return capped

    @staticmethod
    def _estimate(table: str) -> int:
        """Return PostgreSQL's row estimate for ``table`` (0 before the first ANALYZE)."""
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [table]
            )
            row = cursor.fetchone()
        return max(int(row[0]), 0) if row else 0
