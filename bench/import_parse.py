"""Benchmark: reading and checking a purchases file, the pure-Python part of an import.

No database: it writes a CSV of ``--purchases`` receipts (1 to 3 lines each, one row
per line) with random but realistic values, in the format Russian Excel writes (``;``,
decimal comma, non-breaking spaces between thousands, ``dd.mm.yyyy HH:MM``, UTF-8 with
BOM; the columns of ``bench/purchase_import.py``), then times, each on its own pass
over the whole file:

a. the ``csv`` module alone (decode and split, nothing else), then
   :func:`members.importing.files.table_open` and its rows (encoding detection, blank
   rows, row numbers);
b. ``table_open`` plus :func:`members.importing.runner._row_parse` of every row against
   the purchases kind's columns (every cell parsed and checked);
c. ``table_open`` plus :func:`members.importing.runner._records`: parsing and grouping
   the rows into receipts;
d. the preview's pure-Python part: (c) plus ``_batches`` and ``Tally.add`` (what
   :func:`members.importing.runner.import_job_preview` does besides the kind's
   check);
e. (d) plus the purchases kind's own pure-Python check of every receipt
   (``PurchasesKind._plan``, with made-up stores, categories and members instead of
   the database's), to see what the kind adds.

Each stage runs ``--repeat`` times; the best run is printed as wall seconds, rows/s and
CPU seconds (on a shared machine, CPU time is the steadier figure), with the load
average. ``--xlsx N`` also times an XLSX workbook of N receipts through (a) to (d).
``--profile`` prints the per-function profile of stage (d).

Needs no database server: ``django.setup()`` only (settings
``loyalty_admin.settings.local`` unless ``DJANGO_SETTINGS_MODULE`` says otherwise)::

    python bench/import_parse.py [--purchases 100000] [--repeat 3] [--xlsx 10000] [--profile]
"""

from __future__ import annotations

import argparse
import codecs
import cProfile
import csv
import io
import os
import pstats
import random
import shutil
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

HEADER = ["Магазин", "Номер чека", "Номер карты", "Дата покупки", "Артикул", "Категория",
          "Кол-во", "Сумма"]
STORES = ["MSK-001", "MSK-002", "MSK-003", "SPB-001", "SPB-002", "KZN-001", "EKB-001",
          "NSK-001", "NNV-001", "SMR-001", "KRD-001", "WEB-001"]
CATEGORIES = ["coffee", "bakery", "dairy", "produce", "household", "beauty", "electronics",
              "clothing", "toys", "pet-supplies", ""]


def django_setup() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loyalty_admin.settings.local")
    os.environ.setdefault("DEBUG", "0")
    import django

    django.setup()


def _ean13(digits12: str) -> str:
    odd = sum(int(d) for d in digits12[::2])
    even = sum(int(d) for d in digits12[1::2])
    return digits12 + str((10 - (odd + 3 * even) % 10) % 10)


def receipts_generate(purchases: int, seed: int):
    """Yield each receipt's rows as typed values: store, receipt number, card, moment,
    SKU, category, quantity (Decimal-like text or int) and amount in kopecks."""
    rng = random.Random(seed)
    cards = [_ean13(f"2{rng.randrange(10**11):011d}") for _ in range(20_000)]
    # Whole minutes in the past (as cash registers export them), up to 60 days back.
    now = datetime.now().replace(second=0, microsecond=0)
    for number in range(purchases):
        store = rng.choice(STORES)
        card = rng.choice(cards) if rng.random() < 0.9 else ""  # some without a card
        when = now - timedelta(minutes=rng.randint(60, 60 * 24 * 60))
        lines = []
        for line in range(rng.randint(1, 3)):
            weighed = rng.random() < 0.1
            quantity = rng.randint(100, 2500) / 1000 if weighed else rng.choice((1, 1, 1, 2))
            lines.append((
                store, f"{store}-{number:07d}", card, when,
                f"SKU-{line}-{rng.randint(1, 99999):05d}", rng.choice(CATEGORIES),
                quantity, rng.randint(4_000, 500_000),
            ))
        yield lines


def _amount_text(kopecks: int) -> str:
    return f"{kopecks // 100:,}".replace(",", "\u00a0") + f",{kopecks % 100:02d}"


