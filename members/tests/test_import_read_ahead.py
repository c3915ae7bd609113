"""The import reads its file ahead in a second thread: same batches, same order, the
same errors at the same place, in the importing user's language."""

import threading

import pytest
from django.utils import translation

from members.importing.files import ImportFileError
from members.importing.reading import batches_read_ahead


def test_batches_come_in_order_and_all_of_them():
    with batches_read_ahead(iter(range(50)), depth=2) as batches:
        assert list(batches) == list(range(50))


def test_an_error_while_reading_comes_after_the_batches_before_it():
    def broken():
        yield 1
        yield 2
        raise ImportFileError("The CSV file cannot be read at row %(row)s.", row=3)

    got = []
    with pytest.raises(ImportFileError, match="row 3"), batches_read_ahead(broken()) as batches:
        for batch in batches:
            got.append(batch)
    assert got == [1, 2]


def test_reading_happens_in_the_callers_language():
    def languages():
        for _ in range(3):
            yield translation.get_language()

    with translation.override("ru"), batches_read_ahead(languages()) as batches:
        assert list(batches) == ["ru", "ru", "ru"]


def test_leaving_early_stops_the_reader():
    produced = []

    def endless():
        n = 0
        while True:
            produced.append(n)
            yield n
            n += 1

    with batches_read_ahead(endless(), depth=2) as batches:
        assert next(batches) == 0
    # The reader has stopped: it neither runs on nor keeps reading the (closed) file.
    assert not [t for t in threading.enumerate() if t.name == "import-reader"]
    stopped_at = len(produced)
    assert stopped_at <= 5
