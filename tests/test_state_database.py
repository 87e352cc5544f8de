"""The embedded state database's engine: one writer at a time per process, handed over by a
lock; reading transactions take no lock (orchestrator/state_database)."""
import threading

import pytest
from django.db import connection, connections, transaction

from orchestrator import state_database
from orchestrator.models import Account
from orchestrator.state_database.base import WRITE_LOCK, TurnLock
from tests.support.common import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.sqlite]


def in_thread(work):
    """Run ``work`` in a thread of its own (its own connection); returns (thread, done event, errors)."""
    done, errors = threading.Event(), []

    def run():
        try:
            work()
        except Exception as exc:  # reported to the test, which fails on it
            errors.append(exc)
        finally:
            connections.close_all()
            done.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, done, errors


class Writer:
    """A transaction held open in a thread until ``finish`` is called."""

    def __init__(self, account_id):
        self.began, self.release = threading.Event(), threading.Event()
        self.thread, self.done, self.errors = in_thread(lambda: self.write(account_id))

    def write(self, account_id):
        with transaction.atomic():
            Account.objects.create(account_id=account_id, name=account_id)
            self.began.set()
            self.release.wait(30)

    def finish(self):
        self.release.set()
        self.done.wait(30)
        assert not self.errors


def test_it_uses_wal_and_its_own_engine():
    assert connection.vendor == "sqlite"
    assert type(connections["default"]).__module__ == "orchestrator.state_database.base"
    with connection.cursor() as cursor:
        assert cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_second_writer_waits_for_the_first_to_commit_then_goes_at_once():
    first = Writer("111111111111")
    first.began.wait(30)
    assert WRITE_LOCK.locked()
    _, second_done, second_errors = in_thread(lambda: Account.objects.create(account_id="222222222222", name="b"))
    # The second writer is held by the process's lock, not by SQLite: the first holds the lock.
    assert not second_done.wait(0.3)
    first.finish()
    wait_until(second_done.is_set, timeout=10, message="the second write after the first committed")
    assert not second_errors
    assert set(Account.objects.values_list("account_id", flat=True)) >= {"111111111111", "222222222222"}
    assert not WRITE_LOCK.locked()


def test_a_reading_transaction_reads_while_a_writer_holds_the_lock():
    Account.objects.create(account_id="333333333333", name="c")
    writer = Writer("444444444444")
    writer.began.wait(30)
    seen = []

    def read():
        with state_database.reading():
            seen.extend(Account.objects.values_list("account_id", flat=True))

    _, done, errors = in_thread(read)
    wait_until(done.is_set, timeout=10, message="the read while the writer holds its transaction")
    assert not errors
    assert "333333333333" in seen and "444444444444" not in seen  # a snapshot: the uncommitted row is not seen
    assert WRITE_LOCK.locked()  # still the writer's
    writer.finish()


def test_a_reading_transaction_that_writes_takes_the_lock_until_it_ends():
    with state_database.reading():
        assert not WRITE_LOCK.locked()
        Account.objects.create(account_id="555555555555", name="e")
        assert WRITE_LOCK.locked() and connection.holds_write_lock
    assert not WRITE_LOCK.locked()
    assert Account.objects.filter(account_id="555555555555").exists()


def test_the_lock_is_released_when_the_transaction_rolls_back():
    with pytest.raises(ZeroDivisionError):
        with transaction.atomic():
            Account.objects.create(account_id="666666666666", name="f")
            assert WRITE_LOCK.locked()
            1 / 0
    assert not WRITE_LOCK.locked()
    assert not Account.objects.filter(account_id="666666666666").exists()


def test_a_write_outside_a_transaction_waits_for_the_lock_and_holds_it_for_one_statement():
    account = Account.objects.create(account_id="777777777777", name="g")
    assert not WRITE_LOCK.locked()
    writer = Writer("888888888888")
    writer.began.wait(30)
    _, done, errors = in_thread(lambda: Account.objects.filter(pk=account.pk).update(name="renamed"))
    assert not done.wait(0.3)
    writer.finish()
    wait_until(done.is_set, timeout=10, message="the autocommit update after the writer committed")
    assert not errors and not WRITE_LOCK.locked()
    assert Account.objects.get(pk=account.pk).name == "renamed"


def test_writers_get_the_lock_in_the_order_they_asked():
    lock, order = TurnLock(), []
    assert lock.acquire()
    threads = []
    for number in range(5):
        asked = threading.Event()

        def writer(number=number, asked=asked):
            asked.set()
            assert lock.acquire(timeout=10)
            order.append(number)
            lock.release()

        thread = threading.Thread(target=writer, daemon=True)
        thread.start()
        asked.wait(5)
        wait_until(lambda n=number: len(lock._waiting) == n + 1, timeout=5, message=f"writer {number} waiting")
        threads.append(thread)
    lock.release()
    for thread in threads:
        thread.join(10)
    assert order == [0, 1, 2, 3, 4] and not lock.locked()


