"""Kubernetes twins on plain data: the ECS API's shapes in, manifests out, each validated against
Kubernetes' own OpenAPI schema."""
import json

import pytest
import yaml

from orchestrator import kubernetes
from tests.support.kubernetes import parse_and_validate, validate

REGION_ACCOUNT = "us-east-1:000000000000"
TD_ARN = f"arn:aws:ecs:{REGION_ACCOUNT}:task-definition/web:1"
TASK_ID = "0123456789abcdef0123456789abcdef"
DEPLOYMENT = "ecs-svc/1234567890123456789"
OLD_DEPLOYMENT = "ecs-svc/9876543210987654321"

TASK_DEFINITION = {
    "taskDefinitionArn": TD_ARN, "family": "web", "revision": 1, "cpu": "256", "memory": "512",
    "registeredAt": 1_780_000_000.0,
    "containerDefinitions": [{
        "name": "web", "image": "fargate-lab/demo:latest", "essential": True,
        "entryPoint": ["/bin/sh", "-c"], "command": ["/demo/serve.sh"],
        "environment": [{"name": "GREETING", "value": "hello"}],
        "secrets": [{"name": "TOKEN", "valueFrom": "arn:aws:ssm:us-east-1:000000000000:parameter/app/token"}],
        "portMappings": [{"containerPort": 80, "protocol": "tcp", "name": "http"}],
        "healthCheck": {"command": ["CMD-SHELL", "nc -z 127.0.0.1 80"], "interval": 10, "timeout": 2,
                        "retries": 4, "startPeriod": 15},
    }],
}


def task(last_status="RUNNING", exit_code=None, reason=None, stopped_reason=None, service=False, **extra):
    """A task as DescribeTasks returns it."""
    container = {"name": "web", "image": "fargate-lab/demo:latest", "lastStatus": last_status,
                 "networkInterfaces": [{"privateIpv4Address": "10.0.1.5"}], "healthStatus": "UNKNOWN",
                 "runtimeId": "abc123"}
    if exit_code is not None:
        container["exitCode"] = exit_code
    if reason:
        container["reason"] = reason
    data = {
        "taskArn": f"arn:aws:ecs:{REGION_ACCOUNT}:task/demo/{TASK_ID}",
        "clusterArn": f"arn:aws:ecs:{REGION_ACCOUNT}:cluster/demo",
        "taskDefinitionArn": TD_ARN, "cpu": "256", "memory": "512", "lastStatus": last_status,
        "desiredStatus": "STOPPED" if last_status != "RUNNING" else "RUNNING",
        "createdAt": 1_780_000_100.0, "startedAt": 1_780_000_105.5, "containers": [container],
        "overrides": {"containerOverrides": [{"name": "web", "environment": [{"name": "MODE", "value": "demo"}]}]},
        **extra,
    }
    if stopped_reason:
        data["stoppedReason"] = stopped_reason
    if service:
        data.update(group="service:web", startedBy=DEPLOYMENT)
    return data


def test_a_task_is_a_pod_with_its_image_command_env_limits_ports_and_probe():
    pod = validate(kubernetes.pod_for(task(), TASK_DEFINITION, node_name="fleet-1"))
    container = pod["spec"]["containers"][0]
    assert container["image"] == "fargate-lab/demo:latest"
    assert container["command"] == ["/bin/sh", "-c"]  # ECS entryPoint
    assert container["args"] == ["/demo/serve.sh"]  # ECS command
    assert {"name": "GREETING", "value": "hello"} in container["env"]
    assert {"name": "MODE", "value": "demo"} in container["env"]  # the task's override
    assert {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "token", "key": "value"}}} in container["env"]
    assert container["resources"] == {"requests": {"cpu": "250m", "memory": "512Mi"},
                                      "limits": {"cpu": "250m", "memory": "512Mi"}}
    assert container["ports"] == [{"name": "http", "containerPort": 80, "protocol": "TCP"}]
    assert container["livenessProbe"] == container["readinessProbe"] == {
        "exec": {"command": ["/bin/sh", "-c", "nc -z 127.0.0.1 80"]},
        "initialDelaySeconds": 15, "periodSeconds": 10, "timeoutSeconds": 2, "failureThreshold": 4,
    }
    assert pod["metadata"]["namespace"] == "demo" and pod["metadata"]["labels"] == {"app": "web"}
    assert pod["spec"]["nodeName"] == "fleet-1" and pod["spec"]["restartPolicy"] == "Never"
    assert pod["status"]["phase"] == "Running" and pod["status"]["podIP"] == "10.0.1.5"
    assert {"type": "Ready", "status": "True"} in pod["status"]["conditions"]


