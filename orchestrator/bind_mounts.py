"""Fargate's bind mounts: a task definition's volume without a configuration (``host`` empty or
absent) is the task's own storage, shared by the containers whose ``mountPoints`` name it and
removed once the task's containers are (ECS: "after all of the containers that use a bind mount
are stopped, the data is removed"). Kubernetes calls it an ``emptyDir``.

On Docker it is a named volume of the lab's per task and volume name, labelled with the task, its
account and the volume (never a host path: a ``sourcePath`` is refused at registration). As on
Fargate, when the image declares a ``VOLUME`` at the mount's ``containerPath``, what the image holds
there is copied into the empty volume; elsewhere the volume starts empty.
"""
import posixpath

from orchestrator.docker_engine import LABEL_ACCOUNT, LABEL_TASK_ID, volume_name_of

# The task definition's name of the volume, on its Docker volume.
LABEL_BIND_MOUNT = "fargatelab.bind-mount"


def bind_volumes(body):
    """The names of the task definition's bind mount volumes (its volumes other than EFS ones;
    registration refuses every other kind)."""
    return {v["name"] for v in body.get("volumes") or [] if v.get("name") and not v.get("efsVolumeConfiguration")}


def volume_name(lab, task_id, name):
    """The Docker volume of one bind mount volume of one task."""
    return volume_name_of(f"fargatelab-{lab}-{task_id}-{name}")


def volume_labels(account_id, task_id, name):
    """The labels of such a volume (the engine adds the lab's own)."""
    return {LABEL_ACCOUNT: account_id, LABEL_TASK_ID: task_id, LABEL_BIND_MOUNT: name}


def mounts_for(definition, names, name_of, image_volumes):
    """One container definition's mounts of bind mount volumes (pure): [(volume, container path,
    read only, copy the image's files)]; ``names`` is ``bind_volumes``' answer, ``name_of(name)``
    names a Docker volume and ``image_volumes`` holds the paths of the image's VOLUMEs."""
    mounts = []
    for point in definition.get("mountPoints") or []:
        name = point.get("sourceVolume")
        if name in names and point.get("containerPath"):
            path = posixpath.normpath(point["containerPath"])
            mounts.append((name_of(name), path, bool(point.get("readOnly")), path in image_volumes))
    return mounts


def mounted(body):
    """The bind mount volumes some container of the definition mounts."""
    names = bind_volumes(body)
    return {point.get("sourceVolume") for definition in body.get("containerDefinitions") or []
            for point in definition.get("mountPoints") or []} & names
