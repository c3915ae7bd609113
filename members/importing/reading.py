"""Reading an import file ahead of writing it: the next batches are parsed by a second
thread while the database writes the current one.

Parsing is Python, and writing a batch is mostly waiting for PostgreSQL, during which
Python lets another thread run; on a machine with two cores the file's parsing then
costs the import almost nothing.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

from django.db import connections
from django.utils import timezone, translation

Item = TypeVar("Item")

# How many parsed batches may wait: enough to keep the writer busy, few enough to keep
# memory flat whatever the file's size.
DEPTH = 2

_END = object()


@contextmanager
def batches_read_ahead(batches: Iterator[Item], depth: int = DEPTH):
    """Yield an iterator over ``batches``, produced by a second thread up to ``depth``
    items ahead of the caller.

    The thread runs in the caller's language and time zone, so messages and dates come
    out as they would in the caller; an exception while reading (a broken file) is
    raised to the caller in its place, after the items read before it. Leaving the
    block stops the thread (and waits for it) before the caller closes the file.
    """
    language = translation.get_language()
    zone = timezone.get_current_timezone()
    handoff: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def hand(item) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            with translation.override(language), timezone.override(zone):
                for batch in batches:
                    if not hand((batch, None)):
                        return
            hand((_END, None))
        except BaseException as error:  # noqa: BLE001 - raised again in the caller
            hand((_END, error))
        finally:
            connections.close_all()  # this thread's own, should reading have opened one

    def received() -> Iterator[Item]:
        while True:
            batch, error = handoff.get()
            if batch is _END:
                if error is not None:
                    raise error
                return
            yield batch

    reader = threading.Thread(target=read, name="import-reader", daemon=True)
    reader.start()
    try:
        yield received()
    finally:
        stop.set()
        reader.join()


__all__ = ["DEPTH", "batches_read_ahead"]
