"""Checks of lab 2, "Self-healing": a service, a killed container, its replacement."""
from classroom.checks import not_yet, passed

MIN_TASKS = 2


def service_running(facts):
    for service in facts.services():
        running = facts.running_tasks(service=service).count()
        if service.desired_count >= MIN_TASKS and running >= MIN_TASKS:
            return passed(f"{service.name}: {running} tasks RUNNING")
    return not_yet(f"no service with {MIN_TASKS} RUNNING tasks yet")


def predicted(facts):
    if facts.answered("predict", 1):
        return passed("the ReplicaSet controller")
    return not_yet("answer the question" if "predict" not in facts.quiz_answers else "not that one: try again")


def _killed(facts):
    """The service tasks of the account whose essential container exited (killed), newest first."""
    return (facts.tasks().filter(service__isnull=False, stop_code="EssentialContainerExited")
            .exclude(stopping_at=None).order_by("-stopping_at"))


def container_killed(facts):
    task = _killed(facts).first()
    if task:
        return passed(f"task {task.task_id[:8]} of {task.service.name} stopped: {task.stopped_reason}")
    return not_yet("no task of a service has lost its container yet")


def task_replaced(facts):
    for killed in _killed(facts)[:20]:
        replacement = facts.running_tasks(service_id=killed.service_id, created_at__gte=killed.stopping_at).first()
        if replacement is not None:
            return passed(f"task {replacement.task_id[:8]} replaced {killed.task_id[:8]}")
    if _killed(facts).exists():
        return not_yet("the replacement is not RUNNING yet")
    return not_yet("kill a container first")


