"""A task as a Pod and a task definition as a PodTemplate: the spec from the task definition and
the task's overrides, the status (phase, the reason kubectl shows, conditions, containers) from
what the lab observed."""
from orchestrator.frontend import wire
from orchestrator.kubernetes.names import (
    ANNOTATION_TASK_DEFINITION, DEFAULT_STOP_TIMEOUT, HEALTH_CHECK_DEFAULTS, PULL_FAILURE, app_label, compact,
    condition, cpu_quantity, dns_label, family_revision, last_part, memory_quantity, metadata, namespace_of, owner,
    pod_name, pod_template_hash, pod_template_name, replica_set_name, timestamp,
)

# --- Pod phase and the status kubectl shows -------------------------------------------------

_PENDING_STATES = ("PROVISIONING", "PENDING", "ACTIVATING")
_TERMINATING_STATES = ("DEACTIVATING", "STOPPING", "DEPROVISIONING")


def _essential(containers):
    """The essential containers of a task (all of them when none says, as ECS defaults)."""
    return [c for c in containers if c.get("essential", True)] or list(containers)


def _exited_zero(containers):
    """Whether every essential container exited with code 0."""
    essential = _essential(containers)
    return bool(essential) and all(c.get("exitCode") == 0 for c in essential)


def pull_failed(stopped_reason, containers=()):
    """Whether a task stopped because an image could not be pulled."""
    reasons = [stopped_reason or ""] + [c.get("reason") or "" for c in containers]
    return any(PULL_FAILURE in reason for reason in reasons)


def pod_phase(last_status, containers):
    """A task's Pod ``status.phase``: Pending, Running, Succeeded (every essential container
    exited 0) or Failed (a non-zero exit, a pull failure, a container that never ran).

    ``containers`` are plain dicts with ``essential`` and ``exitCode``, as DescribeTasks lists them.
    """
    if last_status in _PENDING_STATES:
        return "Pending"
    if last_status == "RUNNING":
        return "Running"
    essential = _essential(containers)
    exited = bool(essential) and all(c.get("exitCode") is not None for c in essential)
    if last_status in _TERMINATING_STATES and not exited:
        return "Running"  # still being stopped: its containers have not all exited yet
    if last_status in _TERMINATING_STATES or last_status == "STOPPED":
        return "Succeeded" if _exited_zero(containers) else "Failed"
    return "Unknown"


def pod_status(last_status, containers, stopped_reason="", backoff=False):
    """What ``kubectl get pods`` shows in its STATUS column for a task.

    Terminating while ECS stops it; for a stopped task the reason Kubernetes would give:
    ErrImagePull (ImagePullBackOff while its service's restarts are throttled), CrashLoopBackOff
    (a throttled service's task that failed to start), OOMKilled, Error (a non-zero exit), or
    Completed (every essential container exited 0).
    """
    if last_status == "PROVISIONING":
        return "Pending"
    if last_status in _PENDING_STATES:
        return "ContainerCreating"
    if last_status == "RUNNING":
        return "Running"
    if last_status in _TERMINATING_STATES:
        return "Terminating"
    if last_status != "STOPPED":
        return "Unknown"
    if pull_failed(stopped_reason, containers):
        return "ImagePullBackOff" if backoff else "ErrImagePull"
    if backoff:
        return "CrashLoopBackOff"
    if _exited_zero(containers):
        return "Completed"
    if any("OutOfMemory" in (c.get("reason") or "") for c in _essential(containers)):
        return "OOMKilled"
    return "Error"


def probe_for(health_check):
    """A container's ECS healthCheck as an exec probe (interval, timeout, retries, startPeriod)."""
    if not health_check or not health_check.get("command"):
        return None
    command = [str(word) for word in health_check["command"]]
    if command[0] == "CMD-SHELL":
        command = ["/bin/sh", "-c", " ".join(command[1:])]
    elif command[0] == "CMD":
        command = command[1:]
    settings = {**HEALTH_CHECK_DEFAULTS, **{k: v for k, v in health_check.items() if v is not None}}
    return compact({
        "exec": {"command": command},
        "initialDelaySeconds": int(settings["startPeriod"]) or None,
        "periodSeconds": int(settings["interval"]),
        "timeoutSeconds": int(settings["timeout"]),
        "failureThreshold": int(settings["retries"]),
    })


