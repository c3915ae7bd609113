"""Running the same work from several database connections at once, for race tests."""

import threading

from django.db import connections


def run_in_threads(count: int, work) -> list:
    """Run ``work(i)`` in ``count`` threads started together; return what each returned
    or raised (the test inspects both)."""
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def target(i: int) -> None:
        try:
            barrier.wait()
            results[i] = work(i)
        except Exception as error:  # noqa: BLE001 - the test inspects what each thread got
            results[i] = error
        finally:
            connections.close_all()

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results
