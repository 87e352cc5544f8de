"""EFS volumes in task definitions: ECS's validation and echo through boto3 against the live lab,
and the pure parts of their mounting (volume names per account, nested directory volumes)."""
import copy

import pytest

from orchestrator import efs
from orchestrator.models import TaskDefinition
from tests.support.api import error_of, fargate_task_definition

FS = "fs-0123456789abcdef0"


def efs_definition(config=None, mount_points=None, **volume):
    params = fargate_task_definition()
    params["volumes"] = [{"name": "shared", "efsVolumeConfiguration": {"fileSystemId": FS, **(config or {})},
                          **volume}]
    params["containerDefinitions"][0]["mountPoints"] = (
        [{"sourceVolume": "shared", "containerPath": "/mnt/shared"}] if mount_points is None else mount_points)
    return params


def test_root_directory_defaults_to_slash_in_register_and_describe(ecs):
    registered = ecs.register_task_definition(**efs_definition())["taskDefinition"]
    assert registered["volumes"] == [{"name": "shared", "efsVolumeConfiguration": {"fileSystemId": FS,
                                                                                   "rootDirectory": "/"}}]
    described = ecs.describe_task_definition(taskDefinition="web")["taskDefinition"]
    assert described["volumes"] == registered["volumes"]
    assert described["containerDefinitions"][0]["mountPoints"] == [
        {"sourceVolume": "shared", "containerPath": "/mnt/shared"}]


def test_it_echoes_what_it_is_given(ecs):
    config = {"rootDirectory": "/data/uploads", "transitEncryption": "ENABLED", "transitEncryptionPort": 2049,
              "authorizationConfig": {"iam": "DISABLED"}}
    points = [{"sourceVolume": "shared", "containerPath": "/uploads", "readOnly": True}]
    registered = ecs.register_task_definition(**efs_definition(config, points))["taskDefinition"]
    assert registered["volumes"][0]["efsVolumeConfiguration"] == {"fileSystemId": FS, **config}
    assert registered["containerDefinitions"][0]["mountPoints"] == points
    assert ecs.describe_task_definition(taskDefinition="web")["taskDefinition"] == registered


# ECS's own rules, with its messages.
ECS_RULES = {
    "access point with a root directory": (
        {"rootDirectory": "/data", "transitEncryption": "ENABLED",
         "authorizationConfig": {"accessPointId": "fsap-0123456789abcdef0"}},
        'When using an EFS access point, the root directory must either be set to "/" or be omitted.'),
    "access point without transit encryption": (
        {"authorizationConfig": {"accessPointId": "fsap-0123456789abcdef0"}},
        "When using an EFS access point, transit encryption must be enabled."),
    "IAM without transit encryption": (
        {"transitEncryption": "DISABLED", "authorizationConfig": {"iam": "ENABLED"}},
        "When using EFS IAM authorization, transit encryption must be enabled."),
}


@pytest.mark.parametrize("name", sorted(ECS_RULES))
def test_it_applies_ecs_rules_with_ecs_messages(ecs, name):
    config, expected = ECS_RULES[name]
    code, message, status = error_of(ecs.register_task_definition, **efs_definition(config))
    assert (status, code, message) == (400, "ClientException", expected)
    assert not TaskDefinition.objects.exists()


