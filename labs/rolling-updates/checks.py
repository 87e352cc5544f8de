"""Checks of lab 4, "Rolling updates and the circuit breaker": read from the service's deployments
and its tasks' own timestamps (how many ran at every moment of a rollout)."""
from classroom.checks import minimum_healthy, not_yet, passed, running_between
from orchestrator.models import Deployment

MIN_TASKS = 2


def _breaker(service):
    return (service.deployment_configuration or {}).get("deploymentCircuitBreaker") or {}


def rolling_service(facts):
    for service in facts.services():
        config = service.deployment_configuration or {}
        running = facts.running_tasks(service=service).count()
        if (running >= MIN_TASKS and config.get("minimumHealthyPercent", 100) < 100
                and _breaker(service).get("enable") and _breaker(service).get("rollback")):
            return passed(f"{service.name}: {running} tasks, minimum healthy {config['minimumHealthyPercent']} %, "
                          f"maximum {config.get('maximumPercent', 200)} %, circuit breaker with rollback")
    return not_yet(f"no service with {MIN_TASKS} RUNNING tasks, minimumHealthyPercent below 100 and the circuit "
                   "breaker (with rollback) on yet")


def rolled_out(facts):
    for service in facts.services():
        for deployment in facts.deployments(service).filter(rollout_state=Deployment.COMPLETED,
                                                            task_definition__revision__gte=2):
            tasks = facts.tasks().filter(service=service)
            fewest = running_between(tasks, deployment.created_at, deployment.updated_at)
            floor = minimum_healthy(service, deployment.desired_count)
            if fewest >= floor:
                return passed(f"{service.name} rolled to revision {deployment.task_definition.revision}: "
                              f"never fewer than {fewest} running (minimum {floor})")
            return not_yet(f"{service.name}'s rollout dropped to {fewest} running, below its minimum of {floor}")
    return not_yet("no deployment of revision 2 or later has COMPLETED yet")


def _failed(facts):
    return Deployment.objects.filter(service__account=facts.account, rollout_state=Deployment.FAILED) \
        .select_related("service", "task_definition").order_by("-created_at")


def breaker_tripped(facts):
    failed = _failed(facts).first()
    if failed:
        return passed(f"deployment of {failed.task_definition.family}:{failed.task_definition.revision} FAILED: "
                      f"{failed.rollout_state_reason}")
    return not_yet("no deployment has FAILED yet")


def rolled_back(facts):
    for failed in _failed(facts)[:10]:
        back = Deployment.objects.filter(service=failed.service, status=Deployment.PRIMARY,
                                         rollout_state=Deployment.COMPLETED, created_at__gt=failed.created_at).first()
        if back is not None:
            return passed(f"{failed.service.name} is back on {back.task_definition.family}:"
                          f"{back.task_definition.revision}")
    return not_yet("no service is back on a COMPLETED deployment after a failed one yet")
