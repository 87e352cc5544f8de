"""Amazon EFS on Docker: an account's EFS file system is a named volume of the lab's.

The lab has no EFS API: a file system exists once a task of the account mounts it. A task
definition's ``efsVolumeConfiguration`` names it (``fileSystemId``), and the agent mounts it into
the containers whose ``mountPoints`` name the volume. What that is on Docker:

1. One account's file system in one region is the named volume
   ``fargatelab-<lab>-<account>-<region>-<fileSystemId>``, with the lab's labels (account,
   region, file system). Two tasks of one account share it; another account naming the same
   ``fileSystemId`` gets its own volume: the id is the account's, never a way into another's.
2. A ``rootDirectory`` other than "/" is a volume of its own (the same name, then a digest of
   the directory), mounted at the container path; where a task mounts an ancestor directory, the
   descendants' volumes are mounted inside it, where their directories are. So every task of the
   account sees the same files at the same paths of the file system, as on EFS.
   Why not a bind of the root volume's subdirectory (Docker 20.10 has no volume subpath)? The
   engine would resolve that path on the host, through directories a task of the account can
   rename meanwhile: one ``ln -s / data`` at the right moment and a task would mount the host's
   own files. A volume of its own is a path of Docker's alone, and runc mounts the nested
   volumes inside the container's root file system, never outside it.
3. The first time a directory gets its own volume, what the file system already held there is
   copied into it, by a short-lived helper container (the pause image's busybox, no network)
   that mounts both volumes. A task started earlier that mounts an ancestor keeps seeing the
   ancestor's own copy of that directory until it stops (its mounts were made at its start).

``transitEncryption`` and its port are kept and returned: the files never leave the engine's
disk, so there is no network hop to encrypt. Access points and IAM authorization are refused
(``problem``): the lab has no EFS API to create an access point in, nor file system policies.
"""
import hashlib
import posixpath
import re
import threading
import time
import uuid

from orchestrator.docker_engine import (
    LABEL_ACCOUNT, LABEL_EFS_FILE_SYSTEM, LABEL_EFS_ROOT_DIRECTORY, LABEL_REGION, EngineError, EngineUnavailable,
    volume_name_of,
)

# EFS's own format of a file system ID (the EFS API's FileSystemId pattern, without the ARN form).
FILE_SYSTEM_ID = re.compile(r"fs-[0-9a-f]{8,40}")
# The longest rootDirectory the lab takes (a path of the file system, as a directory name goes).
ROOT_DIRECTORY_MAX = 255
# Marks the lab's helper containers, with the time (epoch seconds) by which its runner has removed
# it: the agent's orphan sweep leaves it alone until then (one left by a crash goes after).
LABEL_HELPER = "fargatelab.helper"
LABEL_HELPER_UNTIL = "fargatelab.helper-until"
# Copies a directory of the ancestor volume (/src) into the new one (/dst); a component that is
# a symlink or no directory means there is nothing there to copy. The components are arguments.
COPY_SCRIPT = ('d=/src; for c in "$@"; do d="$d/$c"; if [ -L "$d" ] || [ ! -d "$d" ]; then exit 0; fi; done; '
               'cp -a "$d/." /dst/')
HELPER_TIMEOUT = 120


class EfsUnavailable(Exception):
    """A file system's volume could not be made ready for a task (the task fails to start)."""


def helper_overdue(labels):
    """Whether a helper container (by its labels) outlived its runner's deadline."""
    try:
        return time.time() > float(labels.get(LABEL_HELPER_UNTIL, "0"))
    except ValueError:
        return True


