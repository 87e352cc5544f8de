"""The check runner: re-evaluates a student's labs whenever their account's objects change.

It hears the change bus (``orchestrator.bus``), as the control plane and the dashboard's
broadcaster do: each change names an object; the runner finds the object's account and puts
the account's key on a work queue (a burst of writes is one evaluation). A worker re-reads the
account's state (level-triggered) and runs the checks of every lab its members have started
and not finished. A step whose check passes is ticked (once: ``StepTick``); what a step still
misses is kept in ``LabProgress.notes``. Either change is published on the bus as
``lab_progress``, so the lab page and the teacher's class page re-render at once.

Instances belong to the lab, not to an account: their changes re-evaluate every open lab.
The runner starts with the server (``start()`` from the lifespan); in a process that never
starts it (a management command, most tests), hearing the bus costs nothing.
"""
import logging
import re
import threading
import time
from functools import lru_cache

from django.db import close_old_connections, connection
from django.utils import timezone

from dashboard.fragments import log_failure
from orchestrator import bus, state_database
from orchestrator.workqueue import WorkQueue

log = logging.getLogger(__name__)
# Each tick's way from the change to the page, at INFO (bench/bench_labs.py reads it): when the
# runner heard the change on the bus, began the account's checks, had run them, committed the
# tick and published it (epoch seconds).
timing_log = logging.getLogger("classroom.runner.timing")

# One account is evaluated by one worker at a time (its key); a check that waits on a slow
# listener (Facts.status_of, at most URL_TIMEOUT) holds one worker, not the class.
WORKERS = 4
# Changes that arrive within this are one evaluation (a RunTask writes a task several times).
COALESCE_SECONDS = 0.05
# Kinds whose objects are an account's (the model's account field, or the path to it).
_OWNERS = {
    "task": ("orchestrator.Task", "account_id"),
    "service": ("orchestrator.Service", "account_id"),
    "cluster": ("orchestrator.Cluster", "account_id"),
    "task_definition": ("orchestrator.TaskDefinition", "account_id"),
    "deployment": ("orchestrator.Deployment", "service__account_id"),
    "load_balancer": ("orchestrator.LoadBalancer", "account_id"),
    "target_group": ("orchestrator.TargetGroup", "account_id"),
    "listener": ("orchestrator.Listener", "load_balancer__account_id"),
    "target": ("orchestrator.Target", "target_group__account_id"),
    "repository": ("orchestrator.Repository", "account_id"),
}
EVERYONE = {"instance"}
# Objects whose account the runner remembers (beyond this, it forgets them all and looks again).
OWNERS_KEPT = 100_000


