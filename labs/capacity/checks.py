"""Checks of lab 6, "Capacity": read from the capacity manager's own records (its decisions are
kept as activity rows: a task that waited, an instance launched) and the tasks' placement."""
from classroom.checks import not_yet, passed

BIG_CPU = 1024


def predicted(facts):
    if facts.answered("predict", 2):
        return passed("it waits, and the fleet grows")
    return not_yet("answer the question" if "predict" not in facts.quiz_answers else "not that one: try again")


def big_task(facts):
    task = facts.running_tasks(cpu__gte=BIG_CPU).first()
    if task:
        return passed(f"task {task.task_id[:8]} runs with {task.cpu} CPU units")
    return not_yet(f"no RUNNING task of {BIG_CPU} CPU units or more yet")


def _waits(facts):
    """The capacity manager's "no capacity" decisions about the account's tasks, oldest first."""
    arns = {task.arn: task for task in facts.tasks().select_related("account", "cluster")
            .filter(created_at__gte=facts.started_at)} if facts.started_at else {}
    waits = facts.activities("capacity_manager", "no-capacity", arns).filter(message__contains="waits")
    return [(row, arns[row.object_arn]) for row in waits.order_by("created_at")]


def task_waited(facts):
    waits = _waits(facts)
    if waits:
        row, task = waits[0]
        return passed(f"task {task.task_id[:8]} waited: {row.message.split(': ', 1)[-1]}")
    return not_yet("none of your tasks has waited for capacity yet")


def launched_for_it(facts):
    for row, task in _waits(facts):
        task.refresh_from_db()
        instance = task.container_instance
        if task.started_at and instance is not None and instance.registered_at >= row.created_at:
            return passed(f"task {task.task_id[:8]} runs on {instance.name}, launched after it waited")
    if _waits(facts):
        return not_yet("the task still waits for its instance")
    return not_yet("no task has waited yet")
