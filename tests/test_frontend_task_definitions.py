"""Task definitions: Fargate sizes, refused privileges, revisions, describe and list."""
import copy

import pytest

from orchestrator.models import TaskDefinition
from tests.support.api import FARGATE, error_of, fargate_task_definition

ARN = "arn:aws:ecs:us-east-1:000000000000:task-definition/"


def test_it_registers_a_fargate_task_definition(ecs):
    response = ecs.register_task_definition(**fargate_task_definition(tags=[{"key": "app", "value": "web"}]))
    td = response["taskDefinition"]
    assert td["taskDefinitionArn"] == ARN + "web:1"
    assert (td["family"], td["revision"], td["status"]) == ("web", 1, "ACTIVE")
    assert (td["cpu"], td["memory"]) == ("256", "512")
    assert td["compatibilities"] == ["EC2", "FARGATE"]
    assert td["requiresCompatibilities"] == ["FARGATE"]
    assert td["networkMode"] == "awsvpc"
    assert td["containerDefinitions"][0]["portMappings"] == [{"containerPort": 80, "hostPort": 80, "protocol": "tcp"}]
    assert td["containerDefinitions"][0]["essential"] is True
    assert response["tags"] == [{"key": "app", "value": "web"}]
    row = TaskDefinition.objects.get()
    assert (row.cpu, row.memory) == (256, 512)
    assert row.body["containerDefinitions"][0]["image"] == "fargate-lab/demo:latest"


def test_it_describes_what_it_registered(ecs):
    registered = ecs.register_task_definition(**fargate_task_definition())["taskDefinition"]
    for ref in ("web", "web:1", ARN + "web:1"):
        assert ecs.describe_task_definition(taskDefinition=ref)["taskDefinition"] == registered


def test_it_describes_tags_when_asked(ecs):
    ecs.register_task_definition(**fargate_task_definition(tags=[{"key": "a", "value": "b"}]))
    assert "tags" not in ecs.describe_task_definition(taskDefinition="web")
    assert ecs.describe_task_definition(taskDefinition="web", include=["TAGS"])["tags"] == [{"key": "a", "value": "b"}]


def test_it_numbers_revisions_past_deregistered_ones(ecs):
    ecs.register_task_definition(**fargate_task_definition())
    ecs.register_task_definition(**fargate_task_definition())
    ecs.deregister_task_definition(taskDefinition="web:2")
    assert ecs.register_task_definition(**fargate_task_definition())["taskDefinition"]["revision"] == 3
    assert ecs.describe_task_definition(taskDefinition="web")["taskDefinition"]["revision"] == 3
    assert ecs.describe_task_definition(taskDefinition="web:2")["taskDefinition"]["status"] == "INACTIVE"


def test_it_deregisters_a_revision(ecs):
    ecs.create_cluster()
    ecs.register_task_definition(**fargate_task_definition())
    td = ecs.deregister_task_definition(taskDefinition="web:1")["taskDefinition"]
    assert td["status"] == "INACTIVE"
    assert "deregisteredAt" in td
    assert error_of(ecs.describe_task_definition, taskDefinition="web")[0] == "ClientException"
    assert error_of(ecs.deregister_task_definition, taskDefinition="web")[0] == "InvalidParameterException"
    assert error_of(ecs.run_task, taskDefinition="web:1", **FARGATE)[0] == "ClientException"


@pytest.mark.parametrize(
    "cpu, memory, expected",
    [
        ("256", "512", ("256", "512")),
        ("0.25 vCPU", "1GB", ("256", "1024")),
        ("1 vCPU", "2 GB", ("1024", "2048")),
        (".5 vcpu", "4096", ("512", "4096")),
        ("4096", "30720", ("4096", "30720")),
        ("8192", "20480", ("8192", "20480")),
        ("16384", "122880", ("16384", "122880")),
    ],
)
def test_it_accepts_the_fargate_sizes(ecs, cpu, memory, expected):
    td = ecs.register_task_definition(**fargate_task_definition(cpu=cpu, memory=memory))["taskDefinition"]
    assert (td["cpu"], td["memory"]) == expected


@pytest.mark.parametrize(
    "cpu, memory",
    [
        ("256", "4096"), ("300", "512"), ("512", "512"), ("8192", "17408"), ("4096", "31744"),
        ("lots", "512"), ("256", "much"), ("0.3 vCPU", "1GB"), ("256", "0.7 GB"), ("", "512"), ("-256", "512"),
    ],
)
def test_it_refuses_sizes_fargate_does_not_have(ecs, cpu, memory):
    code, message, status = error_of(ecs.register_task_definition, **fargate_task_definition(cpu=cpu, memory=memory))
    assert (code, status) == ("ClientException", 400)
    assert message
    assert not TaskDefinition.objects.exists()


def test_it_requires_cpu_and_memory_for_fargate(ecs):
    params = fargate_task_definition()
    del params["cpu"]
    code, message, _ = error_of(ecs.register_task_definition, **params)
    assert code == "ClientException"
    assert "cpu" in message


def test_it_requires_awsvpc_for_fargate(ecs):
    code, message, _ = error_of(ecs.register_task_definition, **fargate_task_definition(networkMode="bridge"))
    assert (code, message) == ("ClientException", "Fargate only supports network mode 'awsvpc'.")
    params = fargate_task_definition()
    del params["networkMode"]
    assert error_of(ecs.register_task_definition, **params)[0] == "ClientException"


