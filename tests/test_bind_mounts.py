"""Bind mounts on plain data: which volumes are a task's own, their Docker names per task, and
the mounts of a container (the image's VOLUMEs copied in, nowhere else)."""
from orchestrator import bind_mounts
from orchestrator.docker_engine import VOLUME_NAME_MAX

BODY = {
    "volumes": [{"name": "scratch", "host": {}}, {"name": "cache"},
                {"name": "shared", "efsVolumeConfiguration": {"fileSystemId": "fs-0123abcd"}}],
    "containerDefinitions": [
        {"name": "app", "mountPoints": [{"sourceVolume": "scratch", "containerPath": "/seed/"},
                                        {"sourceVolume": "shared", "containerPath": "/efs"}]},
        {"name": "side", "mountPoints": [{"sourceVolume": "scratch", "containerPath": "/in", "readOnly": True}]}],
}


def test_the_volumes_without_configuration_are_the_tasks_own():
    assert bind_mounts.bind_volumes(BODY) == {"scratch", "cache"}
    assert bind_mounts.mounted(BODY) == {"scratch"}


def test_each_task_has_its_own_volume_with_a_docker_name():
    names = {bind_mounts.volume_name("lab", task, "scratch") for task in ("a" * 32, "b" * 32)}
    assert len(names) == 2
    long = bind_mounts.volume_name("lab", "a" * 32, "v" * 255)
    assert len(long) == VOLUME_NAME_MAX and long != bind_mounts.volume_name("lab", "a" * 32, "v" * 254)


def test_a_containers_mounts_copy_the_images_volume_only_at_its_path():
    def name_of(name):
        return f"vol-{name}"

    app, side = BODY["containerDefinitions"]
    wanted = bind_mounts.bind_volumes(BODY)
    assert bind_mounts.mounts_for(app, wanted, name_of, {"/seed"}) == [("vol-scratch", "/seed", False, True)]
    assert bind_mounts.mounts_for(side, wanted, name_of, {"/seed"}) == [("vol-scratch", "/in", True, False)]