# What the lab refuses, each saying why.
REFUSED = {
    "an access point": ({"transitEncryption": "ENABLED", "authorizationConfig": {"accessPointId": "fsap-0123abcd"}},
                        "accessPointId is not supported by Fargate Lab: it has no EFS API"),
    "IAM authorization": ({"transitEncryption": "ENABLED", "authorizationConfig": {"iam": "ENABLED"}},
                          "iam ENABLED is not supported by Fargate Lab: it keeps no file system policies"),
    "a parent directory": ({"rootDirectory": "/data/../../etc"}, "'.' and '..' are not allowed"),
    "a relative parent": ({"rootDirectory": ".."}, "'.' and '..' are not allowed"),
    "a control character": ({"rootDirectory": "/a\nb"}, "must not contain control characters"),
    "a long directory": ({"rootDirectory": "/" + "a" * 300}, "must be at most 255 characters"),
    "a file system ARN": ({"fileSystemId": f"arn:aws:elasticfilesystem:us-east-1:000000000000:file-system/{FS}"},
                          "must be an EFS file system ID"),
    "upper-case hex": ({"fileSystemId": "fs-ABCDEF12"}, "must be an EFS file system ID"),
    "a port out of range": ({"transitEncryption": "ENABLED", "transitEncryptionPort": 70000},
                            "transitEncryptionPort must be a port number"),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_it_refuses_what_it_cannot_honour_saying_why(ecs, name):
    config, expected = REFUSED[name]
    code, message, status = error_of(ecs.register_task_definition, **efs_definition(config))
    assert (status, code) == (400, "ClientException")
    assert expected in message, message
    assert not TaskDefinition.objects.exists()


MOUNT_POINTS = {
    "an unknown volume": ([{"sourceVolume": "other", "containerPath": "/x"}], "'other' is not a volume of this"),
    "a relative path": ([{"sourceVolume": "shared", "containerPath": "x"}], "must be an absolute path"),
    "the root": ([{"sourceVolume": "shared", "containerPath": "/"}], "must be an absolute path other than '/'"),
    "a parent": ([{"sourceVolume": "shared", "containerPath": "/a/../etc"}], "without '..'"),
    "no path": ([{"sourceVolume": "shared"}], "must each give a sourceVolume and a containerPath"),
    "a repeated path": ([{"sourceVolume": "shared", "containerPath": "/x"},
                         {"sourceVolume": "shared", "containerPath": "/x/"}], "must not repeat a containerPath"),
}


@pytest.mark.parametrize("name", sorted(MOUNT_POINTS))
def test_it_refuses_mount_points_it_cannot_mount(ecs, name):
    points, expected = MOUNT_POINTS[name]
    code, message, status = error_of(ecs.register_task_definition, **efs_definition(mount_points=points))
    assert (status, code) == (400, "ClientException")
    assert message.startswith("Container 'web': mountPoints") and expected in message, message


def test_a_wrong_transit_encryption_is_the_models_error(ecs):
    code, _, status = error_of(ecs.register_task_definition, **efs_definition({"transitEncryption": "YES"}))
    assert (status, code) == (400, "InvalidParameterException")


def test_volume_names_must_be_unique(ecs):
    params = efs_definition()
    params["volumes"].append(copy.deepcopy(params["volumes"][0]))
    code, message, _ = error_of(ecs.register_task_definition, **params)
    assert code == "ClientException" and "Volume names must be unique" in message


# --- the pure parts ---------------------------------------------------------------------------

def test_each_account_and_region_has_its_own_volume_of_a_file_system():
    names = {efs.volume_name("lab", account, region, FS)
             for account in ("111111111111", "222222222222") for region in ("us-east-1", "eu-west-1")}
    assert len(names) == 4
    assert efs.volume_name("lab", "111111111111", "us-east-1", FS) == f"fargatelab-lab-111111111111-us-east-1-{FS}"
    assert efs.volume_name("lab", "1", "r", FS, "/data") != efs.volume_name("lab", "1", "r", FS, "/data2")


def test_root_directories_are_normalized():
    assert [efs.root_directory(c) for c in ({}, {"rootDirectory": "/"}, {"rootDirectory": "data//x/"})] == [
        "/", "/", "/data/x"]


def test_a_mount_of_an_ancestor_nests_the_volumes_of_its_descendants():
    volumes = {"fs": {"fileSystemId": FS, "rootDirectory": "/"}, "sub": {"fileSystemId": FS, "rootDirectory": "/a"}}
    roots = {FS: {"/", "/a", "/a/b", "/other"}}

    def name_of(file_system, root):
        return f"{file_system}:{root}"

    whole = {"mountPoints": [{"sourceVolume": "fs", "containerPath": "/mnt/fs/", "readOnly": True}]}
    assert efs.mounts_for(whole, volumes, name_of, roots) == [
        (f"{FS}:/", "/mnt/fs", True), (f"{FS}:/a", "/mnt/fs/a", True), (f"{FS}:/other", "/mnt/fs/other", True),
        (f"{FS}:/a/b", "/mnt/fs/a/b", True)]
    part = {"mountPoints": [{"sourceVolume": "sub", "containerPath": "/data"}]}
    assert efs.mounts_for(part, volumes, name_of, roots) == [(f"{FS}:/a", "/data", False),
                                                             (f"{FS}:/a/b", "/data/b", False)]
    assert efs.mounts_for({"mountPoints": []}, volumes, name_of, roots) == []
