"""Task definitions: their admission (Fargate sizes, refused fields, the normalized body) and the
operations RegisterTaskDefinition, DescribeTaskDefinition, ListTaskDefinitions,
ListTaskDefinitionFamilies and DeregisterTaskDefinition (DeleteTaskDefinitions is in
``deleted_task_definitions``).

A task definition is what the lab will hand to Docker, so this is where anything that would
let a task escape its container (privileged mode, host namespaces, host paths, added
capabilities, devices) is refused before a row is written, with every other field the lab
cannot honour: the decision for each field is in ``task_definition_fields``.
"""
import re

from django.conf import settings
from django.db.models import Max
from django.utils import timezone

from orchestrator import bus
from orchestrator.frontend import EcsError, deleted_task_definitions, shapes, wire
from orchestrator.frontend.operations import (
    _check_tags, _get_task_definition, _include, _page, _paged_response, _parse_arn, operation,
)
from orchestrator.frontend.task_definition_fields import HEALTH_CHECK_DEFAULTS, check_task_definition
from orchestrator.frontend.validation import check_name
from orchestrator.models import TaskDefinition, region

# Fargate task sizes: CPU units -> the memory values (MiB) allowed with them.
FARGATE_SIZES = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4096 + 1, 1024)),
    1024: tuple(range(2048, 8192 + 1, 1024)),
    2048: tuple(range(4096, 16384 + 1, 1024)),
    4096: tuple(range(8192, 30720 + 1, 1024)),
    8192: tuple(range(16384, 61440 + 1, 4096)),
    16384: tuple(range(32768, 122880 + 1, 8192)),
}
_NUMBER = r"([0-9]+(?:\.[0-9]+)?|\.[0-9]+)"
_VCPU_RE = re.compile(rf"{_NUMBER}\s*vcpu", re.IGNORECASE)
_GB_RE = re.compile(rf"{_NUMBER}\s*gb", re.IGNORECASE)
# ECS needs at least this much memory per container.
MIN_CONTAINER_MEMORY = 6
# ECS's rule for an image reference: up to 255 letters, digits, "-", "_", ":", ".", "/" and "#",
# optionally followed by "@sha256:" and 64 hex digits (the 255 apply to what precedes the "@").
MAX_IMAGE = 255
_IMAGE_RE = re.compile(r"[A-Za-z0-9_:./#-]{1,255}(@sha256:[0-9A-Fa-f]{64})?")


def parse_cpu(text):
    """CPU units from "256", "0.25 vCPU" or "1 vCPU"; None when it is not a CPU value."""
    text = text.strip()
    if wire.ascii_int(text, max_digits=9) is not None:
        return int(text)
    match = _VCPU_RE.fullmatch(text)
    if match and len(text) < 32:
        units = float(match.group(1)) * 1024
        return int(units) if units.is_integer() else None
    return None


def parse_memory(text):
    """Memory in MiB from "512", "1GB" or "1 GB"; None when it is not a memory value."""
    text = text.strip()
    if wire.ascii_int(text, max_digits=9) is not None:
        return int(text)
    match = _GB_RE.fullmatch(text)
    if match and len(text) < 32:
        mib = float(match.group(1)) * 1024
        return int(mib) if mib.is_integer() else None
    return None


def fargate_size(cpu_text, memory_text):
    """Validate a task-level cpu/memory pair against the Fargate table; return (cpu, memory)."""
    cpu, memory = parse_cpu(cpu_text), parse_memory(memory_text)
    if cpu is None:
        raise EcsError("ClientException", f"Invalid 'cpu' setting for task: '{cpu_text[:64]}' is not a CPU value like '256' or '1 vCPU'.")
    if memory is None:
        raise EcsError("ClientException", f"Invalid 'memory' setting for task: '{memory_text[:64]}' is not a memory value like '512' or '1 GB'.")
    if cpu not in FARGATE_SIZES:
        raise EcsError(
            "ClientException",
            f"No Fargate configuration exists for given values: {cpu} CPU units. "
            f"Valid CPU values are {', '.join(str(c) for c in FARGATE_SIZES)}.",
        )
    if memory not in FARGATE_SIZES[cpu]:
        allowed = FARGATE_SIZES[cpu]
        raise EcsError(
            "ClientException",
            f"No Fargate configuration exists for given values: {cpu} CPU, {memory} memory. "
            f"With {cpu} CPU units, memory must be one of {allowed[0]}..{allowed[-1]} MiB "
            f"({', '.join(str(m) for m in allowed)}).",
        )
    return cpu, memory


