"""What Fargate Lab does with every member of a task definition: the decisions, as data.

Each member of ``RegisterTaskDefinition``'s request, of ``ContainerDefinition``, of the
structures inside them and of RunTask's ``overrides`` is one ``Field`` here, with one of four
decisions:

* honoured: the lab does what Fargate does with it (on the real Docker engine);
* echoed: kept and returned by Describe, with no effect, and the note says why that is faithful;
* refused: Fargate refuses it too (or it would give a task power over the host): ClientException;
* not yet: Fargate has it but the lab cannot honour it yet: ClientException, never accepted and
  ignored.

A member of botocore's model missing from these tables is refused (a newer SDK's field is
never silently ignored), and a test walks the model to keep the tables complete. The README's
"Task definition fields" section is ``readme_section()``.
"""
import platform
import re
from dataclasses import dataclass
from typing import Callable

from orchestrator import container_dependencies, volumes_from
from orchestrator.docker_engine import ADDABLE_CAPABILITIES, LABEL_PREFIX
from orchestrator.frontend import EcsError
from orchestrator.frontend.sigv4 import served_regions

HONOURED, ECHOED, REFUSED, NOT_YET = "honoured", "echoed", "refused", "not yet"

# Linux capabilities ECS knows (a task may add only ADDABLE_CAPABILITIES, as on Fargate).
CAPABILITIES = frozenset("""
    ALL AUDIT_CONTROL AUDIT_WRITE BLOCK_SUSPEND CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID
    IPC_LOCK IPC_OWNER KILL LEASE LINUX_IMMUTABLE MAC_ADMIN MAC_OVERRIDE MKNOD NET_ADMIN
    NET_BIND_SERVICE NET_BROADCAST NET_RAW SETFCAP SETGID SETPCAP SETUID SYS_ADMIN SYS_BOOT
    SYS_CHROOT SYS_MODULE SYS_NICE SYS_PACCT SYS_PTRACE SYS_RAWIO SYS_RESOURCE SYS_TIME
    SYS_TTY_CONFIG SYSLOG WAKE_ALARM""".split())
# Fargate's ceiling for the open-files limit.
MAX_NOFILE = 1048576
# Namespaced sysctls: each task's own network and IPC namespaces, never the host's.
SYSCTL_PREFIXES = ("net.", "fs.mqueue.")
SYSCTL_NAMES = frozenset({"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
                          "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"})


@dataclass(frozen=True)
class Context:
    """What a check needs to know of the definition around a member."""

    network_mode: str | None
    fargate: bool

    @property
    def awsvpc(self):
        return self.network_mode == "awsvpc"


@dataclass(frozen=True)
class Field:
    """One member's decision, what it means, and (optionally) the check of its value.

    ``check(value, context)`` returns why the value is refused, or None. Without one, a
    refused or not-yet member is refused whenever it is given (not empty, false or zero).
    ``members`` are the decisions for the structure's own members (or each list item's).
    """

    decision: str
    note: str
    check: Callable | None = None
    members: dict | None = None


def _given(value):
    return value not in (None, False, "", [], {}, 0)


# --- checks of values a member allows only in part --------------------------------------------

def _awsvpc_refuses(what):
    def check(value, context):
        if _given(value) and context.awsvpc:
            return f"{what} is not supported when networkMode=awsvpc (as on Fargate)."
        return None
    return check


def _network_mode(value, context):
    return "networkMode 'host' is not supported by Fargate Lab (nor by Fargate)." if value == "host" else None


def _pid_mode(value, context):
    if value == "host" and not context.fargate:
        return "pidMode 'host' is not supported by Fargate Lab: its tasks share no host namespaces."
    if value == "host":
        return ("Tasks using the Fargate launch type do not support pidMode 'host'. "
                "The supported value for pidMode is 'task'.")
    if value == "task":
        return "pidMode 'task' (one process namespace for the task's containers) is not supported by Fargate Lab yet."
    return None


def _placement_constraints(value, context):
    if value and context.fargate:
        return ("placementConstraints in a task definition are not supported on Fargate; "
                "give them to RunTask or CreateService.")
    return None


