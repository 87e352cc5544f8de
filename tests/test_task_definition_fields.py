"""Every task-definition field is honoured, echoed or refused: never accepted and ignored."""
import copy
import json
import re

import pytest

from orchestrator.frontend import EcsError
from orchestrator.frontend.task_definition_fields import (
    CONTAINER_DEFINITION, ECHOED, HONOURED, NOT_YET, REFUSED, TABLES, Context, check_members, host_architecture,
    readme_section,
)
from orchestrator.frontend.validation import service_model
from orchestrator.models import Account, TaskDefinition
from tests.support.api import HARDENED_CONTAINER, error_of, fargate_task_definition
from tests.support.common import ROOT


def _with_container(**fields):
    params = fargate_task_definition()
    params["containerDefinitions"][0].update(fields)
    return params


def _with_sidecar(sidecar, **fields):
    """A definition whose web container has ``fields`` beside a sidecar "side" with ``sidecar``."""
    params = _with_container(**fields)
    params["containerDefinitions"].append({"name": "side", "image": "fargate-lab/demo:latest", "essential": False,
                                           **sidecar})
    return params


def _with_linux(**fields):
    return _with_container(linuxParameters=fields)


OTHER_ARCH = "ARM64" if host_architecture() == "X86_64" else "X86_64"

