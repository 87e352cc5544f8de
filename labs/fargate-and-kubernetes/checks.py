"""Checks of lab 5, "Fargate ↔ Kubernetes": each step wants its object made and its question
answered right."""
from classroom.checks import not_yet, passed


def _quiz(facts, step, right, made, what):
    """Passed when the object is ``made`` (a truthy description) and the quiz is answered right."""
    if not made:
        return not_yet(f"no {what} yet")
    if step not in facts.quiz_answers:
        return not_yet("answer the question")
    if not facts.answered(step, right):
        return not_yet("not that one: look at the object's Kubernetes twin and try again")
    return passed(made)


def cluster(facts):
    made = facts.clusters().first()
    return _quiz(facts, "cluster", 1, made and f"cluster {made.name} ↔ a Namespace", "cluster")


def task_definition(facts):
    made = facts.task_definitions().first()
    return _quiz(facts, "task-definition", 2, made and f"{made.family}:{made.revision} ↔ a Pod template",
                 "task definition")


def task(facts):
    made = facts.running_tasks(service=None).first()
    return _quiz(facts, "task", 0, made and f"task {made.task_id[:8]} ↔ a Pod", "RUNNING task started with RunTask")


def service(facts):
    made = next((s for s in facts.services() if facts.running_tasks(service=s).exists()), None)
    return _quiz(facts, "service", 2, made and f"service {made.name} ↔ a Deployment", "service with a RUNNING task")


def components(facts):
    return _quiz(facts, "components", 3, "the capacity manager ↔ kube-scheduler + cluster autoscaler", "")