def _runtime_platform(value, context):
    family = value.get("operatingSystemFamily")
    if family not in (None, "LINUX"):
        return f"runtimePlatform.operatingSystemFamily '{family}' is not supported: Fargate Lab runs Linux containers."
    arch = value.get("cpuArchitecture")
    if arch is not None and arch != host_architecture():
        return (f"runtimePlatform.cpuArchitecture '{arch}' is not supported: this lab runs on "
                f"{host_architecture()}.")
    return None


def host_architecture():
    """The ECS name of this machine's CPU architecture (X86_64 or ARM64); a remote engine is
    taken to share it."""
    return "ARM64" if platform.machine().lower() in ("aarch64", "arm64") else "X86_64"


def _capabilities(value, context):
    for kind in ("add", "drop"):
        unknown = sorted(set(value.get(kind) or []) - CAPABILITIES)
        if unknown:
            return (f"linuxParameters.capabilities.{kind}: {', '.join(unknown)} is not supported: "
                    "not a Linux capability ECS knows.")
    extra = sorted(set(value.get("add") or []) - ADDABLE_CAPABILITIES)
    if extra:
        return (f"adding Linux capabilities ({', '.join(extra)}) is not supported by Fargate Lab: "
                f"Fargate lets a task add only {', '.join(sorted(ADDABLE_CAPABILITIES))}.")
    return None


def _ulimits(value, context):
    for limit in value:
        name, soft, hard = limit["name"], limit["softLimit"], limit["hardLimit"]
        if soft < 0 or hard < 0:
            return f"ulimits '{name}': limits must not be negative."
        if soft > hard:
            return f"ulimits '{name}': softLimit ({soft}) must not exceed hardLimit ({hard})."
        if name == "nofile" and hard > MAX_NOFILE:
            return f"ulimits 'nofile': hardLimit must be at most {MAX_NOFILE} on Fargate."
    names = [limit["name"] for limit in value]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        return f"ulimits: each name may appear once ({', '.join(duplicates)})."
    return None


def _system_controls(value, context):
    for control in value:
        name = control.get("namespace") or ""
        if not (name.startswith(SYSCTL_PREFIXES) or name in SYSCTL_NAMES):
            return (f"systemControls namespace '{name}' is not supported on Fargate: only namespaced "
                    "net.*, fs.mqueue.* and kernel IPC (kernel.msg*, kernel.sem, kernel.shm*) settings are.")
        if "value" not in control:
            return f"systemControls namespace '{name}': a value is required."
    return None


def _docker_labels(value, context):
    reserved = sorted(k for k in value if k.lower().startswith(LABEL_PREFIX))
    if reserved:
        return (f"dockerLabels {', '.join(reserved)}: labels starting with '{LABEL_PREFIX}' are the lab's own "
                "(they say which task a container belongs to) and cannot be set by a task definition.")
    return None


def _restart_policy(value, context):
    if value.get("enabled"):
        return "restartPolicy (restarting a container in place) is not supported by Fargate Lab yet."
    return None


def _fault_injection(value, context):
    return "enableFaultInjection is not supported by Fargate Lab yet." if value else None


# ECS's limits on a container health check (seconds, retries) and its defaults.
HEALTH_CHECK_LIMITS = {"interval": (5, 300), "timeout": (2, 60), "retries": (1, 10), "startPeriod": (0, 300)}
HEALTH_CHECK_DEFAULTS = {"interval": 30, "timeout": 5, "retries": 3}


def _health_check(value, context):
    if not value:
        return None
    command = value.get("command") or []
    if not command:
        return "healthCheck.command must be given."
    if command[0] not in ("CMD", "CMD-SHELL") or len(command) < 2:
        return ("healthCheck.command must start with CMD (then the command and its arguments) or CMD-SHELL "
                "(then the command line for the container's default shell).")
    if command[0] == "CMD-SHELL" and len(command) != 2:
        return "healthCheck.command with CMD-SHELL must be followed by the command line as one string."
    for name, (low, high) in HEALTH_CHECK_LIMITS.items():
        given = value.get(name)
        if given is not None and not low <= given <= high:
            return f"healthCheck.{name} must be between {low} and {high}."
    return None