def problem(config):
    """Why ECS (or the lab) refuses this efsVolumeConfiguration, or None (already model-clean)."""
    file_system = config.get("fileSystemId", "")
    if not FILE_SYSTEM_ID.fullmatch(file_system):
        return (f"efsVolumeConfiguration.fileSystemId must be an EFS file system ID (fs- followed by 8 to 40 "
                f"lowercase hexadecimal digits), not '{file_system[:64]}'.")
    authorization = config.get("authorizationConfig") or {}
    access_point, iam = authorization.get("accessPointId"), authorization.get("iam") == "ENABLED"
    root = config.get("rootDirectory")
    if access_point and root not in (None, "", "/"):
        return 'When using an EFS access point, the root directory must either be set to "/" or be omitted.'
    if (access_point or iam) and config.get("transitEncryption") != "ENABLED":
        using = "an EFS access point" if access_point else "EFS IAM authorization"
        return f"When using {using}, transit encryption must be enabled."
    if root is not None:
        reason = _root_directory_problem(root)
        if reason:
            return f"efsVolumeConfiguration.rootDirectory {reason}"
    port = config.get("transitEncryptionPort")
    if port is not None and not 1 <= port <= 65535:
        return "efsVolumeConfiguration.transitEncryptionPort must be a port number from 1 to 65535."
    if access_point:
        return ("efsVolumeConfiguration.authorizationConfig.accessPointId is not supported by Fargate Lab: it has no "
                "EFS API to create access points in, so it could not enforce an access point's directory and user.")
    if iam:
        return ("efsVolumeConfiguration.authorizationConfig.iam ENABLED is not supported by Fargate Lab: it keeps no "
                "file system policies to authorize the task role against (a task mounts its account's file systems).")
    return None


def _root_directory_problem(root):
    """Why a rootDirectory is no directory of the file system, or None."""
    if len(root) > ROOT_DIRECTORY_MAX:
        return f"must be at most {ROOT_DIRECTORY_MAX} characters."
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in root):
        return "must not contain control characters."
    if any(part in (".", "..") for part in root.split("/")):
        return "must be a path in the file system: '.' and '..' are not allowed."
    return None


def root_directory(config):
    """The normalized directory of the file system a volume mounts: "/" or "/a/b"."""
    parts = [part for part in (config.get("rootDirectory") or "/").split("/") if part]
    return "/" + "/".join(parts)


def volume_name(lab, account_id, region, file_system, root="/"):
    """The Docker volume of one account's file system in one region (of one of its directories)."""
    base = f"fargatelab-{lab}-{account_id}-{region}-{file_system}"
    if root != "/":
        base += f"-{hashlib.sha256(root.encode()).hexdigest()[:16]}"
    return volume_name_of(base)


def volume_labels(account_id, region, file_system, root="/"):
    """The labels of such a volume (the engine adds the lab's own)."""
    return {LABEL_ACCOUNT: account_id, LABEL_REGION: region, LABEL_EFS_FILE_SYSTEM: file_system,
            LABEL_EFS_ROOT_DIRECTORY: root}


def efs_volumes(body):
    """The task definition's EFS volumes: {volume name: efsVolumeConfiguration}."""
    return {v["name"]: v["efsVolumeConfiguration"] for v in body.get("volumes") or []
            if v.get("name") and v.get("efsVolumeConfiguration")}


def _under(path, root):
    return root == "/" or path.startswith(root + "/")


def mounts_for(definition, volumes, name_of, roots):
    """The mounts of one container definition: [(volume, container path, read only)] (pure).

    ``volumes`` is ``efs_volumes``' answer, ``name_of(file_system, root)`` names a volume and
    ``roots`` holds each file system's directories that have a volume ({file system: {root}})."""
    mounts = []
    for point in definition.get("mountPoints") or []:
        config = volumes.get(point.get("sourceVolume"))
        if config is None:
            continue
        file_system, root, read_only = config["fileSystemId"], root_directory(config), bool(point.get("readOnly"))
        target = posixpath.normpath(point["containerPath"])
        mounts.append((name_of(file_system, root), target, read_only))
        inside = sorted((r for r in roots.get(file_system, ()) if r != root and _under(r, root)),
                        key=lambda r: (r.count("/"), r))
        for nested in inside:
            relative = nested if root == "/" else nested[len(root):]
            mounts.append((name_of(file_system, nested), posixpath.normpath(target + relative), read_only))
    return mounts


