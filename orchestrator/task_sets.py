"""Task sets of the EXTERNAL deployment controller, as the cluster manager keeps them: a pure
plan over plain data, like ``deployments.plan_rollout``.

An external controller decides what runs (CreateTaskSet, UpdateTaskSet, DeleteTaskSet); the
service scheduler only keeps each task set at its computedDesiredCount, with no rolling limits
between them: blue and green run side by side until the controller scales or deletes one.
Kubernetes counterpart: two Deployments' ReplicaSet controllers, each keeping its replicas.
"""
from dataclasses import dataclass, field

KEPT = ("PRIMARY", "ACTIVE")  # a task set kept at its count
DRAINING = "DRAINING"  # deleted: its tasks stop, then it is INACTIVE


@dataclass(frozen=True)
class SetTask:
    """What the plan needs to know of one live (not STOPPED, desired RUNNING) task."""

    key: object
    task_set: str  # its task set's id ("" or an INACTIVE one's: an orphan)
    running: bool
    created_order: int = 0  # larger is newer
    protected: bool = False  # task scale-in protection in force


@dataclass
class TaskSetStep:
    """One pass: start this many tasks in each task set, stop these, retire these task sets."""

    start: dict = field(default_factory=dict)  # task set id -> how many
    stop: list = field(default_factory=list)
    retire: list = field(default_factory=list)
    steady: bool = False


def plan_task_sets(task_sets, tasks, unstopped_sets=(), stopping=0):
    """One pass over an EXTERNAL service.

    ``task_sets``: (id, status, computedDesiredCount) of its task sets that are not INACTIVE;
    ``tasks``: its live tasks; ``unstopped_sets``: the task set of every task not STOPPED yet
    (stopping ones included); ``stopping``: how many are on their way out.
    1. A task of no live task set stops (its task set was deleted).
    2. Each kept task set starts what it lacks, and stops its surplus (not yet running and
       newest first; protected tasks never, as in a scale-in).
    3. A DRAINING task set's tasks all stop; it retires once none is left.
    4. Steady: each kept task set runs exactly its count, all RUNNING, nothing else alive.
    """
    step = TaskSetStep()
    wanted = {ident: (count if status in KEPT else 0) for ident, status, count in task_sets}
    by_set = {}
    for task in tasks:
        by_set.setdefault(task.task_set if task.task_set in wanted else None, []).append(task)
    step.stop += [t.key for t in by_set.pop(None, [])]
    for ident, status, _ in task_sets:
        mine = by_set.get(ident, [])
        surplus = len(mine) - wanted[ident]
        if surplus < 0:
            step.start[ident] = -surplus
        elif surplus > 0:
            unprotected = [t for t in mine if not t.protected or status == DRAINING]
            step.stop += [t.key for t in sorted(unprotected, key=lambda t: (t.running, -t.created_order))[:surplus]]
        if status == DRAINING and ident not in unstopped_sets:
            step.retire.append(ident)
    step.steady = (not step.start and not step.stop and not stopping and all(t.running for t in tasks)
                   and all(len(by_set.get(i, [])) == wanted[i] for i in wanted))
    return step
