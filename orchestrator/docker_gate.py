"""A fair share of Docker's container operations among accounts (one gate per engine).

The agents' queue already lets one account hold no more than its fair share of the workers
while another account has work (``workqueue``). A share of workers is not a share of Docker,
though: an account whose burst took the workers before another account's task arrived keeps
them for the whole of each pass, and every pass goes on to its next ``docker create`` and
``docker start`` (CPU-bound in dockerd) while the other account's task starts beside them.

So each container create, start and remove of a task goes through its engine's gate:
- an account may have at most ``limit`` of these operations in progress at once (the same
  number as the agents' per-account workers: the machine's cores by default);
- while other accounts also have one in progress or waiting, or a task starting (``presence``:
  a pass between its create and its start), at most its fair share (``limit`` divided among
  them, at least one each): a bursting account's next operation waits until its in-progress
  ones are below that share, and another account's operation never waits behind it;
- an account's own operations go in the order they asked (its oldest task's first).

An account alone is never held back by the gate beyond ``limit`` (the workers already are).
The gate is in-process (one control plane acts on an engine at a time: the lease).
"""
import contextlib
import itertools
import threading
from collections import Counter, deque

from django.conf import settings


class DockerGate:
    """Per-account slots for one engine's container operations (see the module's text)."""

    def __init__(self, limit):
        self.limit = max(1, int(limit))
        self._cond = threading.Condition()
        self._holding = Counter()  # account -> operations in progress
        self._present = Counter()  # account -> passes starting a task (between create and start)
        self._waiting = {}  # account -> deque of tickets, oldest first
        self._tickets = itertools.count()

    def _share_locked(self, account):
        accounts = set(self._waiting) | {a for a, n in self._holding.items() if n} \
            | {a for a, n in self._present.items() if n} | {account}
        return max(1, self.limit // len(accounts))

    def _may_go_locked(self, account, ticket):
        return self._waiting[account][0] == ticket and self._holding[account] < self._share_locked(account)

    @contextlib.contextmanager
    def operation(self, account):
        """Hold one of ``account``'s slots for one Docker operation (blocks for its turn)."""
        with self._cond:
            ticket = next(self._tickets)
            self._waiting.setdefault(account, deque()).append(ticket)
            try:
                self._cond.wait_for(lambda: self._may_go_locked(account, ticket))
            finally:
                queue = self._waiting[account]
                queue.remove(ticket)
                if not queue:
                    del self._waiting[account]
                self._cond.notify_all()  # the next of this account, or shares that changed
            self._holding[account] += 1
        try:
            yield
        finally:
            self._leave(self._holding, account)

    @contextlib.contextmanager
    def presence(self, account):
        """Count ``account`` among those sharing the gate for a while (a task being started:
        its create, its start and the steps between them), without holding a slot."""
        with self._cond:
            self._present[account] += 1
            self._cond.notify_all()
        try:
            yield
        finally:
            self._leave(self._present, account)

    def _leave(self, counter, account):
        """One of ``account``'s slots or presences ends: the others may go."""
        with self._cond:
            counter[account] -= 1
            if not counter[account]:
                del counter[account]
            self._cond.notify_all()

    def state(self):
        """(operations in progress, operations waiting) per account, for tests and the dashboard."""
        with self._cond:
            return dict(self._holding), {a: len(q) for a, q in self._waiting.items()}


_gates = {}
_gates_lock = threading.Lock()


def gate(engine_url):
    """The gate of the engine at ``engine_url`` (one per engine and process)."""
    with _gates_lock:
        found = _gates.get(engine_url)
        if found is None:
            found = _gates[engine_url] = DockerGate(settings.FARGATE_LAB["TENANT_WORKERS"])
        return found