def _secrets(value, context):
    from orchestrator import task_secrets

    names = [entry["name"] for entry in value]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        return f"secrets: each name must appear once ({', '.join(duplicates)})."
    for entry in value:
        problem = task_secrets.problem(entry["valueFrom"])
        if problem:
            return problem
    return None


# The awslogs options the lab honours or keeps, and those it cannot honour yet.
AWSLOGS_REQUIRED = ("awslogs-group", "awslogs-region", "awslogs-stream-prefix")
AWSLOGS_KEPT = ("awslogs-create-group", "mode", "max-buffer-size")
_LOG_GROUP_NAME = re.compile(r"[.\-_/#A-Za-z0-9]{1,512}")


def _log_configuration(value, context):
    driver = value.get("logDriver")
    if driver != "awslogs":
        return (f"logConfiguration.logDriver '{driver}' is not supported by Fargate Lab yet: only awslogs ships a "
                "container's output (to the lab's CloudWatch Logs); without a logConfiguration the task page and "
                "the engine keep it.")
    if value.get("secretOptions"):
        return "logConfiguration.secretOptions are not supported by Fargate Lab yet."
    options = value.get("options") or {}
    unknown = sorted(set(options) - set(AWSLOGS_REQUIRED) - set(AWSLOGS_KEPT))
    if unknown:
        return (f"logConfiguration option {', '.join(unknown)} is not supported by Fargate Lab yet (it honours "
                f"{', '.join(AWSLOGS_REQUIRED + AWSLOGS_KEPT)}).")
    missing = [name for name in AWSLOGS_REQUIRED if not options.get(name)]
    if missing:
        return f"logConfiguration with awslogs on Fargate must give the option {', '.join(missing)}."
    if not _LOG_GROUP_NAME.fullmatch(options["awslogs-group"]):
        return "logConfiguration option awslogs-group must be a log group name (letters, digits and ._-/#)."
    if options["awslogs-region"] not in served_regions():
        return (f"logConfiguration option awslogs-region '{options['awslogs-region'][:32]}' is not supported: this "
                f"lab serves CloudWatch Logs in {', '.join(sorted(served_regions()))}.")
    if ":" in options["awslogs-stream-prefix"] or "*" in options["awslogs-stream-prefix"]:
        return "logConfiguration option awslogs-stream-prefix must not contain ':' or '*'."
    if options.get("awslogs-create-group", "false").lower() not in ("true", "false"):
        return "logConfiguration option awslogs-create-group must be true or false."
    if options.get("mode", "blocking") not in ("blocking", "non-blocking"):
        return "logConfiguration option mode must be blocking or non-blocking."
    return None


def _efs_volume(value, context):
    from orchestrator import efs

    return efs.problem(value)


def _checked_above(value, context):
    """A member whose refusal ``_efs_volume`` already decided (with ECS's rules first)."""
    return None


def _volume_host(value, context):
    if value.get("sourcePath") is not None:
        return "host.sourcePath: host paths are not supported on Fargate."
    return None


# --- the tables ---------------------------------------------------------------------------------

EFS_AUTHORIZATION_CONFIG = {
    "accessPointId": Field(NOT_YET, "EFS access points (the lab has no EFS API to create one in, so it could not "
                                    "enforce its directory and POSIX user)", check=_checked_above),
    "iam": Field(NOT_YET, "IAM authorization of the mount (the lab keeps no file system policies); DISABLED is kept",
                 check=_checked_above),
}

EFS_VOLUME_CONFIGURATION = {
    "fileSystemId": Field(HONOURED, "names the account's file system in the task's region: a Docker volume of the "
                                    "lab's, created when a task first mounts it (fs- and 8 to 40 hex digits)"),
    "rootDirectory": Field(HONOURED, "the directory of the file system that is mounted (default and echoed '/'); "
                                     "'.' and '..' are refused"),
    "transitEncryption": Field(ECHOED, "kept and returned: the files never leave the engine's disk, so there is no "
                                       "network hop to encrypt"),
    "transitEncryptionPort": Field(ECHOED, "kept and returned (1-65535), for the same reason"),
    "authorizationConfig": Field(HONOURED, "see its members", members=EFS_AUTHORIZATION_CONFIG),
}

