"""Each object's page shows its Kubernetes twin as YAML: read back from the rendered HTML
(unescaped), parsed and validated against Kubernetes' schemas; and the Pod phase shown is the
one Kubernetes would give."""
import html
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from orchestrator import deployments
from orchestrator.frontend import call
from orchestrator.models import (
    Account, ContainerInstance, Deployment, Listener, LoadBalancer, Service, Target, TargetGroup, Task,
)
from tests.support.kubernetes import parse_and_validate
from tests.support.api import FARGATE

WEB = {
    "family": "web", "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc", "cpu": "256", "memory": "512",
    "containerDefinitions": [{
        "name": "web", "image": "fargate-lab/demo:latest", "essential": True,
        "entryPoint": ["/bin/sh", "-c"], "command": ["/demo/serve.sh"],
        "environment": [{"name": "GREETING", "value": "<hello & 'bye'>"}],
        "portMappings": [{"containerPort": 80}],
    }],
}


def yaml_of(response, dom_id):
    """The YAML a page shows in the manifest section ``dom_id`` (as a browser would read it)."""
    text = response.content.decode()
    match = re.search(rf'<pre id="{re.escape(dom_id)}-yaml" class="yaml">(.*?)</pre>', text, re.S)
    assert match, f"no manifest {dom_id} on the page"
    return html.unescape(match.group(1))


@pytest.fixture
def demo(db):
    """Cluster demo, web:1, a RUNNING task on fleet-1 and a service of 2 (both through the frontend)."""
    account = Account.default()
    call(account, "CreateCluster", {"clusterName": "demo"})
    call(account, "RegisterTaskDefinition", WEB)
    instance = ContainerInstance.objects.create(name="fleet-1", cpu_registered=4096, memory_registered=8192,
                                                agent_connected=True, last_heartbeat=timezone.now())
    arn = call(account, "RunTask", {"cluster": "demo", "taskDefinition": "web:1", **FARGATE})["tasks"][0]["taskArn"]
    task = Task.objects.get(task_id=arn.rsplit("/", 1)[1])
    Task.objects.filter(pk=task.pk).update(last_status=Task.RUNNING, container_instance=instance,
                                           started_at=timezone.now(), private_ip="10.0.1.5")
    task.containers.update(last_status="RUNNING")
    call(account, "CreateService", {"cluster": "demo", "serviceName": "web", "taskDefinition": "web:1", "desiredCount": 2, **FARGATE})
    return {"account": account, "task": Task.objects.get(pk=task.pk), "instance": instance,
            "service": Service.objects.get(name="web")}


def test_the_task_page_shows_its_pod(alice_client, demo):
    task = demo["task"]
    response = alice_client.get(f"/tasks/{task.task_id}/")
    pod, = parse_and_validate(yaml_of(response, f"task-twin-{task.pk}"))["Pod"]
    container = pod["spec"]["containers"][0]
    assert container["image"] == "fargate-lab/demo:latest"
    assert container["command"] == ["/bin/sh", "-c"] and container["args"] == ["/demo/serve.sh"]
    assert container["env"] == [{"name": "GREETING", "value": "<hello & 'bye'>"}]  # escaped in HTML, intact here
    assert container["resources"]["limits"] == {"cpu": "250m", "memory": "512Mi"}
    assert pod["spec"]["nodeName"] == "fleet-1" and pod["status"]["phase"] == "Running"
    assert "<hello" not in response.content.decode()  # the page escaped it


def load_balanced(demo, health):
    """Target group web-tg with the demo task as its target (in ``health``), behind demo-lb:8080."""
    group = TargetGroup.objects.create(account=demo["account"], name="web-tg", port=80, target_type="ip")
    balancer = LoadBalancer.objects.create(account=demo["account"], name="demo-lb")
    listener = Listener.objects.create(load_balancer=balancer, port=8080,
                                       default_actions=[{"Type": "forward", "TargetGroupArn": group.arn}])
    listener.target_groups.add(group)
    Target.objects.create(target_group=group, target_id="10.0.1.5", port=80, address="127.0.0.1", connect_port=32000,
                          task=demo["task"], state=health)
    return group, balancer


def test_the_service_page_shows_its_deployment_replica_sets_and_services(alice_client, demo):
    service = demo["service"]
    group, _ = load_balanced(demo, Target.HEALTHY)
    Service.objects.filter(pk=service.pk).update(load_balancers=[
        {"targetGroupArn": group.arn, "containerName": "web", "containerPort": 80}])

    response = alice_client.get(f"/services/{service.pk}/")
    by_kind = parse_and_validate(yaml_of(response, f"service-twin-{service.pk}"))
    assert by_kind["Deployment"][0]["spec"]["replicas"] == 2
    assert len(by_kind["ReplicaSet"]) == 1
    assert [s["metadata"]["name"] for s in by_kind["Service"]] == ["web", "web-tg"]
    assert by_kind["Service"][0]["spec"]["type"] == "LoadBalancer"
    assert by_kind["EndpointSlice"][0]["endpoints"][0]["addresses"] == ["10.0.1.5"]
    assert by_kind["EndpointSlice"][0]["endpoints"][0]["conditions"]["ready"] is True
    assert by_kind["Ingress"][0]["spec"]["defaultBackend"]["service"]["name"] == "web-tg"