def mounted_roots(body):
    """{file system: {root}} of the EFS volumes that some container of the definition mounts."""
    volumes = efs_volumes(body)
    wanted = {}
    for definition in body.get("containerDefinitions") or []:
        for point in definition.get("mountPoints") or []:
            config = volumes.get(point.get("sourceVolume"))
            if config is not None:
                wanted.setdefault(config["fileSystemId"], set()).add(root_directory(config))
    return wanted


def prepare(engine, task):
    """Make ready the volumes of the file systems the task mounts; returns its containers'
    ``name_of`` and ``roots`` for ``mounts_for``. Raises EfsUnavailable (EngineUnavailable
    passes through: the pass retries)."""
    account, region = task.account.account_id, task.cluster.region

    def name_of(file_system, root):
        return volume_name(engine.lab, account, region, file_system, root)

    wanted = mounted_roots(task.task_definition.body)
    roots = {}
    try:
        for file_system, directories in wanted.items():
            engine.ensure_volume(name_of(file_system, "/"), volume_labels(account, region, file_system))
            known = {v["labels"].get(LABEL_EFS_ROOT_DIRECTORY, "/") for v in engine.list_volumes(
                {LABEL_ACCOUNT: account, LABEL_REGION: region, LABEL_EFS_FILE_SYSTEM: file_system})}
            known.add("/")
            for root in sorted(directories - known, key=lambda r: (r.count("/"), r)):
                name = name_of(file_system, root)
                with _creating(name):  # a second task waits for the first one's copy, then mounts it
                    if engine.ensure_volume(name, volume_labels(account, region, file_system, root)):
                        _copy_in(engine, task, name_of, file_system, root, known)
                known.add(root)
            roots[file_system] = known
    except EngineUnavailable:
        raise
    except EngineError as exc:
        raise EfsUnavailable(f"ResourceInitializationError: failed to mount an EFS file system: {exc}") from exc
    return name_of, roots


_locks_lock = threading.Lock()
_locks = {}


def _creating(name):
    """The lock held while volume ``name`` is created and filled (one per volume, kept: a
    class makes a few dozen)."""
    with _locks_lock:
        return _locks.setdefault(name, threading.Lock())


def _copy_in(engine, task, name_of, file_system, root, known):
    """Copy what the nearest ancestor directory's volume holds at ``root`` into its new volume;
    on failure the new volume goes, so that the next attempt copies again."""
    from orchestrator import sandbox_pool

    ancestor = max((r for r in known if _under(root, r)), key=len)
    relative = root if ancestor == "/" else root[len(ancestor):]
    sandbox_pool.ensure_image(engine)
    spec = {
        "name": f"fargatelab-{engine.lab}-efs-{uuid.uuid4().hex[:12]}",
        "image": sandbox_pool.PAUSE_IMAGE,
        "entrypoint": ["/bin/busybox", "sh", "-c", COPY_SCRIPT, "sh", *relative.strip("/").split("/")],
        "labels": {LABEL_HELPER: "efs", LABEL_HELPER_UNTIL: str(int(time.time() + 2 * HELPER_TIMEOUT)),
                   LABEL_ACCOUNT: task.account.account_id},
        "mounts": [(name_of(file_system, ancestor), "/src", True), (name_of(file_system, root), "/dst", False)],
        "nano_cpus": 250_000_000, "memory": 64 * 1024 * 1024, "pids_limit": 64, "read_only": True,
    }
    code, output = engine.run_helper(spec, timeout=HELPER_TIMEOUT)
    if code != 0:
        engine.remove_volumes({LABEL_EFS_FILE_SYSTEM: file_system, LABEL_ACCOUNT: task.account.account_id,
                               LABEL_REGION: task.cluster.region, LABEL_EFS_ROOT_DIRECTORY: root})
        raise EfsUnavailable(f"ResourceInitializationError: failed to prepare directory {root} of EFS file system "
                             f"{file_system}: the copy of its files exited with {code}: {output[-300:]}")