def _container(container, network_mode):
    """One container definition with ECS's defaults filled in, as Describe returns it."""
    check_name(container.get("name"), "Container name")
    if not container.get("image", "").strip():
        raise EcsError("ClientException", f"Container '{container['name']}': image must not be empty.")
    if not _IMAGE_RE.fullmatch(container["image"]):
        raise EcsError(
            "ClientException",
            f"Container '{container['name']}': image is not a valid image reference: up to {MAX_IMAGE} letters, "
            "numbers, hyphens, underscores, colons, periods, forward slashes and number signs, optionally "
            "followed by @sha256: and 64 hexadecimal digits.",
        )
    for field in ("memory", "memoryReservation"):
        if field in container and container[field] < MIN_CONTAINER_MEMORY:
            raise EcsError(
                "ClientException",
                f"Invalid '{field}' setting for container '{container['name']}'. "
                f"At least {MIN_CONTAINER_MEMORY} MiB of memory is required for a container.",
            )
    if container.get("cpu", 0) < 0:
        raise EcsError("ClientException", f"Invalid 'cpu' setting for container '{container['name']}'.")
    stop_timeout = container.get("stopTimeout")
    longest = TaskDefinition.MAX_STOP_TIMEOUT
    if stop_timeout is not None and (type(stop_timeout) is not int or not 0 <= stop_timeout <= longest):
        raise EcsError(
            "ClientException",
            f"Invalid 'stopTimeout' setting for container '{container['name']}': it must be a whole number of "
            f"seconds from 0 to {longest} on Fargate.",
        )
    data = {"cpu": 0, "portMappings": [], "essential": True, "environment": [], "mountPoints": [], "volumesFrom": []}
    data.update(container)
    mappings = []
    for mapping in data["portMappings"]:
        mapping = {"protocol": "tcp", **mapping}
        port = mapping.get("containerPort")
        if port is not None and not 0 < port < 65536:
            raise EcsError("ClientException", f"Container '{container['name']}': containerPort {port} is out of range.")
        if network_mode == "awsvpc" and port is not None:
            # With awsvpc the host port is the container port (ECS fills it in or refuses).
            if mapping.get("hostPort") not in (None, port):
                raise EcsError(
                    "ClientException",
                    "When networkMode=awsvpc, the host ports and container ports in port mappings must match.",
                )
            mapping["hostPort"] = port
        mappings.append(mapping)
    limit = settings.FARGATE_LAB["MAX_CONTAINER_PORTS"]
    if len(mappings) > limit:
        raise EcsError(
            "ClientException",
            f"Container '{container['name']}' has {len(mappings)} port mappings; this lab allows at most {limit} "
            "per container (FARGATE_LAB_MAX_CONTAINER_PORTS).",
        )
    ports = [(m.get("containerPort"), str(m["protocol"]).lower()) for m in mappings if m.get("containerPort")]
    repeated = sorted({f"{port}/{protocol}" for port, protocol in ports if ports.count((port, protocol)) > 1})
    if repeated:
        raise EcsError(
            "ClientException",
            f"Container '{container['name']}': port mappings must not repeat a containerPort: {', '.join(repeated)}.",
        )
    data["portMappings"] = mappings
    if data.get("healthCheck"):
        data["healthCheck"] = {**HEALTH_CHECK_DEFAULTS, **data["healthCheck"]}
    return data


def _volumes(volumes):
    """The task's volumes as Describe returns them: an EFS volume's rootDirectory defaults to "/"."""
    names = [v.get("name") for v in volumes]
    if None in names:
        raise EcsError("ClientException", "Each volume of a task definition must have a name.")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise EcsError("ClientException", f"Volume names must be unique in a task definition: {', '.join(repeated)}.")
    out = []
    for volume in volumes:
        if volume.get("efsVolumeConfiguration"):
            volume = {**volume, "efsVolumeConfiguration": {"rootDirectory": "/", **volume["efsVolumeConfiguration"]}}
        out.append(volume)
    return out


