"""The embedded state database's engine: Django's SQLite backend with one writer at a time per
process, handed over without SQLite's sleeping busy wait (see ``base``), and the two shapes of
transaction an API call takes: ``reading()`` for a call that only reads, ``one_turn()`` for one
that writes.

The turns are SQLite's: it lets one writer in at a time, so this process's writers take turns
and small writes share one (``group_commit``). PostgreSQL lets writers in together (row locks
where they meet), so there every writer goes at once and nothing here serialises them; a
statement there is a round trip to another process, which on a busy machine waits for the
scheduler twice, so the shapes below also send it as few statements as they can."""
import contextlib
import threading

from django.db import connection, transaction

from orchestrator.state_database.base import foreground, in_foreground  # noqa: F401  (the API's and the checks')


def takes_turns():
    """Whether this state database lets one writer in at a time (SQLite), so that writers of
    this process take turns and small writes share one."""
    return connection.vendor == "sqlite"


@contextlib.contextmanager
def reading():
    """A read-only transaction: a consistent snapshot (WAL) that takes no write lock, so reads
    never queue behind writers. On PostgreSQL (READ COMMITTED: each statement has a snapshot of
    its own, in a transaction or not) the reads go in autocommit, without the BEGIN and COMMIT
    round trips; inside a transaction already, a savepoint as on SQLite."""
    if not takes_turns() and not connection.in_atomic_block:
        yield
        return
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
    no turn here (its reads are ``reading()``'s, its activity row a turn of its own). Either way
    its turns are ``foreground()``: a caller waits for them, so they go before the control plane's."""
    with foreground():
        if reads_only(operation):
            yield
            return
        with transaction.atomic():
            yield


class _GroupCommit:
    """Small writes of many threads committed together: one transaction, one turn at the write
    lock, for every write that asked while the one before was being committed (a database's
    group commit). Each writer's function runs in a savepoint of its own (one that raises is
    rolled back alone and its error raised in its thread) and each caller returns once its
    write is committed, as if it had written alone."""

    def __init__(self):
        self._mutex = threading.Lock()
        self._waiting = []  # [_Write] asked, not yet taken by a leader
        self._leading = False

    def run(self, write, synchronous=True):
        """Run ``write()`` (it writes the state database) committed; its result."""
        if connection.in_atomic_block:  # inside a transaction already: its commit is ours
            return write()
        if not takes_turns():  # writers go in together: a transaction of its own, at once
            with transaction.atomic():
                if not synchronous:
                    with connection.cursor() as cursor:
                        cursor.execute("SET LOCAL synchronous_commit TO OFF")
                return write()
        mine = _Write(write)
        with self._mutex:
            self._waiting.append(mine)
            lead = mine.leads = not self._leading
            self._leading = True
        if not lead:
            mine.done.wait()
        if mine.leads:
            self._lead()
        if mine.error is not None:
            raise mine.error
        return mine.result

    def _lead(self):
        """Commit everything waiting (this thread's own write among it), then hand the lead to the
        first writer that asked meanwhile, or give it up."""
        batch = []
        try:
            with transaction.atomic():  # the turn first: the batch is what asked until it came
                with self._mutex:
                    batch, self._waiting = self._waiting, []
                for write in batch:
                    try:
                        with transaction.atomic():
                            write.result = write.function()
                    except Exception as exc:  # that writer's own failure, raised in its thread
                        write.error = exc
        except Exception as exc:  # no turn, or the commit failed: every write of the batch did
            if not batch:
                with self._mutex:
                    batch, self._waiting = self._waiting, []
            for write in batch:
                write.error = write.error or exc
        finally:
            with self._mutex:
                following = self._waiting[0] if self._waiting else None
                self._leading = following is not None
                if following is not None:
                    following.leads = True
                    following.done.set()
            for write in batch:
                write.leads = False
                write.done.set()


class _Write:
    def __init__(self, function):
        self.function, self.result, self.error = function, None, None
        self.done, self.leads = threading.Event(), False


_group = _GroupCommit()  # the control plane's small writes
_foreground_group = _GroupCommit()  # those of callers in ``foreground()``: their batch takes an urgent turn


def group_commit(write, synchronous=True):
    """Run ``write()`` (a small write: an API call's trace rows, a check's tick) committed
    together with the other threads' writes that wait for the same turn (see ``_GroupCommit``);
    returns its result. Inside a transaction, it is simply part of it. Writes in ``foreground()``
    are batched among themselves, so that their turn is urgent (``TurnLock``). On PostgreSQL
    there is no turn to share: it commits in a transaction of its own, beside the other
    threads' (batching them there only made every thread of the process wait for one leader's
    connection).

    ``synchronous=False`` is for rows kept for watching only (a read call's trace rows): on
    PostgreSQL their commit does not wait for the WAL to reach the disk (``synchronous_commit``
    off for that transaction: a crash of the database server may lose the last ones, never
    half of one). That is what every commit on the embedded SQLite is already
    (``synchronous=NORMAL`` in WAL mode), and each fdatasync here waited 5 ms on a quiet disk,
    far more behind the other sessions' I/O: under 30 clients, commits were seen waiting for
    the WAL (``WALWrite``, ``WALSync``) in more samples of ``pg_stat_activity`` than any query.
    Claims, leases and an API call's own writes keep the default."""
    return (_foreground_group if in_foreground() else _group).run(write, synchronous)