def test_it_registers_an_ec2_style_definition_that_cannot_run_on_fargate(ecs):
    ecs.create_cluster()
    params = {"family": "old", "containerDefinitions": [{"name": "a", "image": "busybox", "memory": 128, "cpu": 10}]}
    td = ecs.register_task_definition(**params)["taskDefinition"]
    assert td["compatibilities"] == ["EC2"]
    assert error_of(ecs.run_task, taskDefinition="old", **FARGATE)[0] == "InvalidParameterException"


def _with_container(**fields):
    params = fargate_task_definition()
    params["containerDefinitions"][0].update(fields)
    return params


REFUSED = {
    "privileged": _with_container(privileged=True),
    "host network": fargate_task_definition(networkMode="host"),
    "host pid": fargate_task_definition(pidMode="host"),
    "host ipc": fargate_task_definition(ipcMode="host"),
    "host path": fargate_task_definition(volumes=[{"name": "root", "host": {"sourcePath": "/"}}]),
    "docker volume": fargate_task_definition(
        volumes=[{"name": "v", "dockerVolumeConfiguration": {"scope": "shared", "driver": "local"}}]
    ),
    "capabilities": _with_container(linuxParameters={"capabilities": {"add": ["SYS_ADMIN"]}}),
    "devices": _with_container(linuxParameters={"devices": [{"hostPath": "/dev/kmsg"}]}),
    "security options": _with_container(dockerSecurityOptions=["apparmor:unconfined"]),
    "duplicate names": fargate_task_definition(
        containerDefinitions=[{"name": "a", "image": "x"}, {"name": "a", "image": "y"}]
    ),
    "no essential": fargate_task_definition(containerDefinitions=[{"name": "a", "image": "x", "essential": False}]),
    "no containers": fargate_task_definition(containerDefinitions=[]),
    "bad family": fargate_task_definition(family="web app"),
    "bad container name": _with_container(name="web/1"),
    "tiny container memory": _with_container(memory=4),
    "containers over task memory": _with_container(memory=1024),
    "image with a space": _with_container(image="demo latest"),
    "image with a bad digest": _with_container(image="demo@sha256:abc"),
    "image too long": _with_container(image="a" * 256),
    "mismatched awsvpc ports": _with_container(portMappings=[{"containerPort": 80, "hostPort": 8080}]),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_it_refuses_and_writes_nothing(ecs, name):
    code, message, status = error_of(ecs.register_task_definition, **copy.deepcopy(REFUSED[name]))
    assert status == 400
    assert code in ("ClientException", "InvalidParameterException")
    assert message
    assert not TaskDefinition.objects.exists()


@pytest.mark.parametrize("image", ["UPPER/Case:1", "127.0.0.1:5000/team/web:v1#2", "a" * 255,
                                   "repo/web@sha256:" + "ab" * 32])
def test_it_accepts_the_image_references_ecs_accepts(ecs, image):
    params = _with_container(image=image)
    assert ecs.register_task_definition(**params)["taskDefinition"]["containerDefinitions"][0]["image"] == image


def test_it_allows_an_empty_task_volume(ecs):
    params = fargate_task_definition(volumes=[{"name": "scratch", "host": {}}])
    assert ecs.register_task_definition(**params)["taskDefinition"]["volumes"] == [{"name": "scratch", "host": {}}]


def test_it_lists_task_definitions(ecs):
    for family in ("web", "web", "api"):
        ecs.register_task_definition(**fargate_task_definition(family=family))
    ecs.deregister_task_definition(taskDefinition="api:1")
    assert ecs.list_task_definitions()["taskDefinitionArns"] == [ARN + "web:1", ARN + "web:2"]
    assert ecs.list_task_definitions(sort="DESC")["taskDefinitionArns"] == [ARN + "web:2", ARN + "web:1"]
    assert ecs.list_task_definitions(status="INACTIVE")["taskDefinitionArns"] == [ARN + "api:1"]
    assert ecs.list_task_definitions(familyPrefix="api")["taskDefinitionArns"] == []
    page = ecs.list_task_definitions(maxResults=1)
    assert page["taskDefinitionArns"] == [ARN + "web:1"]
    assert ecs.list_task_definitions(maxResults=1, nextToken=page["nextToken"])["taskDefinitionArns"] == [ARN + "web:2"]


def test_it_lists_task_definition_families(ecs):
    for family in ("web", "worker", "api"):
        ecs.register_task_definition(**fargate_task_definition(family=family))
    ecs.deregister_task_definition(taskDefinition="api:1")
    assert ecs.list_task_definition_families()["families"] == ["api", "web", "worker"]
    assert ecs.list_task_definition_families(status="ACTIVE")["families"] == ["web", "worker"]
    assert ecs.list_task_definition_families(status="INACTIVE")["families"] == ["api"]
    assert ecs.list_task_definition_families(familyPrefix="w")["families"] == ["web", "worker"]


@pytest.mark.parametrize("timeout", [1.5, True, "30", 121, -1, 2 ** 31])
def test_it_refuses_a_stop_timeout_fargate_would_not_honour(raw_api, timeout):
    params = _with_container(stopTimeout=timeout)
    response = raw_api("RegisterTaskDefinition", params)
    assert response.status_code == 400
    assert response.json()["__type"] in ("ClientException", "InvalidParameterException", "SerializationException")
    assert not TaskDefinition.objects.exists()
