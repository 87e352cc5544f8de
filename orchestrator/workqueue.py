"""A rate-limited work queue of keys, shaped like client-go's workqueue.

Event handlers only ``add`` a key ("task:12", "service:3", "placement"); workers ``get`` a
key, re-read the current state for it, act, and call ``done``. Guarantees:
1. a key waiting in the queue is held once (adding it again is a no-op);
2. a key is never handed to two workers at once;
3. a key added while a worker processes it is handed out again after ``done``;
4. ``add_after`` delays a key; ``add_rate_limited`` delays it with per-key exponential
   backoff (for retries after errors), which ``forget`` resets;
5. ``add(key, urgent=True)`` puts the key ahead of every plain key (a task to stop must not
   wait behind twenty container starts), or moves it there if it was already waiting; urgent
   keys keep their order among themselves;
6. with ``group_of`` (a key's tenant, e.g. its account), keys of different groups are handed
   out in turn, each group's in its own order, and with ``group_limit`` no group has more than
   that many keys processed at once, nor more than its fair share of them (the limit divided
   among the groups with keys waiting or processed, at least one each) while other groups have
   work: one tenant's burst of work leaves workers, and what they wait on, to the others
   (kube-apiserver's API Priority and Fairness does the same for requests). The group "" (keys
   of no tenant) is held to the limit but takes no share from the tenants.
7. ``add(key, trace=…)`` remembers the trace of whoever asked for the key (the first that gave
   one, while the key waits): ``trace_of(key)`` tells the worker that took it, until ``done``.
"""
import heapq
import itertools
import threading
import time
from collections import Counter, deque


class FairQueue:
    """Keys in one FIFO per group, handed out in turn: the group served longest ago goes next."""

    def __init__(self, group_of):
        self._group_of = group_of
        self._fifos = {}  # group -> deque of its keys
        self._turns = deque()  # the groups with keys, the next to serve first
        self._group_at = {}  # key -> its group when it was appended (``group_of`` may learn more later)

    def append(self, key):
        group = self._group_at[key] = self._group_of(key)
        fifo = self._fifos.get(group)
        if fifo is None:
            fifo = self._fifos[group] = deque()
            self._turns.append(group)
        fifo.append(key)

    def popleft(self, allowed=None):
        """The next key, from the first group in turn that ``allowed(group)`` lets through (None if none)."""
        for group in self._turns:
            if allowed is None or allowed(group):
                break
        else:
            return None
        self._turns.remove(group)
        fifo = self._fifos[group]
        key = fifo.popleft()
        del self._group_at[key]
        if fifo:
            self._turns.append(group)
        else:
            del self._fifos[group]
        return key

    def remove(self, key):
        group = self._group_at.pop(key)
        fifo = self._fifos[group]
        fifo.remove(key)
        if not fifo:
            del self._fifos[group]
            self._turns.remove(group)

    def groups(self):
        """The groups with keys waiting."""
        return set(self._fifos)

    def __len__(self):
        return sum(len(fifo) for fifo in self._fifos.values())

    def __bool__(self):
        return bool(self._turns)

    def __iter__(self):
        """The keys in the order they would be handed out (no group held back)."""
        fifos = {group: list(self._fifos[group]) for group in self._turns}
        while fifos:
            for group in list(fifos):
                yield fifos[group].pop(0)
                if not fifos[group]:
                    del fifos[group]