VOLUME = {
    "name": Field(HONOURED, "what mountPoints' sourceVolume names (a volume does nothing until a container mounts "
                            "it)"),
    "host": Field(HONOURED, "empty ({}) or absent: a bind mount, the task's own Docker volume shared by its "
                            "containers and removed with them (an image's VOLUME at containerPath is copied in); a "
                            "sourcePath is refused (host paths)", check=_volume_host),
    "configuredAtLaunch": Field(NOT_YET, "EBS volumes configured at launch"),
    "dockerVolumeConfiguration": Field(REFUSED, "Docker volume plugins are not available on Fargate"),
    "efsVolumeConfiguration": Field(HONOURED, "an EFS file system of the task's account, shared by its tasks: see "
                                              "its members and the README's EFS section", check=_efs_volume,
                                    members=EFS_VOLUME_CONFIGURATION),
    "s3filesVolumeConfiguration": Field(NOT_YET, "S3 Files volumes"),
    "fsxWindowsFileServerVolumeConfiguration": Field(REFUSED, "FSx for Windows File Server is for Windows tasks"),
}

VOLUME_FROM = {
    "sourceContainer": Field(HONOURED, "another container of the task definition, whose volumes are mounted at its "
                                       "container paths (the container itself, an unknown one or a cycle is refused)"),
    "readOnly": Field(HONOURED, "true: every one of them read-only; otherwise each as the source mounts it"),
}

PORT_MAPPING = {
    "containerPort": Field(HONOURED, "published on the lab's address; with awsvpc the host port is the container port"),
    "hostPort": Field(HONOURED, "with awsvpc it must equal containerPort (ECS fills it in)"),
    "protocol": Field(HONOURED, "tcp or udp"),
    "name": Field(HONOURED, "names the port a Service Connect service's portName refers to"),
    "appProtocol": Field(ECHOED, "kept and returned: it is read by Service Connect's proxy, which the lab does not have"),
    "containerPortRange": Field(NOT_YET, "port ranges"),
}

LINUX_PARAMETERS = {
    "capabilities": Field(HONOURED, "drop: any capability is dropped; add: only SYS_PTRACE, as on Fargate",
                          check=_capabilities),
    "devices": Field(REFUSED, "host devices are not available on Fargate"),
    "initProcessEnabled": Field(HONOURED, "the container runs under Docker's init (tini) as PID 1"),
    "sharedMemorySize": Field(REFUSED, "Fargate does not support sharedMemorySize"),
    "tmpfs": Field(REFUSED, "Fargate does not support tmpfs mounts"),
    "maxSwap": Field(REFUSED, "Fargate does not support swap"),
    "swappiness": Field(REFUSED, "Fargate does not support swap"),
}