def waiting_writers(lock, urgency, order):
    """Start one thread per entry of ``urgency`` (True: urgent), each waiting in turn for ``lock``
    (held) and appending its number to ``order`` once it has it; their threads."""
    threads = []
    for number, urgent in enumerate(urgency):
        def writer(number=number, urgent=urgent):
            assert lock.acquire(timeout=10, urgent=urgent)
            order.append(number)
            lock.release()

        thread = threading.Thread(target=writer, daemon=True)
        thread.start()
        wait_until(lambda n=number: sum(lock.waiting()) == n + 1, timeout=5, message=f"writer {number} waiting")
        threads.append(thread)
    return threads


def test_urgent_writers_get_the_lock_before_plain_ones_each_in_the_order_they_asked():
    lock, order = TurnLock(), []
    assert lock.acquire()
    threads = waiting_writers(lock, [False, True, False, True, True], order)
    assert lock.waiting() == (3, 2)
    lock.release()
    for thread in threads:
        thread.join(10)
    assert order == [1, 3, 4, 0, 2] and not lock.locked()


def test_a_plain_writer_is_passed_over_at_most_passes_times_in_a_row():
    lock, order = TurnLock(), []
    assert lock.acquire()
    urgency = [False] + [True] * (TurnLock.PASSES + 3)
    threads = waiting_writers(lock, urgency, order)
    lock.release()
    for thread in threads:
        thread.join(10)
    # The control plane's write goes after PASSES urgent ones, then the urgent ones go on.
    assert order == [*range(1, TurnLock.PASSES + 1), 0, *range(TurnLock.PASSES + 1, len(urgency))]
    assert not lock.locked()


def test_an_urgent_writer_that_waits_too_long_gives_up_its_turn():
    lock = TurnLock()
    assert lock.acquire()
    assert lock.acquire(timeout=0.05, urgent=True) is False
    assert lock.waiting() == (0, 0)
    lock.release()
    assert not lock.locked()


def test_a_foreground_thread_s_writes_take_urgent_turns(monkeypatch):
    asked = []
    acquire = WRITE_LOCK.acquire
    monkeypatch.setattr(WRITE_LOCK, "acquire", lambda timeout=-1, urgent=False: asked.append(urgent) or acquire(timeout, urgent))
    Account.objects.create(account_id="420000000001", name="plain")
    with state_database.foreground():
        Account.objects.create(account_id="420000000002", name="urgent")
        with transaction.atomic():
            Account.objects.filter(account_id="420000000002").update(name="still urgent")
        state_database.group_commit(lambda: Account.objects.create(account_id="420000000003", name="grouped"))
    with state_database.one_turn("CreateCluster"):
        Account.objects.create(account_id="420000000004", name="an API call's")
    with transaction.atomic():
        Account.objects.filter(account_id="420000000001").update(name="plain again")
    assert asked == [False, True, True, True, True, False]
    assert not WRITE_LOCK.locked()


def test_a_writer_that_waits_too_long_gives_up_its_turn():
    lock = TurnLock()
    assert lock.acquire()
    assert lock.acquire(timeout=0.05) is False
    assert not lock._waiting
    lock.release()
    assert not lock.locked() and lock.acquire(timeout=0) and lock.locked()


def test_small_writes_that_wait_for_one_turn_are_committed_together_each_returning_its_own(monkeypatch):
    turns = []
    acquire = WRITE_LOCK.acquire
    monkeypatch.setattr(WRITE_LOCK, "acquire", lambda timeout=-1, urgent=False: turns.append(1) or acquire(timeout, urgent))
    holder = Writer("400000000000")
    holder.began.wait(30)
    turns.clear()
    results, errors, lock = {}, {}, threading.Lock()

    def write(number):
        def create():
            if number == 3:
                raise ValueError("writer 3 fails")
            return Account.objects.create(account_id=f"40000000000{number}", name=str(number)).account_id

        try:
            found = state_database.group_commit(create)
            with lock:
                results[number] = found
        except ValueError as exc:
            with lock:
                errors[number] = str(exc)

    threads = [in_thread(lambda n=n: write(n)) for n in range(1, 6)]
    wait_until(lambda: len(state_database._group._waiting) == 5, timeout=10,
               message="five writers waiting: one for the turn, four behind it")
    holder.finish()
    for _, done, thread_errors in threads:
        assert done.wait(30) and not thread_errors
    assert results == {n: f"40000000000{n}" for n in (1, 2, 4, 5)}  # each got its own write's result
    assert errors == {3: "writer 3 fails"}  # raised in its own thread; the others are kept
    assert set(Account.objects.filter(account_id__startswith="40000000000").values_list("account_id", flat=True)) \
        == {"400000000000", "400000000001", "400000000002", "400000000004", "400000000005"}
    assert len(turns) == 1  # the five writes took one turn at the write lock
    assert not WRITE_LOCK.locked()


def test_inside_a_transaction_a_group_write_is_part_of_it():
    with transaction.atomic():
        state_database.group_commit(lambda: Account.objects.create(account_id="410000000000", name="x"))
        assert WRITE_LOCK.locked()
        transaction.set_rollback(True)
    assert not Account.objects.filter(account_id="410000000000").exists()