def csv_write(path: Path, purchases: int, seed: int) -> int:
    """Write the CSV (Russian Excel: ';', decimal comma, UTF-8 with BOM); return its rows."""
    rows = 0
    with path.open("w", encoding="utf-8-sig", newline="") as target:
        writer = csv.writer(target, delimiter=";")
        writer.writerow(HEADER)
        for lines in receipts_generate(purchases, seed):
            for store, receipt, card, when, sku, category, quantity, kopecks in lines:
                writer.writerow([
                    store, receipt, card, when.strftime("%d.%m.%Y %H:%M"), sku, category,
                    str(quantity).replace(".", ","), _amount_text(kopecks),
                ])
                rows += 1
    return rows


def xlsx_write(path: Path, purchases: int, seed: int) -> int:
    """Write an XLSX of typed cells as Excel stores them; return its data rows."""
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Purchases")
    sheet.append(HEADER)
    rows = 0
    for lines in receipts_generate(purchases, seed):
        for store, receipt, card, when, sku, category, quantity, kopecks in lines:
            sheet.append([store, receipt, card, when, sku, category or None, quantity,
                          kopecks / 100])
            rows += 1
    workbook.save(path)
    return rows


# ------------------------------------------------------------------ stages


def stage_csv(path: Path) -> int:
    """(a) The csv module alone: decode and split every row."""
    count = 0
    with path.open("rb") as source:
        text = io.TextIOWrapper(source, encoding="utf-8-sig", newline="")
        for _cells in csv.reader(text, delimiter=";"):
            count += 1
    return count - 1


def stage_open(path: Path) -> int:
    """(a) table_open and its rows."""
    from members.importing.files import table_open

    count = 0
    with path.open("rb") as source:
        for _row in table_open(source).rows:
            count += 1
    return count


def _parse_all(kind, path: Path) -> int:
    from members.importing import runner
    from members.importing.files import table_open

    count = errors = 0
    with path.open("rb") as source:
        table = table_open(source)
        cmap = runner.columns_map(kind, table.header)
        # The runner compiles the columns once per file when it can; else row by row.
        parse = (
            runner._row_parser(kind, cmap) if hasattr(runner, "_row_parser")
            else (lambda row: runner._row_parse(kind, cmap, row))
        )
        for row in table.rows:
            _values, row_errors = parse(row)
            count += 1
            errors += len(row_errors)
    if errors:
        raise SystemExit(f"{errors} cell errors in a file that has none: a parser is wrong")
    return count


def _group_all(kind, path: Path) -> int:
    from members.importing import runner
    from members.importing.files import table_open

    rows = 0
    with path.open("rb") as source:
        table = table_open(source)
        cmap = runner.columns_map(kind, table.header)
        for record in runner._records(kind, cmap, table.rows):
            rows += len(record.rows)
    return rows


def _preview_all(kind, path: Path) -> int:
    from members.importing import runner
    from members.importing.files import table_open

    with path.open("rb") as source:
        table = table_open(source)
        cmap = runner.columns_map(kind, table.header)
        tally = runner.Tally(headers=cmap.headers)
        for batch in runner._batches(runner._records(kind, cmap, table.rows), kind.batch_rows):
            for record in batch:
                if record.errors:
                    raise SystemExit(f"errors in a file that has none: {record.errors[:3]}")
                tally.add(record)
    return tally.rows


def _plan_all(kind, path: Path) -> int:
    """(e) (d) plus the purchases kind's pure-Python check of each record (``_plan``), with
    its stores, categories and members made up instead of read from the database."""
    from members.importing import runner
    from members.importing.files import table_open

    checker = kind()
    checker.stores = {code: number for number, code in enumerate(STORES, 1)}
    checker.stores_folded = {code.upper(): pk for code, pk in checker.stores.items()}
    checker.categories = {code: number for number, code in enumerate(CATEGORIES, 1) if code}
    members: dict[str, dict] = {}
    with path.open("rb") as source:
        table = table_open(source)
        cmap = runner.columns_map(kind, table.header)
        tally = runner.Tally(headers=cmap.headers)
        for batch in runner._batches(runner._records(kind, cmap, table.rows), kind.batch_rows):
            for record in batch:
                card = record.values.get("card_number")
                if card and card not in members:
                    members[card] = {"id": len(members) + 1, "card_number": card,
                                     "status": "active"}
                if checker._plan(record, members) is None:
                    raise SystemExit(f"_plan refused a good record: {record.errors[:3]}")
                tally.add(record)
    return tally.rows