class WorkQueue:
    """Keys to process, deduplicated, each processed by one worker at a time."""

    def __init__(self, base_delay=0.05, max_delay=30.0, group_of=None, group_limit=None):
        self._cond = threading.Condition()
        # ``group_of`` is called with the lock held: it must be quick (a dictionary lookup).
        self._group_of = group_of or (lambda key: "")
        self._group_limit = group_limit
        self._queue = FairQueue(self._group_of)
        self._urgent_queue = FairQueue(self._group_of)  # handed out before ``_queue``
        self._in_flight = Counter()  # group -> keys being processed
        self._processing_group = {}  # key -> the group it was counted in
        self._dirty = set()  # keys waiting to be processed (queued, or to requeue after done)
        self._processing = set()
        self._urgent = set()  # dirty keys to hand out before the others
        self._delayed = []  # heap of (due, seq, key, trace)
        self._seq = itertools.count()
        self._failures = {}
        self._traces = {}  # waiting key -> the trace of whoever asked for it
        self._handed_traces = {}  # key being processed -> the trace it was handed out with
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._shutting_down = False

    def add(self, key, urgent=False, trace=""):
        """Queue ``key`` to be processed (once, however often it is added before a worker takes
        it); an ``urgent`` key goes to the front; ``trace`` is the asker's trace id."""
        with self._cond:
            self._add_locked(key, urgent, trace)

    def _add_locked(self, key, urgent=False, trace=""):
        if self._shutting_down:
            return
        if trace and not self._traces.get(key):
            self._traces[key] = trace
        if key in self._dirty:
            if urgent and key not in self._urgent:
                self._urgent.add(key)
                if key not in self._processing:
                    self._queue.remove(key)
                    self._urgent_queue.append(key)
            return
        self._dirty.add(key)
        if urgent:
            self._urgent.add(key)
        if key not in self._processing:
            self._enqueue_locked(key)

    def _enqueue_locked(self, key):
        (self._urgent_queue if key in self._urgent else self._queue).append(key)
        self._cond.notify()

    def add_after(self, key, delay, trace=""):
        """Queue ``key`` after ``delay`` seconds (for the trace ``trace``)."""
        if delay <= 0:
            self.add(key, trace=trace)
            return
        with self._cond:
            if self._shutting_down:
                return
            heapq.heappush(self._delayed, (time.monotonic() + delay, next(self._seq), key, trace))
            self._cond.notify_all()

    def add_rate_limited(self, key, trace=""):
        """Queue ``key`` again after a delay that doubles with each failure (a retry)."""
        with self._cond:
            failures = self._failures.get(key, 0)
            self._failures[key] = failures + 1
        self.add_after(key, min(self._base_delay * (2 ** failures), self._max_delay), trace=trace)

    def forget(self, key):
        """Reset the backoff of ``key`` (after it was processed successfully)."""
        with self._cond:
            self._failures.pop(key, None)

    def num_requeues(self, key):
        """How many times ``key`` was retried since it was last forgotten."""
        with self._cond:
            return self._failures.get(key, 0)

    def _promote_due_locked(self):
        """Move delayed keys whose time has come into the queue; returns seconds to the next one."""
        now = time.monotonic()
        while self._delayed and self._delayed[0][0] <= now:
            _, _, key, trace = heapq.heappop(self._delayed)
            self._add_locked(key, trace=trace)
        return self._delayed[0][0] - now if self._delayed else None

    def get(self, timeout=None):
        """The next key to process (blocks); None when shut down (or after ``timeout`` seconds)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                wait = self._promote_due_locked()
                if self._shutting_down:
                    return None
                key = self._take_locked()
                if key is not None:
                    self._dirty.discard(key)
                    self._urgent.discard(key)
                    self._processing.add(key)
                    group = self._processing_group[key] = self._group_of(key)
                    self._in_flight[group] += 1
                    self._handed_traces[key] = self._traces.pop(key, "")
                    return key
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return None
                    wait = left if wait is None else min(wait, left)
                self._cond.wait(wait)

    def _take_locked(self):
        """The next key to hand out (urgent first), skipping groups at their limit; None if none."""
        allowed = None
        if self._group_limit:
            tenants = ({g for g, n in self._in_flight.items() if n} | self._queue.groups()
                       | self._urgent_queue.groups()) - {""}
            share = max(1, self._group_limit // max(1, len(tenants)))
            allowed = lambda group: self._in_flight[group] < (share if group else self._group_limit)  # noqa: E731
        for queue in (self._urgent_queue, self._queue):
            if queue:
                key = queue.popleft(allowed)
                if key is not None:
                    return key
        return None

    def done(self, key):
        """Mark ``key`` processed; if it was added meanwhile, it goes back in the queue."""
        with self._cond:
            self._processing.discard(key)
            self._handed_traces.pop(key, None)
            group = self._processing_group.pop(key, None)
            if group is not None:
                self._in_flight[group] -= 1
                if not self._in_flight[group]:
                    del self._in_flight[group]
                if self._group_limit:
                    self._cond.notify_all()  # a key of this group held back may go now
            if key in self._dirty and not self._shutting_down:
                self._enqueue_locked(key)

    def trace_of(self, key):
        """The trace ``key`` was handed out with ("" when whoever asked gave none)."""
        with self._cond:
            return self._handed_traces.get(key, "")

    def shutdown(self):
        """Stop handing out keys: every blocked and future ``get`` returns None."""
        with self._cond:
            self._shutting_down = True
            self._cond.notify_all()

    @property
    def shutting_down(self):
        return self._shutting_down

    def __len__(self):
        with self._cond:
            return len(self._urgent_queue) + len(self._queue)

    def pending_keys(self):
        """The keys waiting now (for the dashboard and tests), in the order they will be handed out."""
        with self._cond:
            return list(self._urgent_queue) + list(self._queue)
