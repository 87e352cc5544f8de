"""The embedded state database's engine: Django's SQLite backend with one writer at a time per
process, handed over without SQLite's sleeping busy wait (see ``base``)."""
import contextlib

from django.db import connection, transaction


@contextlib.contextmanager
def reading():
    """A read-only transaction: a consistent snapshot (WAL) that takes no write lock, so reads
    never queue behind writers (on other engines, a plain ``atomic``)."""
    defer = getattr(connection, "defer_next_transaction", None)
    if defer is not None and not connection.in_atomic_block:
        defer()
    with transaction.atomic():
        yield