def _check_mount_points(containers, volumes):
    """Each mount point names a volume of the definition (an EFS volume or a bind mount: the
    fields' checks refuse every other kind) at an absolute container path, one mount per path."""
    kinds = {v["name"]: v for v in volumes}
    for container in containers:
        paths = []
        for point in container.get("mountPoints") or []:
            where = f"Container '{container['name']}': mountPoints"
            source, path = point.get("sourceVolume"), point.get("containerPath")
            if not source or not path:
                raise EcsError("ClientException", f"{where} must each give a sourceVolume and a containerPath.")
            if source not in kinds:
                raise EcsError("ClientException", f"{where} sourceVolume '{source[:255]}' is not a volume of this "
                                                  "task definition.")
            if not path.startswith("/") or any(part == ".." for part in path.split("/")) or path.strip("/") == "":
                raise EcsError("ClientException", f"{where} containerPath '{path[:255]}' must be an absolute path "
                                                  "other than '/', without '..'.")
            paths.append(path.rstrip("/"))
        repeated = sorted({p for p in paths if paths.count(p) > 1})
        if repeated:
            raise EcsError("ClientException", f"Container '{container['name']}': mountPoints must not repeat a "
                                              f"containerPath: {', '.join(repeated)}.")


def normalize(params, account_id):
    """The stored body of a RegisterTaskDefinition request, and its task-level (cpu, memory).

    Raises ClientException for anything ECS (or the lab's safety rules) refuses.
    """
    check_name(params["family"], "Family")
    check_task_definition(params)
    fargate = "FARGATE" in params.get("requiresCompatibilities", [])
    network_mode = params.get("networkMode")
    if fargate and network_mode != "awsvpc":
        raise EcsError("ClientException", "Fargate only supports network mode 'awsvpc'.")
    containers_in = params["containerDefinitions"]
    if not containers_in:
        raise EcsError("ClientException", "Container list cannot be empty.")
    containers = [_container(c, network_mode) for c in containers_in]
    names = [c["name"] for c in containers]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise EcsError("ClientException", f"Container names must be unique in a task definition: {', '.join(duplicates)}.")
    if not any(c["essential"] for c in containers):
        raise EcsError("ClientException", "A task definition must have at least one essential container.")
    task_ports, limit = sum(len(c["portMappings"]) for c in containers), settings.FARGATE_LAB["MAX_TASK_PORTS"]
    if task_ports > limit:
        raise EcsError(
            "ClientException",
            f"The task definition has {task_ports} port mappings; this lab allows at most {limit} per task "
            "(FARGATE_LAB_MAX_TASK_PORTS).",
        )

    body = dict(params)
    body.pop("tags", None)
    body["containerDefinitions"] = containers
    body["volumes"] = _volumes(params.get("volumes") or [])
    _check_mount_points(containers, body["volumes"])
    body.setdefault("placementConstraints", [])
    body["requiresAttributes"] = []
    for missing in [f for f in ("cpu", "memory") if f not in params]:
        if fargate:
            raise EcsError("ClientException", f"Fargate requires that '{missing}' be defined at the task level.")
    container_cpu = sum(c.get("cpu", 0) for c in containers)
    container_memory = sum(c.get("memory") or c.get("memoryReservation") or 0 for c in containers)
    if fargate:
        cpu, memory = fargate_size(params["cpu"], params["memory"])
    else:
        # EC2's rules, not Fargate's size table: without a task memory each container names its own.
        if "memory" not in params:
            for c in containers:
                if not (c.get("memory") or c.get("memoryReservation")):
                    raise EcsError("ClientException", f"Invalid setting for container '{c['name']}'. "
                                   "At least one of 'memory' or 'memoryReservation' must be specified.")
        cpu = parse_cpu(params["cpu"]) if "cpu" in params else container_cpu
        memory = parse_memory(params["memory"]) if "memory" in params else container_memory
        if cpu is None or memory is None:
            raise EcsError("ClientException", "Invalid 'cpu' or 'memory' setting for task.")
    if "cpu" in params and container_cpu > cpu:
        raise EcsError("ClientException", f"The sum of container cpu ({container_cpu}) is greater than the task cpu ({cpu}).")
    if "memory" in params and container_memory > memory:
        raise EcsError(
            "ClientException", f"The sum of container memory ({container_memory}) is greater than the task memory ({memory})."
        )
    if "cpu" in params and "memory" in params:
        body["cpu"], body["memory"] = str(cpu), str(memory)
    # ECS adds FARGATE to the compatibilities of any definition that Fargate could run.
    fargate_ok = network_mode == "awsvpc" and "cpu" in params and "memory" in params and memory in FARGATE_SIZES.get(cpu, ())
    body["compatibilities"] = ["EC2", "FARGATE"] if fargate_ok else ["EC2"]
    body["registeredBy"] = f"arn:aws:iam::{account_id}:root"
    return body, cpu, memory


