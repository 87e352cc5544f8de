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
import threading
import time

from django.db import close_old_connections, transaction
from django.utils import timezone

from dashboard.fragments import log_failure
from orchestrator import bus
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


class Runner:
    """A work queue of account keys and the threads that evaluate them."""

    def __init__(self, workers=WORKERS):
        self.queue = WorkQueue()
        self.workers = workers
        self.threads = []
        self.unsubscribe = None
        self._heard = {}  # key waiting -> when its first change since was heard (epoch seconds)
        self._heard_lock = threading.Lock()

    def _hear(self, key, at):
        with self._heard_lock:
            if at is not None and at < self._heard.get(key, float("inf")):
                self._heard[key] = at

    def _heard_of(self, key):
        with self._heard_lock:
            return self._heard.pop(key, None)

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
            self._hear(f"{kind}:{pk}", time.time())
            self.queue.add_after(f"{kind}:{pk}", COALESCE_SECONDS)

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
        heard = self._heard_of(key)
        if kind == "account":
            evaluate_account(int(value), heard)
        elif kind == "open" or kind in EVERYONE:
            for account_pk in open_accounts():
                self._hear(f"account:{account_pk}", heard)
                self.queue.add(f"account:{account_pk}")
        else:
            account_pk = owner_of(kind, int(value))
            if account_pk is not None:
                self._hear(f"account:{account_pk}", heard)
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


def evaluate_account(account_pk, heard=None):
    """Run the checks of every open lab of the account; publish each progress that changed.
    ``heard``: when the runner heard the change that asked for it (for the timing log)."""
    from classroom.models import LabProgress

    for progress in LabProgress.objects.filter(account_id=account_pk, completed_at=None).select_related("account"):
        evaluate(progress, heard)


def evaluate(progress, heard=None):
    """Run the checks of ``progress``'s lab not yet ticked; tick those that pass. True if anything
    shown changed (then published as ``lab_progress``)."""
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
        try:
            verdict = verdict_of(step.check(facts))
        except Exception as exc:  # a broken check must not stop the others; the student sees why
            log_failure(f"check {lab.slug}/{step.id} failed", exc)
            notes[step.id] = f"the check could not run: {type(exc).__name__}"
            continue
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
    with transaction.atomic():  # the ticks and the notes are seen together
        changed = [step_id for step_id, detail in new.items() if progress.tick(step_id, detail)]
        progress.updated_at = timezone.now()
        progress.save(update_fields=[*fields, "updated_at"])
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

