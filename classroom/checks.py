"""What a lab's checks read, and what they answer.

A check is a small function of a lab's ``checks.py``: ``check(facts) -> Verdict`` (or a bool),
where ``facts`` is one account's state (``Facts``): its objects in the state database, the
student's quiz answers and when they started the lab. It reads, never writes, and answers yes
(``passed``) or not yet (``not_yet``, saying what is missing). A check may ask a listener's URL
whether it answers (``Facts.status_of``): that is the student's own load balancer.
"""
import math
from dataclasses import dataclass

import requests
from django.conf import settings
from django.db.models import Q

from orchestrator.models import (
    Activity, Cluster, ContainerInstance, Deployment, Listener, LoadBalancer, Repository, Service, Target,
    TargetGroup, Task, TaskDefinition,
)

URL_TIMEOUT = 2.0


@dataclass(frozen=True)
class Verdict:
    passed: bool
    detail: str = ""


def passed(detail=""):
    return Verdict(True, detail)


def not_yet(detail):
    return Verdict(False, detail)


def verdict_of(value):
    """A check's answer as a Verdict (a bare bool is allowed)."""
    return value if isinstance(value, Verdict) else Verdict(bool(value), "")


class Facts:
    """One account's state as the checks read it; HTTP answers are asked once per evaluation."""

    def __init__(self, account, answers=None, started_at=None):
        self.account = account
        self.quiz_answers = dict(answers or {})
        self.started_at = started_at
        self._answers_cache = {}
        # Bus kinds read outside the state database (a listener's answer), besides the tables the
        # runner sees the check's queries read: a change of none of them cannot change its answer.
        self.kinds_read = set()

    # --- the account's objects
    def clusters(self):
        return Cluster.objects.filter(account=self.account, status=Cluster.ACTIVE)

    def task_definitions(self):
        return TaskDefinition.objects.filter(account=self.account, status=TaskDefinition.ACTIVE)

    def services(self):
        return Service.objects.filter(account=self.account, status=Service.ACTIVE).select_related("cluster")

    def tasks(self):
        return Task.objects.filter(account=self.account)

    def running_tasks(self, **filters):
        return self.tasks().filter(last_status=Task.RUNNING, desired_status=Task.RUNNING, **filters)

    def repositories(self):
        return Repository.objects.filter(account=self.account)

    def load_balancers(self):
        return LoadBalancer.objects.filter(account=self.account)

    def listeners(self):
        return Listener.objects.filter(load_balancer__account=self.account, bind_error="").select_related("load_balancer")

    def target_groups(self):
        return TargetGroup.objects.filter(account=self.account)

    def deployments(self, service):
        return Deployment.objects.filter(service=service).select_related("task_definition")

    def activities(self, component, action, arns):
        """The lab's records of ``component`` doing ``action`` to any of ``arns``."""
        return Activity.objects.filter(component=component, action=action, object_arn__in=list(arns))

    def instances(self):
        return ContainerInstance.objects.all()

    # --- derived facts
    def service_target_groups(self, service):
        """The target groups a service registers its tasks in (its loadBalancers entries)."""
        arns = {entry.get("targetGroupArn") for entry in service.load_balancers or []}
        return [tg for tg in self.target_groups() if tg.arn in arns]

    def healthy_targets(self, target_group):
        return Target.objects.filter(target_group=target_group, state=Target.HEALTHY)

    def status_of(self, listener):
        """The HTTP status the listener's URL answers with (None when nothing answers)."""
        self.kinds_read |= {"listener", "load_balancer", "target_group", "target", "task"}
        if listener.pk not in self._answers_cache:
            host = settings.FARGATE_LAB.get("PUBLISH_ADDRESS") or "127.0.0.1"
            host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
            try:
                status = requests.get(f"http://{host}:{listener.port}/", timeout=URL_TIMEOUT,
                                      headers={"Host": f"{listener.load_balancer.dns_name}:{listener.port}"}).status_code
            except requests.RequestException:
                status = None
            self._answers_cache[listener.pk] = status
        return self._answers_cache[listener.pk]

    def listeners_of(self, target_group):
        return self.listeners().filter(target_groups=target_group)

    def url_of_service(self, service):
        """The URL of a listener that forwards to the service's target group and answers 200, or None."""
        for target_group in self.service_target_groups(service):
            for listener in self.listeners_of(target_group):
                if self.status_of(listener) == 200:
                    return listener.url
        return None

    def answered(self, step_id, right):
        """Whether the quiz of ``step_id`` was answered with choice ``right``."""
        return self.quiz_answers.get(step_id) == right


def running_between(tasks, start, end):
    """The fewest tasks running at any moment of [start, end] (tasks: rows with started_at /
    stopping_at / stopped_at), read from the tasks' own timestamps."""
    moments = {start}
    spans = []
    for task in tasks:
        if task.started_at is None:
            continue
        until = task.stopping_at or task.stopped_at
        spans.append((task.started_at, until))
        for moment in (task.started_at, until):
            if moment is not None and start <= moment <= end:
                moments.add(moment)
    return min(sum(1 for began, until in spans if began <= moment and (until is None or until > moment))
               for moment in sorted(moments))


def minimum_healthy(service, desired):
    """The fewest tasks a rolling update may leave running (minimumHealthyPercent, rounded up)."""
    percent = (service.deployment_configuration or {}).get("minimumHealthyPercent", 100)
    return math.ceil(desired * percent / 100)


