"""Django's SQLite backend, with write transactions handed over in this process by a lock.

SQLite lets one writer in at a time. A writer that finds the database locked waits in SQLite's
busy handler, which sleeps 1, 2, 5 … up to 100 ms between tries and is not woken when the
lock frees: with 30 students' API calls and the control plane writing at once, calls queued
for seconds behind sleeps while the database sat idle (bench/bench_labs.py). Here every write
transaction of this process first takes one process-wide lock (``BEGIN IMMEDIATE`` under it,
released at commit or rollback), and so does a single write statement outside a transaction:
a waiting writer is woken the moment the last one commits. Another process (a management
command, a second server) still meets SQLite's own busy wait, as before.

``reading()`` (in ``orchestrator.state_database``) opens the next transaction DEFERRED and
outside the lock: a snapshot for reads, which in WAL mode never waits for a writer. Should it
write after all, it takes the lock before its first write.
"""
import collections
import contextlib
import logging
import os
import sys
import threading
import time

from django.db.backends.sqlite3 import base


class TurnLock:
    """A lock handed to its waiters in the order they came (a plain Lock lets a thread that just
    released it take it again ahead of one that has waited: under a class's load, a writer was
    seen passed over for a minute), an ``urgent`` waiter before the others.

    Urgent is a writer someone is waiting on (an API call, a check's tick: ``foreground()``);
    the others are the control plane's background writes (a task's state, a heartbeat, the load
    balancer's health), which nobody's answer waits for. Under a class's load, every API call
    queued behind dozens of them (bench/bench_labs.py). A plain waiter is passed over at most
    ``PASSES`` times in a row, so the control plane still gets one turn in ``PASSES + 1`` while
    the API keeps the lock busy."""

    PASSES = 8

    def __init__(self):
        self._mutex = threading.Lock()
        self._waiting = collections.deque()  # plain waiters, in the order they came
        self._urgent = collections.deque()  # urgent waiters, in the order they came
        self._held = False
        self._passed = 0  # urgent hand-overs in a row while a plain waiter waited

    def acquire(self, timeout=-1, urgent=False):
        """Take the lock in turn (an ``urgent`` caller ahead of plain ones); False when
        ``timeout`` seconds passed first."""
        with self._mutex:
            if not self._held and not self._waiting and not self._urgent:
                self._held = True
                return True
            turn = threading.Lock()
            turn.acquire()
            (self._urgent if urgent else self._waiting).append(turn)
        if turn.acquire(timeout=timeout):
            return True  # handed over by release()
        with self._mutex:
            for queue in (self._urgent, self._waiting):
                if turn in queue:
                    queue.remove(turn)
                    return False
        return True  # handed over just as the wait ended

    def release(self):
        """Hand the lock to the urgent writer that has waited longest, or to the plain one that
        has (when there is no urgent one, or it was passed over ``PASSES`` times); or free it."""
        with self._mutex:
            if self._urgent and (not self._waiting or self._passed < self.PASSES):
                if self._waiting:
                    self._passed += 1
                self._urgent.popleft().release()
            elif self._waiting:
                self._passed = 0
                self._waiting.popleft().release()
            else:
                self._held = False

    def locked(self):
        with self._mutex:
            return self._held

    def waiting(self):
        """How many wait: (urgent, plain)."""
        with self._mutex:
            return len(self._urgent), len(self._waiting)


# Whether this thread's writes are urgent (``foreground()``): a count, for nesting.
_foreground = threading.local()


def in_foreground():
    return getattr(_foreground, "depth", 0) > 0


@contextlib.contextmanager
def foreground():
    """This thread's turns at the write lock go before the control plane's (``TurnLock``)."""
    _foreground.depth = getattr(_foreground, "depth", 0) + 1
    try:
        yield
    finally:
        _foreground.depth -= 1


log = logging.getLogger("orchestrator.state_database")
# Every turn at the write lock, at INFO (bench/bench_labs.py counts them): who took it (the thread's
# kind and the first frame of the lab's own code that asked), how long it waited and held it.
turn_log = logging.getLogger("orchestrator.state_database.turns")
_SKIPPED_FRAMES = (os.sep + "django" + os.sep, os.sep + "state_database" + os.sep, os.sep + "contextlib.py",
                   os.sep + "asgiref" + os.sep)