# One request per way a field is refused; the key names the field and the message must name it.
REFUSED_REQUESTS = {
    "repositoryCredentials": _with_container(repositoryCredentials={"credentialsParameter": "arn:x"}),
    "links": _with_container(links=["db"]),
    "restartPolicy": _with_container(restartPolicy={"enabled": True}),
    "environmentFiles": _with_container(environmentFiles=[{"value": "arn:aws:s3:::b/x.env", "type": "s3"}]),
    "mountPoints": dict(_with_container(mountPoints=[{"sourceVolume": "v", "containerPath": "data"}]),
                        volumes=[{"name": "v", "host": {}}]),
    "secrets (without an execution role)": _with_container(
        secrets=[{"name": "X", "valueFrom": "arn:aws:ssm:us-east-1:0:parameter/x"}]),
    "secrets (not a store)": dict(_with_container(secrets=[{"name": "X", "valueFrom": "arn:aws:s3:::bucket/x"}]),
                                  executionRoleArn="arn:aws:iam::000000000000:role/exec"),
    "secrets (a name twice)": dict(_with_container(secrets=[{"name": "X", "valueFrom": "/a"},
                                                            {"name": "X", "valueFrom": "/b"}]),
                                   executionRoleArn="arn:aws:iam::000000000000:role/exec"),
    "dependsOn": _with_container(dependsOn=[{"containerName": "x", "condition": "START"}]),
    "dependsOn (COMPLETE on an essential container)": _with_sidecar(
        {"essential": True}, dependsOn=[{"containerName": "side", "condition": "COMPLETE"}]),
    "dependsOn (HEALTHY without a health check)": _with_sidecar(
        {}, dependsOn=[{"containerName": "side", "condition": "HEALTHY"}]),
    "dependsOn (a cycle)": _with_sidecar(
        {"dependsOn": [{"containerName": "web", "condition": "START"}]},
        dependsOn=[{"containerName": "side", "condition": "START"}]),
    "startTimeout": _with_container(startTimeout=121),
    "hostname": _with_container(hostname="web"),
    "disableNetworking": _with_container(disableNetworking=True),
    "privileged": _with_container(privileged=True),
    "dnsServers": _with_container(dnsServers=["8.8.8.8"]),
    "dnsSearchDomains": _with_container(dnsSearchDomains=["example.com"]),
    "extraHosts": _with_container(extraHosts=[{"hostname": "a", "ipAddress": "1.2.3.4"}]),
    "dockerSecurityOptions": _with_container(dockerSecurityOptions=["no-new-privileges"]),
    "dockerLabels": _with_container(dockerLabels={"fargatelab.task-arn": "arn:of-another-task"}),
    "dockerLabels (any case)": _with_container(dockerLabels={"FargateLab.lab": "other-lab"}),
    "ulimits (nofile beyond Fargate's)": _with_container(
        ulimits=[{"name": "nofile", "softLimit": 1024, "hardLimit": 2_000_000}]),
    "ulimits (soft above hard)": _with_container(ulimits=[{"name": "nproc", "softLimit": 20, "hardLimit": 10}]),
    "logConfiguration (awslogs without its region and prefix)": _with_container(
        logConfiguration={"logDriver": "awslogs", "options": {"awslogs-group": "g"}}),
    "logConfiguration (another driver)": _with_container(logConfiguration={"logDriver": "splunk", "options": {}}),
    "logConfiguration (an option not honoured)": _with_container(logConfiguration={"logDriver": "awslogs", "options": {
        "awslogs-group": "g", "awslogs-region": "us-east-1", "awslogs-stream-prefix": "p",
        "awslogs-multiline-pattern": "^x"}}),
    "logConfiguration (another region)": _with_container(logConfiguration={"logDriver": "awslogs", "options": {
        "awslogs-group": "g", "awslogs-region": "eu-west-3", "awslogs-stream-prefix": "p"}}),
    "healthCheck (no command)": _with_container(healthCheck={"command": [], "interval": 10}),
    "healthCheck (not CMD or CMD-SHELL)": _with_container(healthCheck={"command": ["curl", "-f", "http://x/"]}),
    "healthCheck (CMD-SHELL in pieces)": _with_container(healthCheck={"command": ["CMD-SHELL", "test", "-f", "x"]}),
    "healthCheck (interval)": _with_container(healthCheck={"command": ["CMD", "true"], "interval": 4}),
    "healthCheck (timeout)": _with_container(healthCheck={"command": ["CMD", "true"], "timeout": 61}),
    "healthCheck (retries)": _with_container(healthCheck={"command": ["CMD", "true"], "retries": 0}),
    "healthCheck (startPeriod)": _with_container(healthCheck={"command": ["CMD", "true"], "startPeriod": 301}),
    "systemControls": _with_container(systemControls=[{"namespace": "kernel.domainname", "value": "x"}]),
    "resourceRequirements": _with_container(resourceRequirements=[{"type": "GPU", "value": "1"}]),
    "firelensConfiguration": _with_container(firelensConfiguration={"type": "fluentbit"}),
    "credentialSpecs": _with_container(credentialSpecs=["credentialspec:arn:x"]),
    "capabilities": _with_linux(capabilities={"add": ["NET_ADMIN"]}),
    "capabilities (unknown)": _with_linux(capabilities={"drop": ["NOT_A_CAPABILITY"]}),
    "devices": _with_linux(devices=[{"hostPath": "/dev/kmsg"}]),
    "sharedMemorySize": _with_linux(sharedMemorySize=64),
    "tmpfs": _with_linux(tmpfs=[{"containerPath": "/t", "size": 10}]),
    "maxSwap": _with_linux(maxSwap=1024),
    "swappiness": _with_linux(swappiness=10),
    "containerPortRange": _with_container(portMappings=[{"containerPortRange": "8000-8010"}]),
    "pidMode": fargate_task_definition(pidMode="task"),
    "pidMode (host)": fargate_task_definition(pidMode="host"),
    "ipcMode": fargate_task_definition(ipcMode="none"),
    "networkMode": fargate_task_definition(networkMode="host"),
    "proxyConfiguration": fargate_task_definition(proxyConfiguration={"containerName": "envoy"}),
    "inferenceAccelerators": fargate_task_definition(
        inferenceAccelerators=[{"deviceName": "d", "deviceType": "eia2.medium"}]),
    "ephemeralStorage": fargate_task_definition(ephemeralStorage={"sizeInGiB": 30}),
    "runtimePlatform (Windows)": fargate_task_definition(
        runtimePlatform={"operatingSystemFamily": "WINDOWS_SERVER_2019_CORE"}),
    "runtimePlatform (other architecture)": fargate_task_definition(runtimePlatform={"cpuArchitecture": OTHER_ARCH}),
    "enableFaultInjection": fargate_task_definition(enableFaultInjection=True),
    "placementConstraints": fargate_task_definition(
        placementConstraints=[{"type": "memberOf", "expression": "attribute:x == y"}]),
    "efsVolumeConfiguration (fileSystemId)": fargate_task_definition(
        volumes=[{"name": "v", "efsVolumeConfiguration": {"fileSystemId": "fs-1"}}]),
    "efsVolumeConfiguration (access point)": fargate_task_definition(volumes=[{"name": "v", "efsVolumeConfiguration": {
        "fileSystemId": "fs-0123abcd", "transitEncryption": "ENABLED",
        "authorizationConfig": {"accessPointId": "fsap-0123456789abcdef0"}}}]),
    "efsVolumeConfiguration (IAM)": fargate_task_definition(volumes=[{"name": "v", "efsVolumeConfiguration": {
        "fileSystemId": "fs-0123abcd", "transitEncryption": "ENABLED", "authorizationConfig": {"iam": "ENABLED"}}}]),
    "s3filesVolumeConfiguration": fargate_task_definition(volumes=[{
        "name": "v", "s3filesVolumeConfiguration": {"fileSystemArn": "arn:aws:s3files:us-east-1:0:fs/x"}}]),
    "configuredAtLaunch": fargate_task_definition(volumes=[{"name": "v", "configuredAtLaunch": True}]),
    "fsxWindowsFileServerVolumeConfiguration": fargate_task_definition(volumes=[{
        "name": "v", "fsxWindowsFileServerVolumeConfiguration": {
            "fileSystemId": "fs-1", "rootDirectory": "/", "authorizationConfig": {
                "credentialsParameter": "arn:x", "domain": "d"}}}]),
    "sourcePath": fargate_task_definition(volumes=[{"name": "root", "host": {"sourcePath": "/"}}]),
    "dockerVolumeConfiguration": fargate_task_definition(
        volumes=[{"name": "v", "dockerVolumeConfiguration": {"scope": "shared", "driver": "local"}}]),
}