def _secret_ref(secret):
    """An ECS secret (an SSM parameter or a Secrets Manager ARN) as a secretKeyRef."""
    source = str(secret.get("valueFrom", ""))
    if ":secretsmanager:" in source:
        parts = source.split(":secret:", 1)[-1].split(":")
        return {"name": dns_label(parts[0]), "key": parts[1] if len(parts) > 1 and parts[1] else "value"}
    return {"name": dns_label(last_part(source)), "key": "value"}


def _env(definition, override):
    """Environment of a container: the definition's, overridden by name, then its secrets."""
    values = {}
    for entry in list(definition.get("environment") or []) + list(override.get("environment") or []):
        if entry.get("name"):
            values[entry["name"]] = str(entry.get("value", ""))
    env = [{"name": name, "value": value} for name, value in values.items()]
    env += [{"name": s["name"], "valueFrom": {"secretKeyRef": _secret_ref(s)}}
            for s in definition.get("secrets") or [] if s.get("name")]
    return env


def _resources(definition, override, task_cpu, task_memory):
    """requests/limits as the agent sets them: the container's cpu and memory where given, else
    the task's; memoryReservation is the memory request (a soft limit)."""
    cpu = int(override.get("cpu") or definition.get("cpu") or 0) or int(task_cpu)
    memory = int(override.get("memory") or definition.get("memory") or task_memory)
    reservation = override.get("memoryReservation") or definition.get("memoryReservation")
    limits = {"cpu": cpu_quantity(cpu), "memory": memory_quantity(memory)}
    requests = {"cpu": cpu_quantity(cpu), "memory": memory_quantity(reservation or memory)}
    return {"requests": requests, "limits": limits}


def ports_of(definition):
    """containerPort entries from an ECS container's portMappings."""
    ports = []
    for mapping in definition.get("portMappings") or []:
        if not mapping.get("containerPort"):
            continue
        ports.append(compact({
            "name": dns_label(mapping["name"], 15) if mapping.get("name") else None,
            "containerPort": int(mapping["containerPort"]),
            "protocol": str(mapping.get("protocol") or "tcp").upper(),
        }))
    return ports


def security_context_for(definition):
    """readonlyRootFilesystem, a numeric user ("uid" or "uid:gid") and linuxParameters'
    capabilities as a container's securityContext (a user by name has no Kubernetes field)."""
    uid, _, gid = str(definition.get("user") or "").partition(":")
    capabilities = (definition.get("linuxParameters") or {}).get("capabilities") or {}
    return compact({
        "readOnlyRootFilesystem": definition.get("readonlyRootFilesystem"),
        "runAsUser": wire.ascii_int(uid),
        "runAsGroup": wire.ascii_int(gid),
        "capabilities": compact({"add": capabilities.get("add"), "drop": capabilities.get("drop")}),
    })


def efs_volumes_of(task_definition):
    """The task definition's EFS volumes as a Pod's volumes: each a claim of the account's file
    system's PersistentVolume (ReadWriteMany, as the EFS CSI driver gives), in the namespace."""
    return [{"name": dns_label(v["name"]),
             "persistentVolumeClaim": {"claimName": dns_label(f"efs-{v['efsVolumeConfiguration']['fileSystemId']}")}}
            for v in task_definition.get("volumes") or [] if v.get("name") and v.get("efsVolumeConfiguration")]


def volume_mounts_for(definition, task_definition, walking=()):
    """A container's mountPoints of EFS volumes as volumeMounts (the rootDirectory is the subPath),
    with those of its volumesFrom sources at their paths (Kubernetes has no volumesFrom: each is
    spelled out; read-only with the entry's readOnly); its own win at a path both give."""
    roots = {v["name"]: v["efsVolumeConfiguration"].get("rootDirectory") or "/"
             for v in task_definition.get("volumes") or [] if v.get("name") and v.get("efsVolumeConfiguration")}
    by_name = {c.get("name"): c for c in task_definition.get("containerDefinitions") or []}
    walking = walking + (definition.get("name"),)
    by_path = {}
    for entry in definition.get("volumesFrom") or []:
        source = entry.get("sourceContainer")
        if source in by_name and source not in walking:
            for mount in volume_mounts_for(by_name[source], task_definition, walking):
                by_path[mount["mountPath"]] = compact({**mount, "readOnly": True if mount.get("readOnly")
                                                       or entry.get("readOnly") else None})
    for point in definition.get("mountPoints") or []:
        if point.get("sourceVolume") in roots and point.get("containerPath"):
            by_path[point["containerPath"]] = compact({
                "name": dns_label(point["sourceVolume"]), "mountPath": point["containerPath"],
                "readOnly": True if point.get("readOnly") else None,
                "subPath": "/".join(p for p in roots[point["sourceVolume"]].split("/") if p) or None})
    return list(by_path.values())