def _asker():
    """``thread kind:module.function`` of the lab's code that asked for the turn."""
    frame = sys._getframe(2)
    while frame is not None and any(part in frame.f_code.co_filename for part in _SKIPPED_FRAMES):
        frame = frame.f_back
    where = "?"
    if frame is not None:
        module = frame.f_globals.get("__name__", "?")
        where = f"{module}.{frame.f_code.co_name}"
    return f"{threading.current_thread().name.rstrip('0123456789').rstrip('-_ ')}:{where}"
# A turn held longer than this is logged: every other writer of the process waited for it.
LONG_TURN_SECONDS = 5.0

# One writer at a time in this process; waits no longer than the database's busy timeout, then
# leaves the wait to SQLite (so a writer stuck in a transaction can never hang the others).
WRITE_LOCK = TurnLock()
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER")


def _is_write(sql):
    return sql.lstrip()[:7].upper().startswith(_WRITES)


class LockingCursor(base.SQLiteCursorWrapper):
    """A cursor whose write statements outside a write transaction take the process's lock."""

    wrapper = None

    def execute(self, query, params=None):
        if self.wrapper is None or self.wrapper.holds_write_lock or not _is_write(query):
            return super().execute(query, params)
        if self.wrapper.in_atomic_block:  # a deferred (reading) transaction that writes after all
            self.wrapper.take_write_lock()
            return super().execute(query, params)
        with self.wrapper.write_lock():
            return super().execute(query, params)

    def executemany(self, query, param_list):
        if self.wrapper is None or self.wrapper.holds_write_lock or not _is_write(query):
            return super().executemany(query, param_list)
        if self.wrapper.in_atomic_block:
            self.wrapper.take_write_lock()
            return super().executemany(query, param_list)
        with self.wrapper.write_lock():
            return super().executemany(query, param_list)


class _Held:
    """Holds the process's write lock for one autocommit statement."""

    def __init__(self, wrapper):
        self.wrapper = wrapper

    def __enter__(self):
        self.wrapper.take_write_lock()

    def __exit__(self, *exc):
        self.wrapper.release_write_lock()


class DatabaseWrapper(base.DatabaseWrapper):
    """SQLite, one writer at a time per process (see the module docstring)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.holds_write_lock = False
        self._turn_began = 0.0
        self._turn_waited = 0.0
        self._turn_asker = ""
        self._deferred = False

    def lock_timeout(self):
        return float(self.settings_dict.get("OPTIONS", {}).get("timeout", 5))

    def take_write_lock(self):
        """Take the process's write lock (once per connection); after the busy timeout, go on
        without it and let SQLite's own wait decide."""
        if not self.holds_write_lock:
            asked = time.monotonic()
            self.holds_write_lock = WRITE_LOCK.acquire(timeout=self.lock_timeout(), urgent=in_foreground())
            self._turn_began = time.monotonic()
            self._turn_waited = self._turn_began - asked
            if turn_log.isEnabledFor(logging.INFO):
                self._turn_asker = _asker()
            if not self.holds_write_lock:
                log.warning("no turn at the write lock after %.0f s (%s): SQLite's own wait decides",
                            self._turn_began - asked, threading.current_thread().name)

    def release_write_lock(self):
        if self.holds_write_lock:
            self.holds_write_lock = False
            WRITE_LOCK.release()
            held = time.monotonic() - self._turn_began
            if self._turn_asker:
                turn_log.info("turn by=%s waited=%.4f held=%.4f", self._turn_asker, self._turn_waited, held)
                self._turn_asker = ""
            if held > LONG_TURN_SECONDS:
                log.warning("%s held the write lock for %.1f s: every other writer waited",
                            threading.current_thread().name, held)

    def write_lock(self):
        return _Held(self)

    def defer_next_transaction(self):
        """Open the next transaction DEFERRED, without the write lock (``reading()``)."""
        self._deferred = True

    def create_cursor(self, name=None):
        cursor = self.connection.cursor(factory=LockingCursor)
        cursor.wrapper = self
        return cursor

    def _start_transaction_under_autocommit(self):
        if self._deferred:
            self._deferred = False
            self.cursor().execute("BEGIN DEFERRED")
            return
        self.take_write_lock()
        try:
            super()._start_transaction_under_autocommit()
        except BaseException:
            self.release_write_lock()
            raise

    def _set_autocommit(self, autocommit):
        try:
            super()._set_autocommit(autocommit)
        finally:
            if autocommit:  # the transaction is over (committed or rolled back)
                self.release_write_lock()

    def _close(self):
        try:
            return super()._close()
        finally:
            self.release_write_lock()