def test_the_cluster_instance_and_task_definition_pages_show_their_twins(alice_client, demo):
    cluster = demo["task"].cluster
    namespace, = parse_and_validate(yaml_of(alice_client.get("/clusters/demo/"), f"cluster-twin-{cluster.pk}"))["Namespace"]
    assert namespace["metadata"]["name"] == "demo"
    node, = parse_and_validate(yaml_of(alice_client.get("/instances/fleet-1/"), f"instance-twin-{demo['instance'].pk}"))["Node"]
    assert node["status"]["capacity"] == {"cpu": "4", "memory": "8192Mi"}
    assert node["metadata"]["annotations"]["fargate-lab/cpu-units-in-use"] == "256"
    template, = parse_and_validate(yaml_of(alice_client.get("/task-definitions/web/1/"), "taskdef-twin"))["PodTemplate"]
    assert template["template"]["spec"]["containers"][0]["resources"]["requests"] == {"cpu": "250m", "memory": "512Mi"}


def _stop(task, exit_code=None, started=True, stop_code="EssentialContainerExited", reason="Essential container in task exited"):
    now = timezone.now()
    task.containers.update(last_status="STOPPED", exit_code=exit_code)
    Task.objects.filter(pk=task.pk).update(last_status=Task.STOPPED, desired_status=Task.STOPPED, stopped_at=now,
                                           started_at=now if started else None, stop_code=stop_code, stopped_reason=reason)
    return Task.objects.get(pk=task.pk)


def test_a_task_is_succeeded_only_when_its_essential_containers_exit_zero(demo):
    assert _stop(demo["task"], exit_code=0).pod_phase == "Succeeded"
    failed = _stop(demo["task"], exit_code=1)
    assert (failed.pod_phase, failed.pod_status) == ("Failed", "Error")


def test_a_pull_failure_is_failed_with_err_image_pull(demo):
    task = _stop(demo["task"], started=False, stop_code="TaskFailedToStart",
                 reason="CannotPullContainerError: pull image nothing:here: not found")
    assert (task.pod_phase, task.pod_status) == ("Failed", "ErrImagePull")


def test_a_stopping_task_shows_terminating(alice_client, demo):
    task = demo["task"]
    for status in (Task.DEACTIVATING, Task.STOPPING):
        Task.objects.filter(pk=task.pk).update(last_status=status, desired_status=Task.STOPPED)
        assert Task.objects.get(pk=task.pk).pod_status == "Terminating"
        page = alice_client.get(f"/tasks/{task.task_id}/").content.decode()
        assert re.search(r'data-field="pod_status">Terminating<', page)


def test_failed_starts_of_a_throttled_service_are_in_crash_loop_back_off(demo):
    service = demo["service"]
    primary = service.deployments.get(status=Deployment.PRIMARY)
    account, cluster, td = demo["account"], service.cluster, service.task_definition
    stopped_at = timezone.now()
    failed = []
    for n in range(3):  # three tasks in a row that stopped before they ever ran
        failed.append(Task.objects.create(
            account=account, cluster=cluster, task_definition=td, service=service, deployment=primary,
            cpu=256, memory=512, last_status=Task.STOPPED, desired_status=Task.STOPPED, group="service:web",
            stop_code="TaskFailedToStart", stopped_reason="ResourceInitializationError: boom",
            stopped_at=stopped_at - timedelta(seconds=n)))
    assert deployments.backing_off(3, stopped_at, timezone.now())
    assert service.restart_backoff()
    assert Task.objects.get(pk=failed[0].pk).pod_status == "CrashLoopBackOff"
    # Once the delay has passed the service launches again: no longer backing off.
    later = timezone.now() + timedelta(seconds=deployments.throttle_delay(3) + 1)
    assert not service.restart_backoff(now=later)


def test_ready_replicas_count_healthy_tasks_only(alice_client, demo, settings):
    service = demo["service"]
    primary = service.deployments.get(status=Deployment.PRIMARY)
    Task.objects.filter(pk=demo["task"].pk).update(service=service, deployment=primary, group="service:web",
                                                   started_by=primary.deployment_id)
    Deployment.objects.filter(pk=primary.pk).update(running_count=1)  # as the cluster manager counts it
    Service.objects.filter(pk=service.pk).update(running_count=1)
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "HEALTH_GRACE_SECONDS": 3600}
    page = alice_client.get(f"/services/{service.pk}/")
    assert re.search(r'data-count="ready"[^>]*>0<', page.content.decode())  # RUNNING, still in its grace period
    deployment, = parse_and_validate(yaml_of(page, f"service-twin-{service.pk}"))["Deployment"]
    assert deployment["status"]["readyReplicas"] == 0 and deployment["status"]["replicas"] == 1

    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "HEALTH_GRACE_SECONDS": 0}
    page = alice_client.get(f"/services/{service.pk}/")
    assert re.search(r'data-count="ready"[^>]*>1<', page.content.decode())
    deployment, = parse_and_validate(yaml_of(page, f"service-twin-{service.pk}"))["Deployment"]
    assert deployment["status"]["readyReplicas"] == 1


def test_the_map_s_load_balancer_card_shows_target_groups_and_listeners_as_kubernetes_objects(alice_client, demo):
    group, balancer = load_balanced(demo, Target.UNHEALTHY)
    page = alice_client.get("/")
    by_kind = parse_and_validate(yaml_of(page, f"target-group-twin-{group.pk}"))
    metadata = by_kind["Service"][0]["metadata"]
    assert (metadata["name"], metadata["namespace"]) == ("web-tg", "demo")
    endpoint, = by_kind["EndpointSlice"][0]["endpoints"]
    assert endpoint["conditions"]["ready"] is False  # unhealthy: not ready
    assert endpoint["targetRef"]["name"] == demo["task"].pod_name
    ingress, = parse_and_validate(yaml_of(page, f"load-balancer-twin-{balancer.pk}"))["Ingress"]
    assert ingress["metadata"]["annotations"]["alb.ingress.kubernetes.io/listen-ports"] == '[{"HTTP": 8080}]'
    assert ingress["spec"]["defaultBackend"]["service"] == {"name": "web-tg", "port": {"number": 80}}
