"""volumesFrom: ECS's validation at registration through boto3 against the live lab, and which
mounts a container gets from its sources (pure)."""
import copy

import pytest

from orchestrator import volumes_from
from orchestrator.models import TaskDefinition
from tests.support.api import error_of, fargate_task_definition


def definition(web=None, side=None):
    """A definition whose web container has ``web`` beside a sidecar "side" with ``side``."""
    params = fargate_task_definition(volumes=[{"name": "scratch", "host": {}}])
    params["containerDefinitions"][0].update(web or {})
    params["containerDefinitions"].append({"name": "side", "image": "fargate-lab/demo:latest", "essential": False,
                                           **(side or {})})
    return params


def test_it_keeps_and_returns_volumes_from(ecs):
    params = definition(web={"mountPoints": [{"sourceVolume": "scratch", "containerPath": "/scratch"}]},
                        side={"volumesFrom": [{"sourceContainer": "web", "readOnly": True}]})
    registered = ecs.register_task_definition(**params)["taskDefinition"]
    side = registered["containerDefinitions"][1]
    assert side["volumesFrom"] == [{"sourceContainer": "web", "readOnly": True}]
    described = ecs.describe_task_definition(taskDefinition="web")["taskDefinition"]
    assert described["containerDefinitions"][1]["volumesFrom"] == side["volumesFrom"]
    assert described["containerDefinitions"][0]["volumesFrom"] == []


REFUSED = {
    "an unknown container": (definition(side={"volumesFrom": [{"sourceContainer": "db"}]}),
                             "Invalid 'volumesFrom' setting. Unknown container: 'db'."),
    "itself": (definition(side={"volumesFrom": [{"sourceContainer": "side"}]}),
               "Invalid 'volumesFrom' setting. Container 'side' cannot mount volumes from itself: sourceContainer "
               "must be another container of the task definition."),
    "no sourceContainer": (definition(side={"volumesFrom": [{"readOnly": True}]}),
                           "Container 'side': volumesFrom must each give a sourceContainer."),
    "a cycle": (definition(web={"volumesFrom": [{"sourceContainer": "side"}]},
                           side={"volumesFrom": [{"sourceContainer": "web"}]}),
                "Invalid 'volumesFrom' setting. The containers' volumesFrom must not form a cycle."),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_it_refuses_what_ecs_refuses_with_its_message(ecs, name):
    params, expected = REFUSED[name]
    code, message, status = error_of(ecs.register_task_definition, **copy.deepcopy(params))
    assert (status, code, message) == (400, "ClientException", expected)
    assert not TaskDefinition.objects.exists()


def test_a_longer_cycle_is_refused_too():
    containers = [{"name": "a", "volumesFrom": [{"sourceContainer": "b"}]},
                  {"name": "b", "volumesFrom": [{"sourceContainer": "c"}]},
                  {"name": "c", "volumesFrom": [{"sourceContainer": "a"}]}]
    assert "cycle" in volumes_from.problem(containers)
    containers[2]["volumesFrom"] = []
    assert volumes_from.problem(containers) is None


DEFINITIONS = {
    "app": {"name": "app", "mountPoints": [{"sourceVolume": "scratch", "containerPath": "/data"},
                                           {"sourceVolume": "config", "containerPath": "/config"}]},
    "relay": {"name": "relay", "volumesFrom": [{"sourceContainer": "app"}],
              "mountPoints": [{"sourceVolume": "own", "containerPath": "/config"}]},
    "reader": {"name": "reader", "volumesFrom": [{"sourceContainer": "relay", "readOnly": True}]},
}
OWN = {"app": [("v-scratch", "/data", False, True), ("v-config", "/config", True)],
       "relay": [("v-own", "/config", False, False)], "reader": []}


def test_a_container_gets_its_sources_mounts_at_their_paths():
    mounts = volumes_from.resolver(DEFINITIONS, lambda d: OWN[d["name"]])
    # The source's read-only mount stays read-only; its copy of the image's files is the source's own.
    # The container's own mount wins at a path both give.
    assert sorted(mounts(DEFINITIONS["relay"])) == [("v-own", "/config", False, False),
                                                   ("v-scratch", "/data", False, False)]
    # What the source has from its own volumesFrom is passed on; readOnly makes every one read-only.
    assert sorted(mounts(DEFINITIONS["reader"])) == [("v-own", "/config", True, False),
                                                    ("v-scratch", "/data", True, False)]
    assert mounts(DEFINITIONS["app"]) == OWN["app"]


def test_a_sources_image_volumes_are_those_no_mount_point_covers():
    assert volumes_from.sources({"containerDefinitions": list(DEFINITIONS.values())}) == {"app", "relay"}
    assert volumes_from.uncovered(DEFINITIONS["app"], {"/data", "/seed", "/config"}) == ["/seed"]
    name = volumes_from.image_volume("app", "/seed")
    assert "." in name and name != volumes_from.image_volume("app", "/other")