def container_for(definition, override=None, task_cpu=256, task_memory=512):
    """One ECS container definition (with a task's override) as a Pod's container: entryPoint is
    ``command``, ECS's command is ``args``."""
    override = override or {}
    probe = probe_for(definition.get("healthCheck"))
    return compact({
        "name": dns_label(definition.get("name", "")),
        "image": definition.get("image"),
        "command": list(definition.get("entryPoint") or []) or None,
        "args": list(override.get("command") or definition.get("command") or []) or None,
        "workingDir": definition.get("workingDirectory"),
        "env": _env(definition, override),
        "ports": ports_of(definition),
        "resources": _resources(definition, override, task_cpu, task_memory),
        "livenessProbe": probe,
        "readinessProbe": probe,
        "securityContext": security_context_for(definition),
        "stdin": definition.get("interactive"),
        "tty": definition.get("pseudoTerminal"),
    })


def init_container_names(definitions):
    """The containers another one waits for to COMPLETE or SUCCEED (dependsOn): what Kubernetes
    runs, each to completion, as initContainers before the Pod's containers."""
    return {d.get("containerName") for c in definitions for d in c.get("dependsOn") or []
            if d.get("condition") in ("COMPLETE", "SUCCESS")}


def pod_spec(task_definition, overrides=None, task_cpu=None, task_memory=None, restart_policy="Never"):
    """A Pod spec from a task definition (as DescribeTaskDefinition returns it) and overrides;
    the containers others wait for to complete are its initContainers (probes are for the
    Pod's containers only)."""
    by_name = {o.get("name"): o for o in (overrides or {}).get("containerOverrides") or []}
    cpu = task_cpu or task_definition.get("cpu") or 256
    memory = task_memory or task_definition.get("memory") or 512
    definitions = task_definition.get("containerDefinitions") or []
    grace = max([int(d.get("stopTimeout") or DEFAULT_STOP_TIMEOUT) for d in definitions] or [DEFAULT_STOP_TIMEOUT])
    init = init_container_names(definitions)
    def mounted(d):
        return compact({**container_for(d, by_name.get(d.get("name")), cpu, memory),
                        "volumeMounts": volume_mounts_for(d, task_definition)})

    spec = {
        "containers": [mounted(d) for d in definitions if d.get("name") not in init],
        "restartPolicy": restart_policy,
        "terminationGracePeriodSeconds": grace,
    }
    if init:
        spec["initContainers"] = [{k: v for k, v in mounted(d).items() if k not in ("livenessProbe", "readinessProbe")}
                                  for d in definitions if d.get("name") in init]
    volumes = efs_volumes_of(task_definition)
    if volumes:
        spec["volumes"] = volumes
    return spec


def _task_owner(task):
    """(service name, deployment id) of a service's task, from its group and startedBy."""
    group = task.get("group") or ""
    started_by = task.get("startedBy") or ""
    if group.startswith("service:") and started_by.startswith("ecs-svc/"):
        return group[len("service:"):], started_by
    return None, None