class Runner:
    """A work queue of account keys and the threads that evaluate them."""

    def __init__(self, workers=WORKERS):
        self.queue = WorkQueue()
        self.workers = workers
        self.threads = []
        self.unsubscribe = None
        # What each waiting key is for: when its first change since was heard (epoch seconds, for
        # the timing log) and the kinds that changed (None: anything may have, so every check runs).
        self._pending = {}
        self._pending_lock = threading.Lock()
        # Object key -> its account's pk, once looked up (an object never changes account): the
        # next change of that object goes straight to its account's key, without a worker's lookup.
        self._owners = {}

    def _note(self, key, at, kinds):
        with self._pending_lock:
            heard, known = self._pending.get(key, (None, set()))
            if at is not None and (heard is None or at < heard):
                heard = at
            self._pending[key] = (heard, None if kinds is None or known is None else known | kinds)

    def _take(self, key):
        """(heard, kinds) of a key a worker took; (None, None) when nothing was noted."""
        with self._pending_lock:
            return self._pending.pop(key, (None, None))

    def start(self):
        self.unsubscribe = bus.subscribe(self.on_bus)
        for number in range(self.workers):
            thread = threading.Thread(target=self.work, name=f"lab-checks-{number}", daemon=True)
            thread.start()
            self.threads.append(thread)
        self.queue.add("open")  # whatever changed while no server ran

    def stop(self):
        if self.unsubscribe:
            self.unsubscribe()
        self.queue.shutdown()
        for thread in self.threads:
            thread.join(timeout=10)
        self.threads = []

    def on_bus(self, kind, pk, **info):
        """Bus subscriber (any thread): note what changed; the lookup happens on a worker. A change
        made in another server process (a shared bus) is that process's runner's to evaluate."""
        if info.get("remote"):
            return
        if kind in _OWNERS or (kind in EVERYONE and not info.get("heartbeat")):
            key = f"{kind}:{pk}"
            owner = self._owners.get(key)
            if owner is not None:
                key = f"account:{owner}"
            self._note(key, time.time(), {kind})
            self.queue.add_after(key, COALESCE_SECONDS)

    def work(self):
        while True:
            key = self.queue.get()
            if key is None:
                return
            try:
                self.handle(key)
            except Exception:  # the database is busy or a check is broken: the next change retries
                log.exception("lab checks for %s failed", key)
            finally:
                close_old_connections()
                self.queue.done(key)

    def handle(self, key):
        """An object's key → its account's key; an account's key → evaluate its open labs."""
        kind, _, value = key.partition(":")
        heard, kinds = self._take(key)
        if kind == "account":
            evaluate_account(int(value), heard, kinds)
        elif kind == "open" or kind in EVERYONE:
            for account_pk in open_accounts():
                self._note(f"account:{account_pk}", heard, kinds)
                self.queue.add(f"account:{account_pk}")
        else:
            account_pk = owner_of(kind, int(value))
            if account_pk is not None:
                if len(self._owners) >= OWNERS_KEPT:
                    self._owners.clear()
                self._owners[key] = account_pk
                self._note(f"account:{account_pk}", heard, kinds)
                self.queue.add(f"account:{account_pk}")


def owner_of(kind, pk):
    """The account pk of object ``kind``/``pk`` (None when it is gone or the lab's own)."""
    from django.apps import apps

    model, field = _OWNERS[kind]
    return apps.get_model(model).objects.filter(pk=pk).values_list(field, flat=True).first()


def open_accounts():
    """The accounts with a lab started and not finished."""
    from classroom.models import LabProgress

    return sorted(set(LabProgress.objects.filter(completed_at=None).values_list("account_id", flat=True)))


def evaluate_account(account_pk, heard=None, kinds=None):
    """Run the checks of every open lab of the account; publish each progress that changed.
    ``heard``: when the runner heard the change that asked for it (for the timing log); ``kinds``:
    the kinds of objects that changed (None: unknown, every check runs)."""
    from classroom.models import LabProgress

    for progress in LabProgress.objects.filter(account_id=account_pk, completed_at=None).select_related("account"):
        evaluate(progress, heard, kinds)


# What each check read the last time it answered "not yet": (progress pk, its start, step id) ->
# the kinds
# of objects its queries read (None: something the bus does not name, so it runs on any change).
# A check whose reads no change since touched would answer the same: it is not run again.
_reads = {}
_reads_lock = threading.Lock()
# Tables whose rows no change on the bus concerns and no check's answer depends on (an object's
# account, read to spell its ARN, never changes).
_UNCHANGING = {"orchestrator_account"}
_TABLE = re.compile(r'\b(?:FROM|JOIN)\s+"?(\w+)"?', re.IGNORECASE)


@lru_cache(maxsize=1)
def _kind_of_table():
    """{database table: the bus kind its changes are published as}."""
    from django.apps import apps

    found = {apps.get_model("orchestrator.ContainerInstance")._meta.db_table: "instance"}
    for kind, (label, _) in _OWNERS.items():
        model = apps.get_model(label)
        found[model._meta.db_table] = kind
        for field in model._meta.local_many_to_many:  # a listener's target groups are the listener's
            found[field.remote_field.through._meta.db_table] = kind
    return found


class _TablesRead:
    """An execute wrapper noting the tables every query reads."""

    def __init__(self):
        self.tables = set()

    def __call__(self, execute, sql, params, many, context):
        self.tables.update(name.lower() for name in _TABLE.findall(sql))
        return execute(sql, params, many, context)