# --- the operations -------------------------------------------------------------------------


@operation("RegisterTaskDefinition")
def register_task_definition(ctx, params):
    """Register the next revision of a family (deregistered revisions still count)."""
    body, cpu, memory = normalize(params, ctx.account.account_id)
    tags = _check_tags(params.get("tags", []))
    last = TaskDefinition.objects.filter(account=ctx.account, region=region(), family=params["family"]).aggregate(r=Max("revision"))["r"]
    td = TaskDefinition.objects.create(
        account=ctx.account, family=params["family"], revision=(last or 0) + 1,
        body=body, cpu=cpu, memory=memory, tags=tags,
    )
    bus.publish("task_definition", td.pk)
    response = {"taskDefinition": shapes.task_definition_shape(td)}
    if tags:
        response["tags"] = tags
    return response


@operation("DescribeTaskDefinition")
def describe_task_definition(ctx, params):
    """A task definition by family, family:revision or ARN; tags with include=["TAGS"]."""
    td = _get_task_definition(ctx, params["taskDefinition"])
    response = {"taskDefinition": shapes.task_definition_shape(td)}
    if "TAGS" in _include(params):
        response["tags"] = list(td.tags)
    return response


@operation("ListTaskDefinitions")
def list_task_definitions(ctx, params):
    """Task definition ARNs, filtered by family and status (default ACTIVE), sorted ASC or DESC."""
    rows = deleted_task_definitions.present(
        TaskDefinition.objects.filter(account=ctx.account, region=region(), status=params.get("status", TaskDefinition.ACTIVE))
    )
    if params.get("familyPrefix"):
        rows = rows.filter(family=params["familyPrefix"])
    order = ("-family", "-revision") if params.get("sort") == "DESC" else ("family", "revision")
    items, token = _page(rows.order_by(*order).select_related("account"), params, lambda td: td.arn)
    return _paged_response("taskDefinitionArns", items, token)


@operation("ListTaskDefinitionFamilies")
def list_task_definition_families(ctx, params):
    """Family names by prefix; status ACTIVE (has an active revision), INACTIVE (has none) or ALL."""
    rows = deleted_task_definitions.present(TaskDefinition.objects.filter(account=ctx.account, region=region()))
    if params.get("familyPrefix"):
        rows = rows.filter(family__startswith=params["familyPrefix"])
    active = set(rows.filter(status=TaskDefinition.ACTIVE).values_list("family", flat=True))
    families = sorted(set(rows.values_list("family", flat=True)))
    status = params.get("status", "ALL")
    if status == "ACTIVE":
        families = [f for f in families if f in active]
    elif status == "INACTIVE":
        families = [f for f in families if f not in active]
    items, token = _page(families, params, lambda f: f)
    return _paged_response("families", items, token)


@operation("DeregisterTaskDefinition")
def deregister_task_definition(ctx, params):
    """Mark one revision INACTIVE: running tasks and services keep it, new ones cannot use it."""
    ref = params["taskDefinition"]
    family_ref = _parse_arn(ref, "task-definition", ctx.account) or "" if ref.startswith("arn:") else ref
    if ":" not in family_ref:
        raise EcsError("InvalidParameterException", "A revision must be specified: family:revision or the full ARN.")
    td = _get_task_definition(ctx, ref, not_found=("ClientException", "The specified task definition does not exist."))
    if td.status == TaskDefinition.ACTIVE:
        td.status = TaskDefinition.INACTIVE
        td.deregistered_at = timezone.now()
        td.save(update_fields=("status", "deregistered_at"))
        bus.publish("task_definition", td.pk)
    return {"taskDefinition": shapes.task_definition_shape(td)}
