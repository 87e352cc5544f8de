"""Checks of lab 3, "Scaling and placement": where the capacity manager put your tasks."""
from classroom.checks import not_yet, passed

MIN_TASKS = 3


def _placed(facts, service):
    """The instance of each RUNNING task of the service (instance pks)."""
    return list(facts.running_tasks(service=service).values_list("container_instance_id", flat=True))


def _with_strategy(facts, kind):
    return [s for s in facts.services() if any(p.get("type") == kind for p in s.placement_strategy or [])]


def packed(facts):
    for service in _with_strategy(facts, "binpack"):
        instances = _placed(facts, service)
        if len(instances) >= MIN_TASKS and len(set(instances)) < len(instances):
            return passed(f"{service.name}: {len(instances)} tasks on {len(set(instances))} instance(s)")
    return not_yet(f"no binpack service with {MIN_TASKS} RUNNING tasks sharing an instance yet")


def spread(facts):
    active = facts.instances().filter(status="ACTIVE").count()
    for service in _with_strategy(facts, "spread"):
        instances = _placed(facts, service)
        if len(instances) >= MIN_TASKS and len(set(instances)) >= min(len(instances), active):
            return passed(f"{service.name}: {len(instances)} tasks on {len(set(instances))} instances")
    return not_yet(f"no spread service with {MIN_TASKS} RUNNING tasks, each on an instance of its own, yet")


def fleet_grew(facts):
    task = (facts.running_tasks(container_instance__registered_at__gte=facts.started_at)
            .select_related("container_instance").first()) if facts.started_at else None
    if task:
        return passed(f"task {task.task_id[:8]} runs on {task.container_instance.name}, launched for it")
    return not_yet("none of your tasks runs on an instance launched since you began this lab")