@pytest.mark.parametrize("name", sorted(REFUSED_REQUESTS))
def test_it_refuses_the_field_with_ecs_error_and_writes_nothing(ecs, name):
    code, message, status = error_of(ecs.register_task_definition, **copy.deepcopy(REFUSED_REQUESTS[name]))
    assert (status, code) == (400, "ClientException")
    field = name.split(" ")[0]
    assert field in message, message
    assert any(words in message for words in ("not supported", "must", "cannot be set", "do not support")), message
    assert not TaskDefinition.objects.exists()


def test_it_says_when_a_field_is_only_missing_from_the_lab(ecs):
    _, message, _ = error_of(ecs.register_task_definition, **REFUSED_REQUESTS["firelensConfiguration"])
    assert message == "Container 'web': firelensConfiguration is not supported by Fargate Lab yet (FireLens log routing)."


def test_a_health_check_is_kept_with_the_defaults_ecs_fills_in(ecs):
    check = {"command": ["CMD-SHELL", "test -f /tmp/ok"], "startPeriod": 10}
    registered = ecs.register_task_definition(**_with_container(healthCheck=check))["taskDefinition"]
    described = ecs.describe_task_definition(taskDefinition=registered["taskDefinitionArn"])["taskDefinition"]
    assert described["containerDefinitions"][0]["healthCheck"] == {
        "command": ["CMD-SHELL", "test -f /tmp/ok"], "interval": 30, "timeout": 5, "retries": 3, "startPeriod": 10}


HONOURED_CONTAINER = {
    **HARDENED_CONTAINER,
    "startTimeout": 30,
    "versionConsistency": "disabled",
    "portMappings": [{"containerPort": 80, "name": "http", "appProtocol": "http"}],
    "privileged": False,
    "disableNetworking": False,
    "mountPoints": [],
    "restartPolicy": {"enabled": False},
}


def test_it_keeps_and_returns_what_it_honours_and_echoes(ecs):
    params = _with_container(**copy.deepcopy(HONOURED_CONTAINER))
    params.update(taskRoleArn="arn:aws:iam::000000000000:role/app", executionRoleArn="arn:aws:iam::0:role/exec",
                  runtimePlatform={"operatingSystemFamily": "LINUX", "cpuArchitecture": host_architecture()},
                  volumes=[{"name": "scratch", "host": {}}], enableFaultInjection=False)
    registered = ecs.register_task_definition(**params)["taskDefinition"]
    container = registered["containerDefinitions"][0]
    for member, value in HONOURED_CONTAINER.items():
        if member != "portMappings":
            assert container[member] == value, member
    assert container["portMappings"] == [
        {"containerPort": 80, "hostPort": 80, "protocol": "tcp", "name": "http", "appProtocol": "http"}]
    for member in ("taskRoleArn", "executionRoleArn", "runtimePlatform", "volumes"):
        assert registered[member] == params[member]
    assert ecs.describe_task_definition(taskDefinition="web")["taskDefinition"] == registered


def test_it_keeps_bridge_only_fields_on_a_definition_fargate_cannot_run(ecs):
    params = {"family": "old", "containerDefinitions": [
        {"name": "a", "image": "busybox", "memory": 128, "links": ["db"], "hostname": "a", "dnsServers": ["1.1.1.1"]}]}
    container = ecs.register_task_definition(**params)["taskDefinition"]["containerDefinitions"][0]
    assert (container["links"], container["hostname"], container["dnsServers"]) == (["db"], "a", ["1.1.1.1"])