def cpu_seconds() -> float:
    return time.process_time()


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def timed(function, repeat: int) -> tuple[float, float, int]:
    """Return the best wall seconds, the CPU seconds of that run, and the rows counted."""
    best = None
    for _ in range(repeat):
        cpu = cpu_seconds()
        started = time.perf_counter()
        rows = function()
        result = (time.perf_counter() - started, cpu_seconds() - cpu, rows)
        if best is None or result[0] < best[0]:
            best = result
    return best


GOAL_ROWS_PER_SECOND = 30_000  # reading, parsing and grouping (stage c), issue #3


def stages_run(kind, path: Path, rows: int, repeat: int, *, is_csv: bool) -> None:
    stages = []
    if is_csv:
        stages.append(("a. csv module alone", lambda: stage_csv(path)))
    stages += [
        ("a. table_open rows", lambda: stage_open(path)),
        ("b. table_open + _row_parse", lambda: _parse_all(kind, path)),
        ("c. + _records (grouping)", lambda: _group_all(kind, path)),
        ("d. + _batches + Tally (preview)", lambda: _preview_all(kind, path)),
        ("e. + PurchasesKind._plan", lambda: _plan_all(kind, path)),
    ]
    print(f"  {'stage':<34}{'seconds':>9}{'rows/s':>10}{'CPU s':>8}{'rows/CPU s':>12}"
          f"  load average")
    for label, function in stages:
        seconds, cpu, counted = timed(function, repeat)
        if counted != rows:
            raise SystemExit(f"{label}: {counted} rows, expected {rows}")
        print(f"  {label:<34}{seconds:>9.2f}{rows / seconds:>10,.0f}{cpu:>8.2f}"
              f"{rows / max(cpu, 1e-9):>12,.0f}  {load_average()}")
        if is_csv and label.startswith("c."):
            print(f"  {'':<34}goal {GOAL_ROWS_PER_SECOND:,} rows/s: "
                  f"{'reached' if rows / seconds >= GOAL_ROWS_PER_SECOND else 'NOT reached'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--purchases", type=int, default=100_000, help="receipts in the CSV")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="runs per stage; best is shown")
    parser.add_argument("--xlsx", type=int, default=0, metavar="N",
                        help="also time an XLSX of N receipts (0: none)")
    parser.add_argument("--profile", action="store_true",
                        help="print the per-function profile of stage d")
    parser.add_argument("--keep", metavar="DIR", help="write the files here and keep them")
    options = parser.parse_args()
    django_setup()
    from rewards.importing import PurchasesKind

    scratch = Path(options.keep or tempfile.mkdtemp(prefix="bench-parse-"))
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        run(options, scratch, PurchasesKind)
    finally:
        if not options.keep:
            shutil.rmtree(scratch, ignore_errors=True)


def run(options, scratch: Path, kind) -> None:
    """Write the files into ``scratch`` and time every stage over them."""
    path = scratch / "purchases.csv"
    started = time.perf_counter()
    rows = csv_write(path, options.purchases, options.seed)
    with path.open("rb") as check:
        assert check.read(3) == codecs.BOM_UTF8
    print(f"CSV: {rows:,} rows ({options.purchases:,} receipts, "
          f"{path.stat().st_size / 1e6:.1f} MB), written in {time.perf_counter() - started:.1f} s;"
          f" load average {load_average()}")
    stages_run(kind, path, rows, options.repeat, is_csv=True)
    if options.xlsx:
        xlsx = scratch / "purchases.xlsx"
        started = time.perf_counter()
        xlsx_rows = xlsx_write(xlsx, options.xlsx, options.seed)
        print(f"XLSX: {xlsx_rows:,} rows ({options.xlsx:,} receipts, "
              f"{xlsx.stat().st_size / 1e6:.1f} MB), written in "
              f"{time.perf_counter() - started:.1f} s")
        stages_run(kind, xlsx, xlsx_rows, options.repeat, is_csv=False)
    if options.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        _preview_all(kind, path)
        profiler.disable()
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(25)
        print(out.getvalue())


if __name__ == "__main__":
    main()