def test_a_service_task_belongs_to_the_replica_set_of_its_deployment():
    pod = validate(kubernetes.pod_for(task(service=True), TASK_DEFINITION, ready=False))
    assert pod["metadata"]["name"] == "web-0123456789-01234"
    assert pod["metadata"]["labels"] == {"app": "web", "pod-template-hash": "0123456789"}
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"
    assert pod["spec"]["restartPolicy"] == "Always"
    assert {"type": "Ready", "status": "False"} in pod["status"]["conditions"]


def test_container_cpu_and_memory_win_over_the_task_s():
    definition = {**TASK_DEFINITION, "cpu": "1024", "memory": "2048", "containerDefinitions": [
        {"name": "app", "image": "app", "cpu": 512, "memory": 1024, "memoryReservation": 256},
        {"name": "sidecar", "image": "side"},
    ]}
    spec = kubernetes.pod_spec(definition)
    assert spec["containers"][0]["resources"] == {"requests": {"cpu": "500m", "memory": "256Mi"},
                                                  "limits": {"cpu": "500m", "memory": "1024Mi"}}
    assert spec["containers"][1]["resources"]["limits"] == {"cpu": "1", "memory": "2048Mi"}


def test_a_container_s_user_capabilities_and_terminal_carry_over():
    spec = kubernetes.pod_spec({**TASK_DEFINITION, "containerDefinitions": [{
        "name": "app", "image": "app", "user": "1000:1000", "readonlyRootFilesystem": True,
        "linuxParameters": {"capabilities": {"add": ["SYS_PTRACE"], "drop": ["ALL"]}},
        "interactive": True, "pseudoTerminal": True,
    }]})
    validate({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "app"}, "spec": spec})
    container = spec["containers"][0]
    assert container["securityContext"] == {"readOnlyRootFilesystem": True, "runAsUser": 1000, "runAsGroup": 1000,
                                            "capabilities": {"add": ["SYS_PTRACE"], "drop": ["ALL"]}}
    assert container["stdin"] is True and container["tty"] is True
    named = kubernetes.pod_spec({**TASK_DEFINITION, "containerDefinitions": [{"name": "app", "image": "app",
                                                                               "user": "nginx"}]})
    assert "securityContext" not in named["containers"][0]


def test_an_efs_volume_is_a_claim_and_its_root_directory_the_mounts_sub_path():
    spec = kubernetes.pod_spec({**TASK_DEFINITION, "volumes": [
        {"name": "Shared", "efsVolumeConfiguration": {"fileSystemId": "fs-0123abcd", "rootDirectory": "/data/up"}},
        {"name": "whole", "efsVolumeConfiguration": {"fileSystemId": "fs-0123abcd", "rootDirectory": "/"}},
        {"name": "scratch", "host": {}}], "containerDefinitions": [{
            "name": "app", "image": "app", "mountPoints": [
                {"sourceVolume": "Shared", "containerPath": "/mnt/up", "readOnly": True},
                {"sourceVolume": "whole", "containerPath": "/mnt/all"}]}]})
    validate({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "app"}, "spec": spec})
    assert spec["volumes"] == [{"name": "shared", "persistentVolumeClaim": {"claimName": "efs-fs-0123abcd"}},
                               {"name": "whole", "persistentVolumeClaim": {"claimName": "efs-fs-0123abcd"}}]
    assert spec["containers"][0]["volumeMounts"] == [
        {"name": "shared", "mountPath": "/mnt/up", "readOnly": True, "subPath": "data/up"},
        {"name": "whole", "mountPath": "/mnt/all"}]
    assert "volumes" not in kubernetes.pod_spec(TASK_DEFINITION)