CONTAINER_DEFINITION = {
    "name": Field(HONOURED, "the container's name in the task"),
    "image": Field(HONOURED, "pulled by the agent; ECS's rule for references is checked at registration"),
    "repositoryCredentials": Field(NOT_YET, "private registry credentials (they need Secrets Manager)"),
    "cpu": Field(HONOURED, "the container's CPU share of the task (Docker NanoCpus)"),
    "memory": Field(HONOURED, "the container's hard memory limit"),
    "memoryReservation": Field(HONOURED, "the container's soft memory limit"),
    "links": Field(REFUSED, "links are for bridge networking", check=_awsvpc_refuses("links")),
    "portMappings": Field(HONOURED, "published on the lab's address", members=PORT_MAPPING),
    "essential": Field(HONOURED, "an essential container that exits stops the task"),
    "restartPolicy": Field(NOT_YET, "restarting a container in place", check=_restart_policy),
    "entryPoint": Field(HONOURED, "the container's entry point"),
    "command": Field(HONOURED, "the container's command (RunTask overrides it)"),
    "environment": Field(HONOURED, "the container's environment (RunTask overrides add to it)"),
    "environmentFiles": Field(NOT_YET, "environment files are read from S3, which the lab does not serve (use "
                                       "environment or secrets)"),
    "mountPoints": Field(HONOURED, "a volume of the task definition is mounted at containerPath (readOnly "
                                   "honoured): an EFS file system, or a bind mount"),
    "volumesFrom": Field(HONOURED, "mounts every volume of another container of the task at the same paths: its "
                                   "mountPoints (bind mounts, EFS), what it has from its own volumesFrom, and its "
                                   "image's VOLUMEs no mount point covers (a volume of the task's own, removed with "
                                   "it)", members=VOLUME_FROM),
    "linuxParameters": Field(HONOURED, "see its members", members=LINUX_PARAMETERS),
    "secrets": Field(HONOURED, "read from SSM Parameter Store (a name or ARN) or Secrets Manager (an ARN, optionally "
                     "with :json-key:version-stage:version-id) of the task's account and region into the "
                     "container's environment when it is created; a missing one stops the task with "
                     "ResourceInitializationError, as on ECS; the values are shown on no page", check=_secrets),
    "dependsOn": Field(HONOURED, "the container starts once each dependency is START (started), COMPLETE (exited), "
                                 "SUCCESS (exited 0) or HEALTHY (its health check passes); the task stops in reverse "
                                 "order; COMPLETE and SUCCESS need a non-essential dependency, HEALTHY one with a "
                                 "healthCheck; no cycles"),
    "startTimeout": Field(HONOURED, "seconds (2–120, default 120) this container has to meet the conditions its "
                                    "dependents wait for; then they are given up (an essential one stops the task)"),
    "stopTimeout": Field(HONOURED, "seconds between SIGTERM and SIGKILL when the task stops"),
    "versionConsistency": Field(ECHOED, "kept and returned: the lab resolves the image's tag on each pull"),
    "hostname": Field(REFUSED, "Fargate does not support hostname", check=_awsvpc_refuses("hostname")),
    "user": Field(HONOURED, "the user (name, uid or uid:gid) the container runs as"),
    "workingDirectory": Field(HONOURED, "the container's working directory"),
    "disableNetworking": Field(REFUSED, "Fargate does not support it",
                               check=_awsvpc_refuses("disableNetworking")),
    "privileged": Field(REFUSED, "privileged mode is not supported on Fargate"),
    "readonlyRootFilesystem": Field(HONOURED, "the container's root file system is read-only"),
    "dnsServers": Field(REFUSED, "Fargate does not support it", check=_awsvpc_refuses("dnsServers")),
    "dnsSearchDomains": Field(REFUSED, "Fargate does not support it", check=_awsvpc_refuses("dnsSearchDomains")),
    "extraHosts": Field(REFUSED, "Fargate does not support it", check=_awsvpc_refuses("extraHosts")),
    "dockerSecurityOptions": Field(REFUSED, "dockerSecurityOptions are not supported on Fargate"),
    "interactive": Field(HONOURED, "stdin stays open (docker run -i)"),
    "pseudoTerminal": Field(HONOURED, "the container gets a TTY (docker run -t)"),
    "dockerLabels": Field(HONOURED, "set on the container; the lab's own fargatelab.* labels are refused",
                          check=_docker_labels),
    "ulimits": Field(HONOURED, "set on the container; nofile up to 1048576, softLimit ≤ hardLimit", check=_ulimits),
    "logConfiguration": Field(HONOURED, "awslogs: the agent ships the container's output, with timestamps, to the "
                              "lab's CloudWatch Logs (stream prefix/container/task-id; awslogs-create-group creates "
                              "the group, else a missing group fails the task); other drivers are refused",
                              check=_log_configuration),
    "healthCheck": Field(HONOURED, "the container's Docker health check (CMD or CMD-SHELL; interval 5–300 s, "
                         "timeout 2–60 s, retries 1–10, startPeriod 0–300 s); its result is the container's and the "
                         "task's healthStatus, and a service replaces a task whose essential container turns UNHEALTHY",
                         check=_health_check),
    "systemControls": Field(HONOURED, "namespaced sysctls only: net.*, fs.mqueue.*, kernel IPC",
                            check=_system_controls),
    "resourceRequirements": Field(REFUSED, "GPUs and inference accelerators are not available on Fargate"),
    "firelensConfiguration": Field(NOT_YET, "FireLens log routing"),
    "credentialSpecs": Field(REFUSED, "gMSA credential specs are for Windows containers"),
}