def _kinds_read(tables, facts_kinds):
    """The bus kinds behind ``tables`` (and what Facts asked outside the database); None if any
    table is one the bus does not name."""
    kinds = set(facts_kinds)
    known = _kind_of_table()
    for table in tables - _UNCHANGING:
        if table not in known:
            return None
        kinds.add(known[table])
    return frozenset(kinds)


def _affected(progress, step_id, kinds):
    """Whether a change of ``kinds`` may change the step's answer (it has not answered yet, or it read one of them)."""
    if kinds is None:
        return True
    with _reads_lock:
        if _read_key(progress, step_id) not in _reads:
            return True
        read = _reads[_read_key(progress, step_id)]
    return read is None or bool(read & kinds)


def _read_key(progress, step_id):
    """A step of one run of a lab (a restart is a new run: its checks all run again)."""
    return progress.pk, progress.started_at, step_id


def evaluate(progress, heard=None, kinds=None):
    """Run the checks of ``progress``'s lab not yet ticked that a change of ``kinds`` may affect
    (every one when None); tick those that pass. True if anything shown changed (then published
    as ``lab_progress``)."""
    from classroom.checks import Facts, verdict_of
    from classroom.labs import get_lab

    lab = get_lab(progress.lab)
    if lab is None:
        return False
    started = time.time()
    facts = Facts(progress.account, progress.answers, progress.started_at)
    ticked = progress.ticked()
    notes, new = {}, {}
    for step in lab.steps:
        if step.id in ticked:
            continue
        if not _affected(progress, step.id, kinds):
            if step.id in progress.notes:
                notes[step.id] = progress.notes[step.id]
            continue
        tables, facts.kinds_read = _TablesRead(), set()
        try:
            with connection.execute_wrapper(tables):
                verdict = verdict_of(step.check(facts))
        except Exception as exc:  # a broken check must not stop the others; the student sees why
            log_failure(f"check {lab.slug}/{step.id} failed", exc)
            notes[step.id] = f"the check could not run: {type(exc).__name__}"
            with _reads_lock:
                _reads[_read_key(progress, step.id)] = None
            continue
        with _reads_lock:
            _reads[_read_key(progress, step.id)] = _kinds_read(tables.tables, facts.kinds_read)
        if verdict.passed:
            new[step.id] = verdict.detail
        elif verdict.detail:
            notes[step.id] = verdict.detail
    fields = []
    if notes != progress.notes:
        progress.notes = notes
        fields.append("notes")
    if (ticked | set(new)) >= set(lab.step_ids) and progress.completed_at is None:
        progress.completed_at = timezone.now()
        fields.append("completed_at")
    if not new and not fields:
        return False
    checked = time.time()
    def write():  # the ticks and the notes are seen together
        ticks = [step_id for step_id, detail in new.items() if progress.tick(step_id, detail)]
        progress.updated_at = timezone.now()
        progress.save(update_fields=[*fields, "updated_at"])
        return ticks

    # With the other workers' and the API's small writes, ahead of the control plane's: a student
    # waits for the tick (and a worker for its commit).
    with state_database.foreground():
        changed = state_database.group_commit(write)
    committed = time.time()
    bus.publish("lab_progress", progress.pk)
    if changed and timing_log.isEnabledFor(logging.INFO):
        published = time.time()
        for step_id in changed:
            timing_log.info("tick account=%s lab=%s step=%s heard=%.6f started=%.6f checked=%.6f committed=%.6f "
                            "published=%.6f", progress.account.account_id, lab.slug, step_id,
                            heard if heard is not None else started, started, checked, committed, published)
    return bool(changed or fields)


_runner = None
_lock = threading.Lock()


def start():
    """Start this process's runner once (the server's lifespan calls it)."""
    global _runner
    with _lock:
        if _runner is None:
            _runner = Runner()
            _runner.start()
    return _runner


def stop():
    global _runner
    with _lock:
        if _runner is not None:
            _runner.stop()
            _runner = None