def test_volumes_from_spells_out_the_sources_mounts():
    """Kubernetes has no volumesFrom: the container gets the source's volumeMounts at its paths."""
    spec = kubernetes.pod_spec({**TASK_DEFINITION, "volumes": [
        {"name": "shared", "efsVolumeConfiguration": {"fileSystemId": "fs-0123abcd", "rootDirectory": "/up"}},
        {"name": "own", "efsVolumeConfiguration": {"fileSystemId": "fs-0123abcd"}}], "containerDefinitions": [
            {"name": "app", "image": "app", "mountPoints": [{"sourceVolume": "shared", "containerPath": "/mnt/up"}]},
            {"name": "relay", "image": "app", "volumesFrom": [{"sourceContainer": "app"}]},
            {"name": "reader", "image": "app", "volumesFrom": [{"sourceContainer": "relay", "readOnly": True}],
             "mountPoints": [{"sourceVolume": "own", "containerPath": "/mnt/own"}]}]})
    validate({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "app"}, "spec": spec})
    app, relay, reader = (c["volumeMounts"] for c in spec["containers"])
    assert relay == app == [{"name": "shared", "mountPath": "/mnt/up", "subPath": "up"}]
    assert reader == [{"name": "shared", "mountPath": "/mnt/up", "readOnly": True, "subPath": "up"},
                      {"name": "own", "mountPath": "/mnt/own"}]


@pytest.mark.parametrize("units, quantity", [(256, "250m"), (512, "500m"), (1024, "1"), (4096, "4"), (100, "98m")])
def test_cpu_units_are_millicores(units, quantity):
    assert kubernetes.cpu_quantity(units) == quantity


@pytest.mark.parametrize("last_status, containers, stopped_reason, backoff, phase, status", [
    ("PROVISIONING", [], "", False, "Pending", "Pending"),
    ("PENDING", [], "", False, "Pending", "ContainerCreating"),
    ("RUNNING", [], "", False, "Running", "Running"),
    ("DEACTIVATING", [{"essential": True}], "", False, "Running", "Terminating"),
    ("STOPPING", [{"essential": True}], "", False, "Running", "Terminating"),
    ("STOPPED", [{"essential": True, "exitCode": 0}], "Essential container in task exited", False, "Succeeded", "Completed"),
    ("STOPPED", [{"essential": True, "exitCode": 1}], "Essential container in task exited", False, "Failed", "Error"),
    # Succeeded needs every essential container at 0; a non-essential one's code does not count.
    ("STOPPED", [{"essential": True, "exitCode": 0}, {"essential": True, "exitCode": 2}], "", False, "Failed", "Error"),
    ("STOPPED", [{"essential": True, "exitCode": 0}, {"essential": False, "exitCode": 2}], "", False, "Succeeded", "Completed"),
    ("STOPPED", [{"essential": True}], "CannotPullContainerError: pull image x: not found", False, "Failed", "ErrImagePull"),
    ("STOPPED", [{"essential": True}], "CannotPullContainerError: pull image x: not found", True, "Failed", "ImagePullBackOff"),
    ("STOPPED", [{"essential": True, "exitCode": 1}], "Essential container in task exited", True, "Failed", "CrashLoopBackOff"),
    ("STOPPED", [{"essential": True, "exitCode": 137, "reason": "OutOfMemoryError: Container killed due to memory usage"}],
     "", False, "Failed", "OOMKilled"),
    ("STOPPED", [{"essential": True}], "Task stopped by user", False, "Failed", "Error"),
])
def test_the_pod_phase_and_status_of_each_lifecycle_state(last_status, containers, stopped_reason, backoff, phase, status):
    assert kubernetes.pod_phase(last_status, containers) == phase
    assert kubernetes.pod_status(last_status, containers, stopped_reason, backoff) == status