TASK_DEFINITION = {
    "family": Field(HONOURED, "each registration is the family's next revision"),
    "taskRoleArn": Field(HONOURED, "the task's containers get AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: temporary "
                                   "credentials of the task's own account at 169.254.170.2, good until they expire "
                                   "or the task stops (the lab keeps no IAM policies: they may do what the account may)"),
    "executionRoleArn": Field(ECHOED, "kept and returned (required with container secrets, as on ECS): the lab's "
                                      "agent pulls images and reads secrets without a role"),
    "networkMode": Field(HONOURED, "awsvpc: each task gets its own address on its cluster's network; 'host' is "
                                   "refused; other modes register as EC2-only (RunTask refuses them)",
                         check=_network_mode),
    "containerDefinitions": Field(HONOURED, "see the container fields", members=CONTAINER_DEFINITION),
    "volumes": Field(HONOURED, "mounted where mountPoints name them: EFS file systems, and bind mounts (a volume "
                               "without a configuration)", members=VOLUME),
    "placementConstraints": Field(ECHOED, "kept for EC2-only definitions; refused with FARGATE",
                                  check=_placement_constraints),
    "requiresCompatibilities": Field(HONOURED, "FARGATE checks the definition against Fargate's rules"),
    "cpu": Field(HONOURED, "the task's Fargate size: its CPU limit"),
    "memory": Field(HONOURED, "the task's Fargate size: its memory limit"),
    "tags": Field(HONOURED, "kept as the task definition's tags"),
    "pidMode": Field(REFUSED, "host is refused; task is not supported yet", check=_pid_mode),
    "ipcMode": Field(REFUSED, "Fargate does not support ipcMode"),
    "proxyConfiguration": Field(NOT_YET, "App Mesh proxy configuration"),
    "inferenceAccelerators": Field(REFUSED, "Elastic Inference accelerators are not available on Fargate"),
    "ephemeralStorage": Field(NOT_YET, "sizing a task's ephemeral storage (tasks use the engine's disk)"),
    "runtimePlatform": Field(HONOURED, "LINUX, on this machine's CPU architecture; other values are refused",
                             check=_runtime_platform),
    "enableFaultInjection": Field(NOT_YET, "fault injection", check=_fault_injection),
}

# RunTask's overrides: the same decisions for what a task may change at launch.
CONTAINER_OVERRIDE = {
    "name": Field(HONOURED, "the container the override is for"),
    "command": Field(HONOURED, "replaces the definition's command"),
    "environment": Field(HONOURED, "added to the definition's environment"),
    "environmentFiles": Field(NOT_YET, "environment files are read from S3, which the lab does not serve (use "
                                       "environment or secrets)"),
    "cpu": Field(HONOURED, "replaces the container's CPU share"),
    "memory": Field(HONOURED, "replaces the container's hard memory limit"),
    "memoryReservation": Field(HONOURED, "replaces the container's soft memory limit"),
    "resourceRequirements": Field(REFUSED, "GPUs and inference accelerators are not available on Fargate"),
}

TASK_OVERRIDE = {
    "containerOverrides": Field(HONOURED, "see the container override fields", members=CONTAINER_OVERRIDE),
    "cpu": Field(HONOURED, "the task's Fargate size for this launch"),
    "memory": Field(HONOURED, "the task's Fargate size for this launch"),
    "inferenceAcceleratorOverrides": Field(REFUSED, "Elastic Inference accelerators are not available on Fargate"),
    "executionRoleArn": Field(ECHOED, "kept and returned: the lab's agent pulls images without a role"),
    "taskRoleArn": Field(HONOURED, "the role whose credentials this task's containers get, instead of the "
                                   "definition's"),
    "ephemeralStorage": Field(NOT_YET, "sizing a task's ephemeral storage (tasks use the engine's disk)"),
}

