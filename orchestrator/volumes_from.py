"""``volumesFrom``: a container mounts every volume of another container of its task, at the
source's own container paths (ECS: "mount all of the volumes from the sourceContainer at their
originally defined mount points"; it "applies to volumes defined in the task definition, and those
that are built into the image with a Dockerfile").

What the source has mounted: its ``mountPoints`` (bind mounts and EFS volumes, see
``bind_mounts`` and ``efs``), what it has from its own ``volumesFrom`` (as Docker's VolumesFrom
passes them on), and its image's ``VOLUME`` paths that no mount point covers. A mount is
read-only when the entry's ``readOnly`` is true or when the source's mount is; the container's
own mount points win over an inherited one at the same path, and a later entry over an earlier
one (Docker's order).

Why not Docker's own VolumesFrom? It needs the source container created first, and would share
the source's anonymous volumes, which Docker removes with their container (the lab removes a
task's containers with their anonymous volumes). So the lab mounts named volumes instead: an
image's VOLUME of a source is a volume of the task's own (as a bind mount is: labelled with the
task and removed when it stops), with the image's files copied in when the source mounts it.
Every volume exists before any container is created, so no creation order is needed.
"""
import hashlib
import posixpath

from orchestrator.container_dependencies import has_cycle


def problem(containers):
    """Why ECS refuses the definitions' volumesFrom, or None: each must name another container of
    the task definition, and they must not form a cycle."""
    names = {c.get("name") for c in containers}
    for container in containers:
        name = container.get("name")
        for entry in container.get("volumesFrom") or []:
            source = entry.get("sourceContainer")
            if not source:
                return f"Container '{name}': volumesFrom must each give a sourceContainer."
            if source not in names:
                return f"Invalid 'volumesFrom' setting. Unknown container: '{source[:255]}'."
            if source == name:
                return (f"Invalid 'volumesFrom' setting. Container '{name}' cannot mount volumes from itself: "
                        "sourceContainer must be another container of the task definition.")
    graph = {c.get("name"): [e.get("sourceContainer") for e in c.get("volumesFrom") or []] for c in containers}
    if has_cycle(graph):
        return "Invalid 'volumesFrom' setting. The containers' volumesFrom must not form a cycle."
    return None


def sources(body):
    """The names of the containers some volumesFrom names."""
    return {entry.get("sourceContainer") for definition in body.get("containerDefinitions") or []
            for entry in definition.get("volumesFrom") or []} - {None}


def image_volume(container, path):
    """The task's own volume name for a source container's image VOLUME at ``path`` (the '.'
    keeps it apart from the task definition's volume names, which have none)."""
    return f"image.{container}.{hashlib.sha256(path.encode()).hexdigest()[:16]}"


def uncovered(definition, image_paths):
    """The image's VOLUME paths that none of the container's mount points covers."""
    covered = {posixpath.normpath(p["containerPath"]) for p in definition.get("mountPoints") or []
               if p.get("containerPath")}
    return sorted(set(image_paths) - covered)


def resolver(definitions, own):
    """The mounts of each container definition with those of its volumesFrom (pure):
    ``definitions`` by name, ``own(definition)`` the container's own mounts [(volume, container
    path, read only[, copy])]. Registration refused cycles; the walk stops on one anyway."""
    done = {}

    def mounts_of(name, walking=()):
        if name in done:
            return done[name]
        definition = definitions.get(name) or {}
        by_path = {}
        for entry in definition.get("volumesFrom") or []:
            source = entry.get("sourceContainer")
            if source in walking or source == name or source not in definitions:
                continue
            for volume, path, read_only, *_ in mounts_of(source, walking + (name,)):
                # Only the source copies its image's files in; here the volume is mounted as it is.
                by_path[path] = (volume, path, bool(read_only or entry.get("readOnly")), False)
        for mount in own(definition):
            by_path[mount[1]] = mount
        done[name] = list(by_path.values())
        return done[name]

    return lambda definition: mounts_of(definition.get("name"))