def _container_state(task, status, container, backoff):
    """(state, lastState) of one container, in containerStatuses' words."""
    exit_code = container.get("exitCode")
    started, stopped = timestamp(task.get("startedAt")), timestamp(task.get("stoppedAt") or task.get("executionStoppedAt"))
    if status == "RUNNING" or (status in _TERMINATING_STATES and exit_code is None and task.get("startedAt")):
        return {"running": compact({"startedAt": started})}, None
    if exit_code is not None:
        terminated = compact({
            "exitCode": int(exit_code),
            "reason": "Completed" if exit_code == 0 else ("OOMKilled" if "OutOfMemory" in (container.get("reason") or "") else "Error"),
            "message": container.get("reason"), "startedAt": started, "finishedAt": stopped,
        })
        if backoff:
            return {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off restarting failed container"}}, \
                {"terminated": terminated}
        return {"terminated": terminated}, None
    if status == "STOPPED":
        if pull_failed(task.get("stoppedReason"), [container]):
            reason = "ImagePullBackOff" if backoff else "ErrImagePull"
        else:
            reason = "CrashLoopBackOff" if backoff else "CreateContainerError"
        return {"waiting": compact({"reason": reason, "message": container.get("reason") or task.get("stoppedReason")})}, None
    return {"waiting": {"reason": "ContainerCreating"}}, None


def pod_status_block(task, backoff=False, ready=None, placed=None, init=frozenset()):
    """A Pod's ``status``: phase, conditions, pod IP, start time and containerStatuses (the
    ``init`` containers' in initContainerStatuses).
    ``placed``: whether the task got an instance (None: judged from its lifecycle)."""
    status = task.get("lastStatus", "")
    containers = task.get("containers") or []
    phase = pod_phase(status, containers)
    if placed is None:
        # A stopped task was placed if its instance began pulling for it.
        placed = bool(task.get("pullStartedAt")) or status not in ("PROVISIONING", "STOPPED")
    running = status == "RUNNING"
    if ready is None:
        ready = running and all(c.get("healthStatus", "UNKNOWN") != "UNHEALTHY" for c in containers)
    ready = bool(ready) and running
    statuses, init_statuses = [], []
    for container in containers:
        state, last_state = _container_state(task, status, container, backoff)
        (init_statuses if container.get("name") in init else statuses).append(compact({
            "name": dns_label(container.get("name", "")),
            "image": container.get("image", ""),
            "imageID": "",
            "containerID": f"docker://{container['runtimeId']}" if container.get("runtimeId") else None,
            "ready": ready,
            "started": "running" in state,
            "restartCount": 0,
            "state": state,
            "lastState": last_state,
        }))
    ip = next((i.get("privateIpv4Address") for c in containers for i in c.get("networkInterfaces") or []), None)
    pod_reason = pod_status(status, containers, task.get("stoppedReason"), backoff)
    return compact({
        "phase": phase,
        "reason": pod_reason if phase == "Failed" else None,
        "message": task.get("stoppedReason"),
        "conditions": [
            condition("PodScheduled", placed, None if placed else "Unschedulable"),
            condition("Initialized", placed),
            condition("ContainersReady", ready),
            condition("Ready", ready),
        ],
        "podIP": ip,
        "podIPs": [{"ip": ip}] if ip else None,
        "startTime": timestamp(task.get("pullStartedAt") or task.get("startedAt")),
        "containerStatuses": statuses,
        "initContainerStatuses": init_statuses or None,
    })


def pod_for(task, task_definition, node_name=None, backoff=False, ready=None):
    """The Pod for a task (as DescribeTasks returns it) of ``task_definition`` (as
    DescribeTaskDefinition returns it): a service's task is owned by its deployment's ReplicaSet.

    ``backoff``: its service's restarts are throttled; ``ready``: the service judged it healthy
    (None: ready while RUNNING with no UNHEALTHY container).
    """
    service, deployment = _task_owner(task)
    family, _ = family_revision(task.get("taskDefinitionArn") or task_definition.get("family"))
    task_id = last_part(task.get("taskArn"))
    labels = {"app": app_label(service, family)}
    extra = {"creationTimestamp": timestamp(task.get("createdAt"))}
    if service:
        labels["pod-template-hash"] = pod_template_hash(deployment)
        rs_name = replica_set_name(service, deployment)
        extra["ownerReferences"] = [owner("ReplicaSet", "apps/v1", rs_name, deployment)]
    if task.get("lastStatus") in _TERMINATING_STATES:
        extra["deletionTimestamp"] = timestamp(task.get("stoppingAt") or task.get("stoppedAt"))
    spec = pod_spec(task_definition, task.get("overrides"), task.get("cpu"), task.get("memory"),
                    restart_policy="Always" if service else "Never")
    if node_name:
        spec["nodeName"] = node_name
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata(
            pod_name(task_id, service, deployment, family), namespace_of(task.get("clusterArn")),
            task.get("taskArn"), labels, {ANNOTATION_TASK_DEFINITION: task.get("taskDefinitionArn")}, **extra,
        ),
        "spec": spec,
        "status": pod_status_block(task, backoff, ready, placed=True if node_name else None,
                                   init=init_container_names(task_definition.get("containerDefinitions") or [])),
    }


def pod_template_for(task_definition, namespace="default"):
    """A task definition revision as a PodTemplate."""
    family = task_definition.get("family", "task")
    name = pod_template_name(family, task_definition.get("revision", 1))
    return {
        "apiVersion": "v1",
        "kind": "PodTemplate",
        "metadata": metadata(name, namespace, task_definition.get("taskDefinitionArn"), {"app": app_label(family=family)},
                             creationTimestamp=timestamp(task_definition.get("registeredAt"))),
        "template": {
            "metadata": {"labels": {"app": app_label(family=family)}},
            "spec": pod_spec(task_definition),
        },
    }
