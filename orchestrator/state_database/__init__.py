"""The embedded state database's engine: Django's SQLite backend with one writer at a time per
process, handed over without SQLite's sleeping busy wait (see ``base``), and the two shapes of
transaction an API call takes: ``reading()`` for a call that only reads, ``one_turn()`` for one
that writes."""
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


# API operations that read only (they write their activity row and nothing else).
READ_PREFIXES = ("Describe", "List", "Get", "BatchGet", "Discover")


def reads_only(operation):
    """Whether an API operation (``DescribeClusters``, ``api.DescribeTargetHealth``…) only reads."""
    return operation.rpartition(".")[2].startswith(READ_PREFIXES)


@contextlib.contextmanager
def one_turn(operation):
    """The whole of an API call that writes, its activity rows included, in one transaction: one
    turn at the write lock instead of one per write. Thirty students' calls at once then queue
    once each, in turn, instead of each rejoining the queue for its trace rows, which kept every
    call waiting until nearly all were done (bench/bench_labs.py). A call that only reads takes
    no turn here (its reads are ``reading()``'s, its activity row a turn of its own)."""
    if reads_only(operation):
        yield
        return
    with transaction.atomic():
        yield