def test_a_failed_pod_says_why_as_kubernetes_would():
    pulled = validate(kubernetes.pod_for(task("STOPPED", stopped_reason="CannotPullContainerError: pull image: denied"),
                                         TASK_DEFINITION))
    assert pulled["status"]["phase"] == "Failed" and pulled["status"]["reason"] == "ErrImagePull"
    assert pulled["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "ErrImagePull"

    crashed = validate(kubernetes.pod_for(task("STOPPED", exit_code=3, service=True), TASK_DEFINITION, backoff=True))
    status = crashed["status"]["containerStatuses"][0]
    assert status["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert status["lastState"]["terminated"]["exitCode"] == 3

    done = validate(kubernetes.pod_for(task("STOPPED", exit_code=0), TASK_DEFINITION))
    assert done["status"]["phase"] == "Succeeded"
    assert done["status"]["containerStatuses"][0]["state"]["terminated"] == {
        "exitCode": 0, "reason": "Completed", "startedAt": "2026-05-28T20:28:25Z"}


def test_a_task_that_never_got_an_instance_was_never_scheduled():
    waiting = validate(kubernetes.pod_for(task("PROVISIONING"), TASK_DEFINITION))
    assert {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"} in waiting["status"]["conditions"]
    gave_up = validate(kubernetes.pod_for(task("STOPPED", stopped_reason="no room"), TASK_DEFINITION))
    assert {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"} in gave_up["status"]["conditions"]
    placed = validate(kubernetes.pod_for(task("STOPPED", exit_code=0), TASK_DEFINITION, node_name="fleet-1"))
    assert {"type": "PodScheduled", "status": "True"} in placed["status"]["conditions"]


def test_a_stopping_task_is_a_terminating_pod():
    pod = validate(kubernetes.pod_for(task("DEACTIVATING", stoppingAt=1_780_000_200.0), TASK_DEFINITION))
    assert pod["metadata"]["deletionTimestamp"] == "2026-05-28T20:30:00Z"
    assert pod["status"]["phase"] == "Running"


@pytest.mark.parametrize("desired, minimum, maximum, surge, unavailable, unavailable_count", [
    (3, 50, 150, 1, "50%", 1),  # ECS: at least ceil(1.5)=2 healthy, at most floor(4.5)=4
    (4, 50, 150, "50%", "50%", 2),
    (2, 100, 200, "100%", "0%", 0),
    (3, 75, 100, "0%", "25%", 0),  # ECS keeps ceil(2.25)=3: none may be unavailable
    (5, 0, 120, "20%", "100%", 5),
    (3, 100, 110, 0, "0%", 0),  # floor(3.3)=3: no surge, where Kubernetes' ceil would allow 1
])
def test_the_rolling_update_rounds_as_ecs_does(desired, minimum, maximum, surge, unavailable, unavailable_count):
    strategy, count = kubernetes.rolling_update(desired, minimum, maximum)
    assert strategy == {"maxSurge": surge, "maxUnavailable": unavailable}
    assert count == unavailable_count


def service_mid_rollout():
    """A service of 4 rolling from web:1 (2 running) to web:2 (3 running, 1 pending)."""
    return {
        "serviceArn": f"arn:aws:ecs:{REGION_ACCOUNT}:service/demo/web", "serviceName": "web",
        "clusterArn": f"arn:aws:ecs:{REGION_ACCOUNT}:cluster/demo", "status": "ACTIVE", "desiredCount": 4,
        "taskDefinition": TD_ARN.replace(":1", ":2"), "createdAt": 1_780_000_000.0, "loadBalancers": [],
        "deploymentConfiguration": {"minimumHealthyPercent": 50, "maximumPercent": 150},
        "deployments": [
            {"id": DEPLOYMENT, "status": "PRIMARY", "taskDefinition": TD_ARN.replace(":1", ":2"), "desiredCount": 4,
             "runningCount": 3, "pendingCount": 1, "rolloutState": "IN_PROGRESS", "createdAt": 1_780_000_500.0},
            {"id": OLD_DEPLOYMENT, "status": "ACTIVE", "taskDefinition": TD_ARN, "desiredCount": 2,
             "runningCount": 2, "pendingCount": 0, "rolloutState": "COMPLETED", "createdAt": 1_780_000_000.0},
        ],
    }


def test_a_service_mid_rollout_is_a_deployment_with_two_replica_sets_and_a_service():
    definitions = {TD_ARN: TASK_DEFINITION,
                   TD_ARN.replace(":1", ":2"): {**TASK_DEFINITION, "revision": 2, "taskDefinitionArn": TD_ARN.replace(":1", ":2"),
                                                "containerDefinitions": [{**TASK_DEFINITION["containerDefinitions"][0],
                                                                          "image": "fargate-lab/demo:v2"}]}}
    manifests = kubernetes.deployment_for(service_mid_rollout(), definitions, ready={DEPLOYMENT: 1, OLD_DEPLOYMENT: 2},
                                          min_ready_seconds=40)
    by_kind = parse_and_validate(kubernetes.to_yaml(manifests))
    deployment, = by_kind["Deployment"]
    assert deployment["spec"]["replicas"] == 4
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": "50%", "maxUnavailable": "50%"}
    assert deployment["spec"]["minReadySeconds"] == 40
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "fargate-lab/demo:v2"
    # Ready replicas are the healthy tasks (3), not the running ones (5).
    assert deployment["status"]["readyReplicas"] == 3 and deployment["status"]["replicas"] == 6
    assert deployment["status"]["updatedReplicas"] == 4
    new, old = by_kind["ReplicaSet"]
    assert (new["spec"]["replicas"], new["status"]["replicas"], new["status"]["readyReplicas"]) == (4, 4, 1)
    assert (old["spec"]["replicas"], old["status"]["replicas"], old["status"]["readyReplicas"]) == (2, 2, 2)
    assert new["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    assert old["spec"]["template"]["spec"]["containers"][0]["image"] == "fargate-lab/demo:latest"
    assert old["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] == {"cpu": "250m", "memory": "512Mi"}
    service, = by_kind["Service"]
    assert service["spec"]["selector"] == {"app": "web"} and service["spec"]["ports"][0]["port"] == 80


def test_a_cluster_is_a_namespace():
    namespace = validate(kubernetes.namespace_for({"clusterName": "Class_A", "status": "ACTIVE",
                                                   "clusterArn": f"arn:aws:ecs:{REGION_ACCOUNT}:cluster/Class_A"}))
    assert namespace["metadata"]["name"] == "class-a" and namespace["status"]["phase"] == "Active"


def test_an_instance_is_a_node_with_capacity_and_allocatable():
    node = validate(kubernetes.node_for({
        "name": "fleet-1", "instance_id": "abc", "status": "DRAINING", "cpu": 4096, "memory": 8192,
        "cpu_used": 256, "memory_used": 512, "agent_connected": True, "last_heartbeat": 1_780_000_000.0,
        "availability_zone": "us-east-1a",
    }))
    assert node["status"]["capacity"] == node["status"]["allocatable"] == {"cpu": "4", "memory": "8192Mi"}
    assert node["spec"]["unschedulable"] is True
    assert node["status"]["conditions"][0]["lastHeartbeatTime"] == "2026-05-28T20:26:40Z"


def test_a_target_group_is_a_service_with_an_endpoint_slice_ready_from_health():
    group = {"TargetGroupName": "web-tg", "TargetGroupArn": "arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/web-tg/1",
             "Port": 80, "Protocol": "HTTP"}
    health = [
        {"Target": {"Id": "10.0.1.5", "Port": 80}, "TargetHealth": {"State": "healthy"}},
        {"Target": {"Id": "10.0.1.6", "Port": 80}, "TargetHealth": {"State": "unhealthy"}},
        {"Target": {"Id": "10.0.1.7", "Port": 80}, "TargetHealth": {"State": "draining"}},
    ]
    service, slice_ = [validate(m) for m in kubernetes.target_group_for(group, health, "demo", {"10.0.1.5": "web-abc"})]
    assert "selector" not in service["spec"]
    assert slice_["metadata"]["labels"] == {"kubernetes.io/service-name": "web-tg"}
    assert [e["conditions"]["ready"] for e in slice_["endpoints"]] == [True, False, False]
    assert slice_["endpoints"][2]["conditions"]["terminating"] is True
    assert slice_["endpoints"][0]["targetRef"] == {"kind": "Pod", "name": "web-abc", "namespace": "demo"}


def test_a_cloud_map_service_is_a_service_with_an_endpoint_slice_of_its_instances():
    instances = [
        {"Id": "t1", "Attributes": {"AWS_INSTANCE_IPV4": "10.0.1.5", "AVAILABILITY_ZONE": "us-east-1a"},
         "HealthStatus": "HEALTHY"},
        {"Id": "t2", "Attributes": {"AWS_INSTANCE_IPV4": "10.0.1.6"}, "HealthStatus": "UNKNOWN"},
    ]
    service, slice_ = [validate(m) for m in kubernetes.discovery_for("web", "demo", 80, instances, {"t1": "web-abc"})]
    assert service["metadata"]["name"] == "web" and service["spec"]["ports"][0]["port"] == 80
    assert slice_["metadata"]["labels"] == {"kubernetes.io/service-name": "web"}
    assert [(e["addresses"], e["conditions"]["ready"]) for e in slice_["endpoints"]] == [
        (["10.0.1.5"], True), (["10.0.1.6"], False)]
    assert slice_["endpoints"][0]["targetRef"]["name"] == "web-abc" and "targetRef" not in slice_["endpoints"][1]
    headless, _ = [validate(m) for m in kubernetes.discovery_for("api.v1", "demo", None, [])]
    assert headless["spec"] == {"clusterIP": "None"}


def test_a_listener_is_an_ingress_of_its_load_balancer():
    group_arn = "arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/web-tg/1"
    ingress = validate(kubernetes.ingress_for(
        {"LoadBalancerName": "demo-lb", "DNSName": "demo-lb-1.us-east-1.elb.localhost", "LoadBalancerArn": "arn:lb"},
        {"Port": 8080, "Protocol": "HTTP", "ListenerArn": "arn:listener",
         "DefaultActions": [{"Type": "forward", "TargetGroupArn": group_arn}]},
        {group_arn: {"TargetGroupName": "web-tg", "Port": 80}},
    ))
    assert ingress["spec"]["defaultBackend"] == {"service": {"name": "web-tg", "port": {"number": 80}}}
    assert ingress["metadata"]["annotations"]["alb.ingress.kubernetes.io/listen-ports"] == '[{"HTTP": 8080}]'
    assert ingress["status"]["loadBalancer"]["ingress"] == [{"hostname": "demo-lb-1.us-east-1.elb.localhost"}]


def test_listener_rules_are_the_ingress_rules_hosts_and_paths_in_the_spec():
    web, api = ("arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/" + n for n in ("web-tg/1", "api-tg/2"))
    ingress = validate(kubernetes.ingress_for(
        {"LoadBalancerName": "demo-lb", "DNSName": "demo-lb-1.us-east-1.elb.localhost", "LoadBalancerArn": "arn:lb"},
        {"Port": 8080, "Protocol": "HTTP", "ListenerArn": "arn:listener",
         "DefaultActions": [{"Type": "forward", "TargetGroupArn": web}]},
        {web: {"TargetGroupName": "web-tg", "Port": 80}, api: {"TargetGroupName": "api-tg", "Port": 80}},
        rules=[
            {"Priority": "5", "Conditions": [{"Field": "host-header", "HostHeaderConfig": {"Values": ["Admin.example.com"]}}],
             "Actions": [{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "403"}}]},
            {"Priority": "10", "Conditions": [
                {"Field": "path-pattern", "PathPatternConfig": {"Values": ["/api/*", "/v?/status"]}},
                {"Field": "http-request-method", "HttpRequestMethodConfig": {"Values": ["GET"]}}],
             "Actions": [{"Type": "forward", "TargetGroupArn": api}]},
        ]))
    admin, paths = ingress["spec"]["rules"]
    assert admin["host"] == "admin.example.com"
    assert admin["http"]["paths"][0]["backend"] == {"service": {"name": "rule-1", "port": {"name": "use-annotation"}}}
    assert [(p["path"], p["pathType"]) for p in paths["http"]["paths"]] == [
        ("/api", "Prefix"), ("/v?/status", "ImplementationSpecific")]
    assert paths["http"]["paths"][0]["backend"]["service"]["name"] == "api-tg"
    annotations = ingress["metadata"]["annotations"]
    assert json.loads(annotations["alb.ingress.kubernetes.io/conditions.api-tg"]) == [
        {"Field": "http-request-method", "HttpRequestMethodConfig": {"Values": ["GET"]}}]
    assert json.loads(annotations["alb.ingress.kubernetes.io/actions.rule-1"])["fixedResponseConfig"]["statusCode"] == "403"
    assert ingress["spec"]["defaultBackend"]["service"]["name"] == "web-tg"


def test_a_task_definition_is_a_pod_template():
    template = validate(kubernetes.pod_template_for(TASK_DEFINITION, "demo"))
    assert template["metadata"]["name"] == "web-1"
    assert template["template"]["spec"]["containers"][0]["args"] == ["/demo/serve.sh"]


def test_names_are_kubernetes_names():
    assert kubernetes.dns_label("My_Service.v2") == "my-service-v2"
    assert len(kubernetes.dns_label("x" * 300)) == 63
    assert yaml.safe_load(kubernetes.to_yaml({"a": "1", "b": "yes"})) == {"a": "1", "b": "yes"}


def test_a_container_others_wait_to_complete_is_an_init_container():
    definition = {**TASK_DEFINITION, "containerDefinitions": [
        {**TASK_DEFINITION["containerDefinitions"][0],
         "dependsOn": [{"containerName": "migrate", "condition": "SUCCESS"}]},
        {"name": "migrate", "image": "fargate-lab/demo:latest", "essential": False, "command": ["true"],
         "healthCheck": {"command": ["CMD", "true"]}},
    ]}
    described = task()
    described["containers"].append({"name": "migrate", "image": "fargate-lab/demo:latest", "lastStatus": "STOPPED",
                                    "exitCode": 0})
    pod = validate(kubernetes.pod_for(described, definition, node_name="fleet-1"))
    assert [c["name"] for c in pod["spec"]["containers"]] == ["web"]
    [init] = pod["spec"]["initContainers"]
    assert init["name"] == "migrate" and "livenessProbe" not in init and "readinessProbe" not in init
    assert [s["name"] for s in pod["status"]["containerStatuses"]] == ["web"]
    assert [s["name"] for s in pod["status"]["initContainerStatuses"]] == ["migrate"]


def test_task_sets_are_a_deployment_each_behind_the_service_of_the_primary_one():
    green_td = TD_ARN.replace(":1", ":2")
    service = {
        "serviceArn": f"arn:aws:ecs:{REGION_ACCOUNT}:service/demo/bg", "serviceName": "bg",
        "clusterArn": f"arn:aws:ecs:{REGION_ACCOUNT}:cluster/demo", "status": "ACTIVE", "desiredCount": 4,
        "taskDefinition": green_td, "loadBalancers": [], "deployments": [],
        "taskSets": [
            {"id": DEPLOYMENT, "taskSetArn": f"arn:aws:ecs:{REGION_ACCOUNT}:task-set/demo/bg/{DEPLOYMENT}",
             "status": "PRIMARY", "taskDefinition": green_td, "computedDesiredCount": 2, "runningCount": 2,
             "pendingCount": 0, "scale": {"value": 50.0, "unit": "PERCENT"}, "stabilityStatus": "STEADY_STATE"},
            {"id": OLD_DEPLOYMENT, "taskSetArn": f"arn:aws:ecs:{REGION_ACCOUNT}:task-set/demo/bg/{OLD_DEPLOYMENT}",
             "status": "ACTIVE", "taskDefinition": TD_ARN, "computedDesiredCount": 4, "runningCount": 3,
             "pendingCount": 1, "scale": {"value": 100.0, "unit": "PERCENT"}, "stabilityStatus": "STABILIZING"},
        ],
    }
    definitions = {TD_ARN: TASK_DEFINITION, green_td: {**TASK_DEFINITION, "revision": 2, "containerDefinitions": [
        {**TASK_DEFINITION["containerDefinitions"][0], "image": "fargate-lab/demo:v2"}]}}
    by_kind = parse_and_validate(kubernetes.to_yaml(
        kubernetes.task_set_deployments_for(service, definitions, ready={DEPLOYMENT: 2, OLD_DEPLOYMENT: 1})))
    green, blue = by_kind["Deployment"]
    assert (green["spec"]["replicas"], green["status"]["readyReplicas"]) == (2, 2)
    assert (blue["spec"]["replicas"], blue["status"]["replicas"], blue["status"]["readyReplicas"]) == (4, 4, 1)
    assert green["spec"]["template"]["spec"]["containers"][0]["image"] == "fargate-lab/demo:v2"
    assert blue["spec"]["template"]["spec"]["containers"][0]["image"] == "fargate-lab/demo:latest"
    assert green["metadata"]["annotations"]["fargate-lab/ecs-task-set"] == "PRIMARY scale 50% STEADY_STATE"
    front, = by_kind["Service"]
    # The Service sends traffic to the primary task set's Pods only, as Argo's active Service.
    assert front["spec"]["selector"] == green["spec"]["selector"]["matchLabels"]
    assert front["spec"]["selector"] != blue["spec"]["selector"]["matchLabels"]
