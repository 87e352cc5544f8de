"""The hooks the control plane calls: register a service's task, drain it, read its health."""
import datetime

import pytest
from django.utils import timezone

from orchestrator import load_balancer
from orchestrator.models import (
    Account, Cluster, ContainerInstance, Listener, LoadBalancer, Service, Target, TargetGroup, Task,
    TaskContainer, TaskDefinition,
)
from tests.support.common import free_port, wait_until


def service_task(target_type="ip", host_port=32801, private_ip="172.18.0.5", delay=5.0, status=Task.ACTIVATING):
    """A service task with container "web" (port 80 published on host_port), in a target group."""
    account = Account.default()
    cluster = Cluster.objects.create(account=account, name="default")
    definition = TaskDefinition.objects.create(account=account, family="web", revision=1, cpu=256, memory=512)
    tg = TargetGroup.objects.create(account=account, name="web-tg", port=80, target_type=target_type,
                                    deregistration_delay=delay, health_check_interval=1, health_check_timeout=0.5)
    service = Service.objects.create(
        account=account, cluster=cluster, name="web", task_definition=definition, desired_count=1,
        load_balancers=[{"targetGroupArn": tg.arn, "containerName": "web", "containerPort": 80}],
    )
    instance = ContainerInstance.objects.create(name="instance-1", cpu_registered=4096, memory_registered=8192)
    task = Task.objects.create(account=account, cluster=cluster, task_definition=definition, service=service,
                               container_instance=instance, cpu=256, memory=512, last_status=status,
                               private_ip=private_ip)
    TaskContainer.objects.create(task=task, name="web", image="demo", network_bindings=[
        {"bindIP": "127.0.0.1", "containerPort": 80, "hostPort": host_port, "protocol": "tcp"}])
    return task, tg


def test_it_registers_a_task_by_its_private_ip_and_connects_to_its_published_port(db):
    task, tg = service_task()

    (target,) = load_balancer.register_task(task)

    assert (target.target_id, target.port) == ("172.18.0.5", 80)
    assert (target.address, target.connect_port) == ("127.0.0.1", 32801)
    assert target.task == task and target.state == Target.INITIAL
    assert load_balancer.task_health(task) == "initial"
    assert load_balancer.register_task(task)[0].pk == target.pk  # registering again is harmless


def test_it_registers_instance_targets_by_instance_id_and_host_port(db):
    task, tg = service_task(target_type="instance")

    (target,) = load_balancer.register_task(task)

    assert (target.target_id, target.port) == (task.container_instance.instance_id, 32801)


def test_it_skips_a_task_outside_any_target_group(db):
    task, tg = service_task()
    Service.objects.filter(pk=task.service_id).update(load_balancers=[])
    task.refresh_from_db()

    assert load_balancer.register_task(task) == []
    assert load_balancer.task_health(task) is None
    assert load_balancer.deregister_task(task) == 0
    assert load_balancer.is_drained(task)


def test_it_reads_task_health_from_its_targets(db):
    task, tg = service_task()
    (target,) = load_balancer.register_task(task)

    Target.objects.filter(pk=target.pk).update(state=Target.HEALTHY)
    assert load_balancer.task_health(task) == "healthy"
    Target.objects.filter(pk=target.pk).update(state=Target.UNHEALTHY)
    assert load_balancer.task_health(task) == "unhealthy"


def test_it_drains_a_task_for_the_deregistration_delay(db):
    task, tg = service_task(delay=5.0)
    (target,) = load_balancer.register_task(task)

    assert load_balancer.deregister_task(task) == 5.0
    target.refresh_from_db()
    assert target.state == Target.DRAINING
    assert not load_balancer.is_drained(task)
    assert load_balancer.task_health(task) is None

    Target.objects.filter(pk=target.pk).update(drain_until=timezone.now() - datetime.timedelta(seconds=1))
    assert load_balancer.is_drained(task)
    assert not Target.objects.filter(pk=target.pk).exists()


def test_it_forgets_targets_of_stopped_tasks(data_plane):
    task, tg = service_task()
    load_balancer.register_task(task)

    Task.objects.filter(pk=task.pk).update(last_status=Task.STOPPED)
    data_plane.sync()

    assert not Target.objects.filter(task=task).exists()


def test_it_turns_a_registered_task_healthy_once_its_port_answers(data_plane):
    import http.server
    import threading

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        task, tg = service_task(host_port=server.server_address[1])
        lb = LoadBalancer.objects.create(account=task.account, name="web-lb")
        listener = Listener.objects.create(load_balancer=lb, port=free_port(),
                                           default_actions=[{"Type": "forward", "TargetGroupArn": tg.arn}])
        listener.target_groups.set([tg])

        load_balancer.register_task(task)

        wait_until(lambda: load_balancer.task_health(task) == "healthy", 10, message="the task to turn healthy")
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("matcher,status,expected", [
    ("200", 200, True), ("200", 204, False), ("200-299", 204, True), ("200,302", 302, True), ("200,302", 301, False),
])
def test_it_matches_status_codes_like_elb(matcher, status, expected):
    assert load_balancer.matches(matcher, status) is expected


def test_a_target_registered_by_hand_neither_drains_nor_judges_the_tasks_health(db):
    from orchestrator.elbv2 import operations

    task, tg = service_task(status=Task.RUNNING)
    load_balancer.register_task(task)
    other = TargetGroup.objects.create(account=task.account, name="by-hand", port=80, target_type="ip",
                                       deregistration_delay=300)
    operations.register_targets(task.account, {"TargetGroupArn": other.arn, "Targets": [{"Id": "172.18.0.5", "Port": 80}]})
    by_hand = Target.objects.get(target_group=other)
    assert by_hand.task == task and (by_hand.address, by_hand.connect_port) == ("127.0.0.1", 32801)
    Target.objects.filter(pk=by_hand.pk).update(state=Target.UNHEALTHY)

    assert load_balancer.task_health(task) == "initial"  # only the service's own group counts
    assert load_balancer.deregister_task(task) == 5.0  # the service's group drains, 300 s are not waited
    assert not Target.objects.filter(target_group=other).exists()
    assert Target.objects.get(target_group=tg).state == Target.DRAINING


def test_a_target_tied_to_no_task_is_forgotten(db):
    from orchestrator.elbv2 import operations

    task, tg = service_task()
    (kept,) = load_balancer.register_task(task)
    # Registered by an older lab, before targets had to be the account's own tasks: the lab itself.
    Target.objects.create(target_group=tg, target_id="127.0.0.1", port=8000, address="127.0.0.1", connect_port=8000)

    assert operations.forget_unowned_targets() == 1
    assert list(Target.objects.all()) == [kept]
