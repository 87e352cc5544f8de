"""The work queue: dedup, one worker per key, requeue after done, urgent keys first, delays,
backoff, shutdown."""
import threading
import time

from orchestrator.workqueue import WorkQueue
from tests.support.common import wait_until


def test_it_holds_a_waiting_key_once():
    queue = WorkQueue()
    queue.add("task:1")
    queue.add("task:1")
    queue.add("task:2")
    assert queue.pending_keys() == ["task:1", "task:2"]


def test_it_never_hands_a_key_to_two_workers_and_requeues_it_after_done():
    queue = WorkQueue()
    queue.add("task:1")
    assert queue.get(timeout=1) == "task:1"
    queue.add("task:1")  # changed while a worker processes it
    assert queue.get(timeout=0.05) is None  # not handed to a second worker
    queue.done("task:1")
    assert queue.get(timeout=1) == "task:1"  # processed again after done
    queue.done("task:1")
    assert queue.get(timeout=0.05) is None


def test_an_urgent_key_goes_before_the_waiting_ones():
    queue = WorkQueue()
    for pk in (1, 2, 3):
        queue.add(f"task:{pk}")
    queue.add("task:9", urgent=True)  # new: ahead of the plain keys
    queue.add("task:3", urgent=True)  # already waiting: moved ahead (after task:9), still held once
    queue.add("task:3")  # a plain add leaves it there
    assert queue.pending_keys() == ["task:9", "task:3", "task:1", "task:2"]
    assert [queue.get(timeout=1) for _ in range(4)] == ["task:9", "task:3", "task:1", "task:2"]


def test_an_urgent_key_added_while_processed_comes_back_first():
    queue = WorkQueue()
    queue.add("task:1")
    assert queue.get(timeout=1) == "task:1"
    queue.add("task:2")
    queue.add("task:1", urgent=True)  # asked to stop while a worker starts it
    queue.done("task:1")
    assert queue.pending_keys() == ["task:1", "task:2"]
    assert queue.get(timeout=1) == "task:1"
    queue.done("task:1")
    queue.add("task:1")  # urgency was spent by the pass that took it
    assert queue.pending_keys() == ["task:2", "task:1"]


def test_it_delays_keys():
    queue = WorkQueue()
    queue.add_after("service:1", 0.2)
    assert queue.get(timeout=0.05) is None
    started = time.monotonic()
    assert queue.get(timeout=2) == "service:1"
    assert time.monotonic() - started >= 0.1


def test_it_backs_off_a_failing_key_and_forgets_on_success():
    queue = WorkQueue(base_delay=0.01)
    queue.add_rate_limited("task:1")
    queue.add_rate_limited("task:1")
    queue.add_rate_limited("task:1")
    assert queue.num_requeues("task:1") == 3
    queue.forget("task:1")
    assert queue.num_requeues("task:1") == 0
    assert queue.get(timeout=1) == "task:1"


def test_it_wakes_blocked_workers_on_shutdown():
    queue = WorkQueue()
    results = []
    workers = [threading.Thread(target=lambda: results.append(queue.get())) for _ in range(3)]
    for worker in workers:
        worker.start()
    queue.shutdown()
    for worker in workers:
        worker.join(timeout=2)
    assert results == [None, None, None]
    queue.add("task:1")
    assert queue.get(timeout=0.05) is None


def test_it_processes_many_keys_in_parallel_exactly_once_at_a_time():
    queue = WorkQueue()
    active, seen, lock = set(), [], threading.Lock()
    overlaps = []

    def work():
        while (key := queue.get()) is not None:
            with lock:
                if key in active:
                    overlaps.append(key)
                active.add(key)
            time.sleep(0.001)  # hold the key a little, as a real pass would
            with lock:
                active.discard(key)
                seen.append(key)
            queue.done(key)

    workers = [threading.Thread(target=work) for _ in range(8)]
    for worker in workers:
        worker.start()
    for n in range(200):
        queue.add(f"task:{n % 20}")
    wait_until(lambda: not len(queue) and len(seen) >= 20, 5, message="the queue to drain")
    queue.shutdown()
    for worker in workers:
        worker.join(timeout=2)
    assert overlaps == []
    assert set(seen) == {f"task:{n}" for n in range(20)}


def tenant(key):
    return key.split(":")[1][0]  # "task:a1" belongs to tenant "a"


def test_it_serves_the_groups_in_turn():
    queue = WorkQueue(group_of=tenant)
    for key in ("task:a1", "task:a2", "task:a3", "task:b1"):
        queue.add(key)
    assert queue.pending_keys() == ["task:a1", "task:b1", "task:a2", "task:a3"]
    assert [queue.get(timeout=1) for _ in range(4)] == ["task:a1", "task:b1", "task:a2", "task:a3"]


def test_no_group_takes_more_workers_than_its_limit():
    queue = WorkQueue(group_of=tenant, group_limit=2)
    for key in ("task:a1", "task:a2", "task:a3"):
        queue.add(key)
    assert [queue.get(timeout=1), queue.get(timeout=1)] == ["task:a1", "task:a2"]
    assert queue.get(timeout=0.05) is None  # a3 waits: tenant a holds two workers
    queue.add("task:b1")
    assert queue.get(timeout=1) == "task:b1"  # another tenant's key goes at once
    queue.done("task:a1")
    assert queue.get(timeout=0.05) is None  # while b works, a's fair share is one of the two
    got = []
    worker = threading.Thread(target=lambda: got.append(queue.get(timeout=5)))
    worker.start()
    queue.done("task:b1")  # a is alone again: its second worker takes a3
    worker.join()
    assert got == ["task:a3"]


def test_a_tenant_alone_takes_the_limit_and_shares_it_once_another_has_work():
    queue = WorkQueue(group_of=lambda key: tenant(key) if key.startswith("task:") else "", group_limit=4)
    for key in ("task:a1", "task:a2", "task:a3", "task:a4", "task:a5", "task:a6"):
        queue.add(key)
    assert [queue.get(timeout=1) for _ in range(4)] == ["task:a1", "task:a2", "task:a3", "task:a4"]
    queue.add("task:b1")
    queue.add("task:b2")
    assert [queue.get(timeout=1), queue.get(timeout=1)] == ["task:b1", "task:b2"]  # b's share: two
    for key in ("task:a1", "task:a2", "task:a3"):
        queue.done(key)
    assert queue.get(timeout=1) == "task:a5"  # a is down to two workers, its share
    assert queue.get(timeout=0.05) is None
    queue.add("container:x")  # a key of no tenant takes no share from them, and goes
    assert queue.get(timeout=1) == "container:x"
    assert queue.get(timeout=0.05) is None