REFUSED_OVERRIDES = {
    "environmentFiles": {"containerOverrides": [
        {"name": "web", "environmentFiles": [{"value": "arn:aws:s3:::b/x.env", "type": "s3"}]}]},
    "resourceRequirements": {"containerOverrides": [
        {"name": "web", "resourceRequirements": [{"type": "GPU", "value": "1"}]}]},
    "inferenceAcceleratorOverrides": {"inferenceAcceleratorOverrides": [{"deviceName": "d", "deviceType": "t"}]},
    "ephemeralStorage": {"ephemeralStorage": {"sizeInGiB": 30}},
}


@pytest.mark.parametrize("name", sorted(REFUSED_OVERRIDES))
def test_run_task_refuses_the_overrides_it_cannot_honour(ecs, name):
    from orchestrator.models import Task

    ecs.create_cluster(clusterName="demo")
    ecs.register_task_definition(**fargate_task_definition())
    code, message, status = error_of(
        ecs.run_task, cluster="demo", taskDefinition="web", overrides=REFUSED_OVERRIDES[name],
        launchType="FARGATE", networkConfiguration={"awsvpcConfiguration": {"subnets": ["subnet-a"]}})
    assert (status, code) == (400, "ClientException")
    assert message.startswith("overrides: ") and name in message and "not supported" in message
    assert not Task.objects.exists()


@pytest.mark.parametrize("shape_name", sorted(TABLES))
def test_every_member_of_botocores_model_has_a_decision(shape_name):
    """A member botocore adds later fails this test until it is decided on."""
    members = set(service_model().shape_for(shape_name).members)
    assert members == set(TABLES[shape_name]), shape_name
    for name, field in TABLES[shape_name].items():
        assert field.decision in (HONOURED, ECHOED, REFUSED, NOT_YET) and field.note, name


def test_the_tables_cover_every_structure_they_open():
    """Members with their own table are those of the model's matching shapes."""
    model = service_model()
    container = model.shape_for("ContainerDefinition").members
    assert container["linuxParameters"].name == "LinuxParameters"
    assert container["portMappings"].member.name == "PortMapping"
    assert model.shape_for("RegisterTaskDefinitionRequest").members["volumes"].member.name == "Volume"
    assert CONTAINER_DEFINITION["linuxParameters"].members is TABLES["LinuxParameters"]
    assert CONTAINER_DEFINITION["portMappings"].members is TABLES["PortMapping"]
    assert container["volumesFrom"].member.name == "VolumeFrom"
    assert CONTAINER_DEFINITION["volumesFrom"].members is TABLES["VolumeFrom"]
    volume = model.shape_for("Volume").members
    assert volume["efsVolumeConfiguration"].name == "EFSVolumeConfiguration"
    assert volume["efsVolumeConfiguration"].members["authorizationConfig"].name == "EFSAuthorizationConfig"
    assert TABLES["Volume"]["efsVolumeConfiguration"].members is TABLES["EFSVolumeConfiguration"]
    assert TABLES["EFSVolumeConfiguration"]["authorizationConfig"].members is TABLES["EFSAuthorizationConfig"]


def test_it_refuses_a_member_it_has_not_decided_on():
    with pytest.raises(EcsError) as info:
        check_members({"futureField": 1}, CONTAINER_DEFINITION, Context("awsvpc", True), "Container 'web': ")
    assert info.value.error_type == "ClientException"
    assert "futureField is not supported by Fargate Lab" in info.value.message


def test_the_readme_lists_every_decision():
    readme = (ROOT / "README.md").read_text()
    found = re.search(r"<!-- task-definition-fields:start -->\n(.*?)<!-- task-definition-fields:end -->", readme, re.S)
    assert found and found.group(1) == readme_section()


def test_the_dashboard_json_goes_through_the_same_decisions(alice_client, db):
    Account.default()
    body = json.dumps(_with_container(firelensConfiguration={"type": "fluentbit"}))
    response = alice_client.post("/task-definitions/", {"json": body})
    assert response.status_code == 400
    assert b"ClientException: Container &#x27;web&#x27;: firelensConfiguration is not supported by Fargate Lab yet" \
        in response.content
    assert not TaskDefinition.objects.exists()