# The model's shape names of the tables, for the test that walks botocore's model.
TABLES = {
    "RegisterTaskDefinitionRequest": TASK_DEFINITION,
    "ContainerDefinition": CONTAINER_DEFINITION,
    "LinuxParameters": LINUX_PARAMETERS,
    "PortMapping": PORT_MAPPING,
    "VolumeFrom": VOLUME_FROM,
    "Volume": VOLUME,
    "EFSVolumeConfiguration": EFS_VOLUME_CONFIGURATION,
    "EFSAuthorizationConfig": EFS_AUTHORIZATION_CONFIG,
    "TaskOverride": TASK_OVERRIDE,
    "ContainerOverride": CONTAINER_OVERRIDE,
}


def _reason(member, field, value, context):
    """Why ``value`` of ``member`` is refused, or None if the decision lets it through."""
    if field.check is not None:
        return field.check(value, context)
    if field.decision == REFUSED and _given(value):
        return f"{member} is not supported on Fargate: {field.note}."
    if field.decision == NOT_YET and _given(value):
        return f"{member} is not supported by Fargate Lab yet ({field.note})."
    return None


def check_members(value, table, context, where=""):
    """Raise ClientException for the first member of ``value`` its decision refuses (recursively)."""
    for member, item in value.items():
        field = table.get(member)
        if field is None:  # a member of a newer model, not decided on yet: never ignore it silently
            raise EcsError("ClientException", f"{where}{member} is not supported by Fargate Lab.")
        reason = _reason(member, field, item, context)
        if reason:
            raise EcsError("ClientException", f"{where}{reason}")
        if field.members is not None:
            for part in item if isinstance(item, list) else [item]:
                check_members(part, field.members, context, where)


def check_task_definition(params):
    """Refuse what the decisions refuse in a RegisterTaskDefinition request (already model-clean)."""
    context = Context(params.get("networkMode"), "FARGATE" in (params.get("requiresCompatibilities") or []))
    task_level = {k: v for k, v in params.items() if k != "containerDefinitions"}
    check_members(task_level, TASK_DEFINITION, context)
    for container in params.get("containerDefinitions") or []:
        check_members(container, CONTAINER_DEFINITION, context, f"Container '{container.get('name', '')}': ")
    problem = (container_dependencies.problems(params.get("containerDefinitions") or [])
               or volumes_from.problem(params.get("containerDefinitions") or []))
    if problem:
        raise EcsError("ClientException", problem)
    if any(c.get("secrets") for c in params.get("containerDefinitions") or []) and not params.get("executionRoleArn"):
        raise EcsError("ClientException", "When you are specifying container secrets, you must also specify a value "
                                          "for 'executionRole'.")


def check_overrides(overrides):
    """Refuse what the decisions refuse in RunTask's overrides (already model-clean)."""
    check_members(overrides, TASK_OVERRIDE, Context("awsvpc", True), "overrides: ")


def readme_section():
    """The README's "Task definition fields" tables, generated from the decisions."""
    lines = []
    for title, table in (("Task definition", TASK_DEFINITION), ("Container definition", CONTAINER_DEFINITION),
                         ("linuxParameters", LINUX_PARAMETERS), ("portMappings", PORT_MAPPING),
                         ("volumesFrom", VOLUME_FROM),
                         ("volumes", VOLUME), ("efsVolumeConfiguration", EFS_VOLUME_CONFIGURATION),
                         ("authorizationConfig", EFS_AUTHORIZATION_CONFIG), ("RunTask overrides", TASK_OVERRIDE),
                         ("containerOverrides", CONTAINER_OVERRIDE)):
        lines += ["", f"| {title} field | Decision | What the lab does |", "| --- | --- | --- |"]
        lines += [f"| `{name}` | {field.decision} | {field.note} |" for name, field in table.items()]
    return "\n".join(lines[1:]) + "\n"
