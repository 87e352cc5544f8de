"""The state database: the single source of truth of the control plane (etcd in Kubernetes).

The frontend writes desired state (``desired_status``, ``desired_count``); the control plane
writes observed state (``last_status``, ``running_count``). Transitions that two workers could
race on are claimed with conditional updates (``filter(pk=…, last_status=old).update(…)``).
"""
import contextlib
import contextvars
import time
import uuid

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models.functions import Coalesce, Greatest, Least
from django.utils import timezone
from django.utils.functional import cached_property

from orchestrator import kubernetes


def lab_setting(name):
    """One value of settings.FARGATE_LAB."""
    return settings.FARGATE_LAB[name]


# The region the current call acts in: the one in its signature's credential scope (an API
# call) or the one the dashboard's selector chose (a page); unset, the lab's default region.
_acting_region = contextvars.ContextVar("fargatelab_region", default=None)


def default_region():
    """The lab's default region (FARGATE_LAB["REGION"]): where rows made before regions live,
    and what code running outside any call (the control plane) names when it has no object."""
    return lab_setting("REGION")


def served_regions():
    """The regions the lab serves (FARGATE_LAB["REGIONS"], always with the default region): a
    signature scoped to another is refused, and the dashboard's selector offers these."""
    return tuple(dict.fromkeys([default_region(), *lab_setting("REGIONS")]))


def region():
    """The region the current call acts in (see ``acting_in``), else the default region."""
    return _acting_region.get() or default_region()


@contextlib.contextmanager
def acting_in(name):
    """Run the block as a call acting in region ``name``: ``region()`` names it, so what the block
    creates lives there and what it lists or finds is that region's."""
    token = _acting_region.set(name)
    try:
        yield name
    finally:
        _acting_region.reset(token)


def new_id():
    """A 32-hex-digit id, the shape ECS uses for task and instance ids."""
    return uuid.uuid4().hex


def new_uuid():
    """A dashed UUID, the shape ECS uses for service event ids."""
    return str(uuid.uuid4())


class Account(models.Model):
    """An AWS account: every ECS object belongs to one."""

    account_id = models.CharField(max_length=12, unique=True)
    name = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # Dashboard users who act as this account (a student each, say); a user in none acts as
    # the default account.
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="aws_accounts",
        help_text="Dashboard users who see and act as this account; users in no account use the default one.",
    )
    # Service quotas a teacher set for this account; empty: the lab's default (``orchestrator.quotas``).
    fargate_on_demand_vcpu_quota = models.FloatField(
        "Fargate On-Demand vCPU resource count", null=True, blank=True, validators=[MinValueValidator(0)],
        help_text="L-3032A538: vCPUs of On-Demand tasks not yet STOPPED. Empty: the lab's default.",
    )
    fargate_spot_vcpu_quota = models.FloatField(
        "Fargate Spot vCPU resource count", null=True, blank=True, validators=[MinValueValidator(0)],
        help_text="L-36FBB829: vCPUs of FARGATE_SPOT tasks not yet STOPPED. Empty: the lab's default.",
    )
    clusters_quota = models.PositiveIntegerField(
        "Clusters per account", null=True, blank=True, help_text="L-21C621EB. Empty: the lab's default.",
    )
    services_per_cluster_quota = models.PositiveIntegerField(
        "Services per cluster", null=True, blank=True, help_text="L-9EF96962. Empty: the lab's default.",
    )
    tasks_per_service_quota = models.PositiveIntegerField(
        "Tasks per service", null=True, blank=True, help_text="A service's desired count. Empty: the lab's default.",
    )

    def __str__(self):
        return f"{self.account_id} {self.name}".strip()

    def quota(self, quota):
        """The applied value of one of ``orchestrator.quotas.QUOTAS`` for this account."""
        from orchestrator import quotas

        return quotas.value(quota, self)

    @classmethod
    def of_user(cls, user):
        """The account a dashboard user acts as: the first they are a member of, else the default."""
        if user is not None and user.is_authenticated:
            mine = cls.objects.filter(members=user).order_by("pk").first()
            if mine is not None:
                return mine
        return cls.default()

    @classmethod
    def default(cls):
        """The lab's default account 000000000000; its access key test / secret test comes with
        it when the account is created, and only then: a key the admin removed stays removed."""
        account, created = cls.objects.get_or_create(
            account_id=lab_setting("DEFAULT_ACCOUNT"), defaults={"name": "default"}
        )
        if created:
            AccessKey.objects.get_or_create(
                access_key_id=AccessKey.DEFAULT_ID, defaults={"account": account, "secret_access_key": AccessKey.DEFAULT_SECRET}
            )
        return account


class AccessKey(models.Model):
    """An access key pair that SigV4 signatures are checked against."""

    # The documented key of a fresh lab (the default account's): anyone who read the README has it.
    DEFAULT_ID = DEFAULT_SECRET = "test"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="access_keys")
    access_key_id = models.CharField(max_length=128, unique=True)
    secret_access_key = models.CharField(max_length=128)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return self.access_key_id

    @property
    def caller(self):
        """Who signed, as the activity records name callers (a task role's key names its role instead)."""
        return self.access_key_id

    @classmethod
    def default_key_active(cls):
        """Whether the documented key test / test still signs requests."""
        key = cls.objects.filter(access_key_id=cls.DEFAULT_ID, active=True).first()
        return key is not None and key.secret_access_key == cls.DEFAULT_SECRET


class AccountSetting(models.Model):
    """One ECS account setting a principal (the root user, an IAM user or role) set explicitly."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="ecs_settings")
    principal_arn = models.CharField(max_length=2048)
    name = models.CharField(max_length=64)
    value = models.CharField(max_length=64)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "principal_arn", "name"], name="uniq_account_setting")
        ]

    def __str__(self):
        return f"{self.name}={self.value}"


class Cluster(models.Model):
    """An ECS cluster (a Kubernetes cluster, for tenancy a namespace)."""

    ACTIVE, INACTIVE = "ACTIVE", "INACTIVE"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="clusters")
    # Each region's objects are its own: an account's us-east-1 and eu-west-1 "default" are two.
    region = models.CharField(max_length=32, default=region)
    name = models.CharField(max_length=255)
    status = models.CharField(max_length=16, default=ACTIVE)
    tags = models.JSONField(default=list, blank=True)
    settings = models.JSONField(default=list, blank=True)
    # What CreateCluster, UpdateCluster and PutClusterCapacityProviders set, echoed as given.
    capacity_providers = models.JSONField(default=list, blank=True)
    default_capacity_provider_strategy = models.JSONField(default=list, blank=True)
    configuration = models.JSONField(default=dict, blank=True)
    service_connect_defaults = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "region", "name"], name="uniq_cluster_name")]

    def __str__(self):
        return self.name

    @property
    def arn(self):
        return f"arn:aws:ecs:{self.region}:{self.account.account_id}:cluster/{self.name}"


class TaskDefinition(models.Model):
    """One revision of a task definition family (a Pod spec / PodTemplate).

    ``body`` keeps the registered request as ECS returns it (containerDefinitions, cpu,
    memory, networkMode, requiresCompatibilities, …), so Describe gives back what was sent.
    """

    ACTIVE, INACTIVE, DELETE_IN_PROGRESS = "ACTIVE", "INACTIVE", "DELETE_IN_PROGRESS"
    # Fargate's longest stopTimeout: seconds between a container's SIGTERM and its SIGKILL.
    MAX_STOP_TIMEOUT = 120

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="task_definitions")
    region = models.CharField(max_length=32, default=region)
    family = models.CharField(max_length=255)
    revision = models.PositiveIntegerField()
    status = models.CharField(max_length=24, default=ACTIVE)
    body = models.JSONField(default=dict)
    cpu = models.PositiveIntegerField(help_text="task-level CPU units (1024 = 1 vCPU)")
    memory = models.PositiveIntegerField(help_text="task-level memory, MiB")
    tags = models.JSONField(default=list, blank=True)
    registered_at = models.DateTimeField(default=timezone.now)
    deregistered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "region", "family", "revision"], name="uniq_taskdef_revision")
        ]
        ordering = ["family", "revision"]

    def __str__(self):
        return f"{self.family}:{self.revision}"

    @property
    def arn(self):
        return f"arn:aws:ecs:{self.region}:{self.account.account_id}:task-definition/{self.family}:{self.revision}"

    @property
    def container_definitions(self):
        return self.body.get("containerDefinitions", [])


class ContainerInstance(models.Model):
    """An instance of the hidden Fargate fleet (a Kubernetes node), backed by a Docker engine.

    The fleet is the platform's, not a customer's: like AWS's Fargate fleet it belongs to no
    account and is shared by every cluster. Remaining capacity is derived from the tasks
    placed on it (see ``capacity_manager``), never kept as a counter that could drift.
    """

    PROVISIONING, ACTIVE, DRAINING, INACTIVE = "PROVISIONING", "ACTIVE", "DRAINING", "INACTIVE"

    instance_id = models.CharField(max_length=32, unique=True, default=new_id)
    name = models.CharField(max_length=64, unique=True)
    # sim://… is a simulated runtime (no Docker): see ``kind``.
    engine_url = models.CharField(max_length=255, blank=True, help_text='"" = the local engine')
    status = models.CharField(max_length=16, default=ACTIVE)
    cpu_registered = models.PositiveIntegerField()
    memory_registered = models.PositiveIntegerField()
    agent_connected = models.BooleanField(default=False)
    # Until when its agent is cut off from the control plane (the teacher's chaos): its tasks run
    # on unreported, nothing is placed on it; it reconnects and reconciles then (agent.sync_instance).
    agent_disconnected_until = models.DateTimeField(null=True, blank=True)
    registered_at = models.DateTimeField(default=timezone.now)
    last_heartbeat = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def kind(self):
        """"simulated" for an instance on a simulated runtime (KWOK's idea: a node without a
        kubelet, orchestrator/simulated_engine.py), else "docker"."""
        return "simulated" if self.engine_url.startswith("sim://") else "docker"

    def arn_for(self, account_id, cluster_name, region_name=None):
        """The ARN of this instance as seen from one cluster of one account (in its region)."""
        return f"arn:aws:ecs:{region_name or region()}:{account_id}:container-instance/{cluster_name}/{self.instance_id}"


class Announcement(models.Model):
    """A message on one account's pages: what the teacher's chaos just did to its objects."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="announcements")
    kind = models.CharField(max_length=32)  # kill, drain, disconnect, fill, release
    message = models.TextField()
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.account.account_id} {self.kind}: {self.message[:40]}"


class Service(models.Model):
    """An ECS service (a Deployment with its ReplicaSets): keeps desired_count tasks running."""

    ACTIVE, DRAINING, INACTIVE = "ACTIVE", "DRAINING", "INACTIVE"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="services")
    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="services")
    name = models.CharField(max_length=255)
    status = models.CharField(max_length=16, default=ACTIVE)
    task_definition = models.ForeignKey(TaskDefinition, on_delete=models.PROTECT, related_name="services")
    desired_count = models.PositiveIntegerField(default=0)
    # Observed, written by the cluster manager.
    running_count = models.PositiveIntegerField(default=0)
    pending_count = models.PositiveIntegerField(default=0)
    launch_type = models.CharField(max_length=16, default="FARGATE")
    scheduling_strategy = models.CharField(max_length=16, default="REPLICA")
    deployment_configuration = models.JSONField(default=dict, blank=True)
    network_configuration = models.JSONField(default=dict, blank=True)
    load_balancers = models.JSONField(default=list, blank=True)
    # Its Cloud Map registries and Service Connect configuration, as checked (service_discovery).
    service_registries = models.JSONField(default=list, blank=True)
    service_connect_configuration = models.JSONField(default=dict, blank=True)
    placement_strategy = models.JSONField(default=list, blank=True)
    placement_constraints = models.JSONField(default=list, blank=True)
    # Its capacity provider strategy (checked, with base and weight): the scheduler spreads its
    # tasks over FARGATE and FARGATE_SPOT by it; [] runs them on the FARGATE launch type.
    capacity_provider_strategy = models.JSONField(default=list, blank=True)
    health_check_grace_period = models.PositiveIntegerField(null=True, blank=True)
    # ECS Exec: the tasks this service starts run the managed ExecuteCommandAgent.
    enable_execute_command = models.BooleanField(default=False)
    # ECS (the cluster manager's rolling update) or EXTERNAL (task sets: ``orchestrator.task_sets``).
    deployment_controller = models.CharField(max_length=16, default="ECS")
    client_token = models.CharField(max_length=36, blank=True)
    request_fingerprint = models.CharField(max_length=64, blank=True)
    tags = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.CharField(max_length=255, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)
    # Whether the last pass saw the service at steady state (so the event is said once).
    steady = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["cluster", "name"],
                condition=~models.Q(status="INACTIVE"),
                name="uniq_live_service_name",
            )
        ]

    def __str__(self):
        return f"{self.cluster.name}/{self.name}"

    @property
    def arn(self):
        return f"arn:aws:ecs:{self.cluster.region}:{self.account.account_id}:service/{self.cluster.name}/{self.name}"

    def add_event(self, message, trace_id=None):
        """Append a service event, worded as ECS words it, tied to the trace that caused it
        (by default the trace being worked on); returns the event."""
        if trace_id is None:
            from orchestrator import traces

            trace_id = traces.current()
        return self.events.create(message=f"(service {self.name}) {message}", trace_id=trace_id or "")

    def failed_starts(self, primary=None):
        """(how many tasks of the primary deployment stopped in a row without ever running, when
        the last of them stopped): what restart throttling counts."""
        primary = primary or self.deployments.filter(status=Deployment.PRIMARY).first()
        count, last_failed_at = 0, None
        if primary is None:
            return count, last_failed_at
        recent = self.tasks.filter(last_status=Task.STOPPED, deployment=primary).order_by(
            "-stopped_at", "-id").values("started_at", "stop_code", "stopped_at")[:12]
        for row in recent:
            if row["started_at"] is not None or row["stop_code"] not in Task.FAILURE_CODES:
                break
            count += 1
            last_failed_at = last_failed_at or row["stopped_at"]
        return count, last_failed_at

    def restart_backoff(self, now=None):
        """Whether restart throttling holds this service's launches back now (CrashLoopBackOff)."""
        from orchestrator import deployments

        return deployments.backing_off(*self.failed_starts(), now or timezone.now())


class ServiceEvent(models.Model):
    """One line of a service's event log, as DescribeServices shows it."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="events")
    event_id = models.CharField(max_length=36, default=new_uuid)
    message = models.TextField()
    # The trace of the request or reaction that caused the event (a dead container, a scale).
    trace_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]


class Deployment(models.Model):
    """One deployment of a service (a ReplicaSet of a Deployment): PRIMARY, ACTIVE or INACTIVE.

    A service of the EXTERNAL deployment controller has task sets instead: each is a row here
    too (PRIMARY, ACTIVE, DRAINING once deleted, INACTIVE when its tasks are gone), with its
    scale and its own launch settings and load balancers in ``revision``."""

    PRIMARY, ACTIVE, INACTIVE = "PRIMARY", "ACTIVE", "INACTIVE"
    DRAINING = "DRAINING"  # a deleted task set whose tasks are stopping
    IN_PROGRESS, COMPLETED, FAILED = "IN_PROGRESS", "COMPLETED", "FAILED"

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="deployments")
    deployment_id = models.CharField(max_length=40, unique=True)
    status = models.CharField(max_length=16, default=PRIMARY)
    task_definition = models.ForeignKey(TaskDefinition, on_delete=models.PROTECT, related_name="+")
    desired_count = models.PositiveIntegerField(default=0)
    running_count = models.PositiveIntegerField(default=0)
    pending_count = models.PositiveIntegerField(default=0)
    failed_tasks = models.PositiveIntegerField(default=0)
    rollout_state = models.CharField(max_length=16, default=IN_PROGRESS)
    rollout_state_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    # The service revision it deploys ("" on rows older than revisions: their id's digits), the
    # service's configuration it was made from, and the revisions live when it started.
    revision_id = models.CharField(max_length=32, blank=True)
    revision = models.JSONField(default=dict, blank=True)
    source_revisions = models.JSONField(default=list, blank=True)
    # A rollback deployment names the service deployment it rolls back.
    rollback_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="rollbacks")
    # StopServiceDeployment's request (desired state: the cluster manager rolls back).
    stop_requested = models.CharField(max_length=16, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # A task set's externalId, scale ({"value": percent, "unit": "PERCENT"}) and tags.
    external_id = models.CharField(max_length=255, blank=True)
    scale = models.JSONField(default=dict, blank=True)
    tags = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    @property
    def task_set_arn(self):
        """Its ARN as a task set (a service of the EXTERNAL deployment controller)."""
        return self._service_path().format("task-set") + self.deployment_id

    @property
    def revision_number(self):
        """The id of the service revision it deploys."""
        return self.revision_id or self.deployment_id.rsplit("/", 1)[-1]

    def _service_path(self):
        service = self.service
        return f"arn:aws:ecs:{service.cluster.region}:{service.account.account_id}:{{}}/{service.cluster.name}/{service.name}/"

    @property
    def service_deployment_arn(self):
        """Its ARN as a service deployment (ListServiceDeployments, StopServiceDeployment)."""
        return self._service_path().format("service-deployment") + self.deployment_id.rsplit("/", 1)[-1]

    @property
    def service_revision_arn(self):
        """The ARN of the service revision it deploys (DescribeServiceRevisions)."""
        return self._service_path().format("service-revision") + self.revision_number

    @classmethod
    def new_id(cls):
        """A deployment id shaped like ECS's: ecs-svc/ and 19 digits."""
        return "ecs-svc/" + str(uuid.uuid4().int)[:19]


class Task(models.Model):
    """A running copy of a task definition (a Pod).

    Lifecycle (last_status): PROVISIONING → PENDING → ACTIVATING → RUNNING → DEACTIVATING →
    STOPPING → DEPROVISIONING → STOPPED. desired_status is RUNNING or STOPPED.
    """

    PROVISIONING, PENDING, ACTIVATING, RUNNING = "PROVISIONING", "PENDING", "ACTIVATING", "RUNNING"
    DEACTIVATING, STOPPING, DEPROVISIONING, STOPPED = "DEACTIVATING", "STOPPING", "DEPROVISIONING", "STOPPED"
    LIFECYCLE = [PROVISIONING, PENDING, ACTIVATING, RUNNING, DEACTIVATING, STOPPING, DEPROVISIONING, STOPPED]
    # What a Pod shows in each state, for the lifecycle timeline (kubectl says Terminating while
    # a Pod is deleted; its phase stays Running until its containers exit).
    POD_PHASE = {
        PROVISIONING: "Pending", PENDING: "Pending", ACTIVATING: "Pending", RUNNING: "Running",
        DEACTIVATING: "Terminating", STOPPING: "Terminating", DEPROVISIONING: "Terminating",
        STOPPED: "Succeeded / Failed",
    }
    # Stop codes of tasks that failed on their own (not stopped by the scheduler or a user).
    FAILURE_CODES = ("TaskFailedToStart", "EssentialContainerExited")

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="tasks")
    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="tasks")
    task_id = models.CharField(max_length=32, unique=True, default=new_id)
    task_definition = models.ForeignKey(TaskDefinition, on_delete=models.PROTECT, related_name="tasks")
    service = models.ForeignKey(Service, null=True, blank=True, on_delete=models.SET_NULL, related_name="tasks")
    deployment = models.ForeignKey(Deployment, null=True, blank=True, on_delete=models.SET_NULL, related_name="tasks")
    container_instance = models.ForeignKey(
        ContainerInstance, null=True, blank=True, on_delete=models.SET_NULL, related_name="tasks"
    )
    group = models.CharField(max_length=255, blank=True)
    started_by = models.CharField(max_length=128, blank=True)
    launch_type = models.CharField(max_length=16, default="FARGATE")
    # The capacity provider RunTask's strategy chose (FARGATE_SPOT runs as FARGATE does).
    capacity_provider = models.CharField(max_length=16, blank=True)
    cpu = models.PositiveIntegerField()
    memory = models.PositiveIntegerField()
    overrides = models.JSONField(default=dict, blank=True)
    tags = models.JSONField(default=list, blank=True)
    # RunTask's (or its service's) networkConfiguration: its ENI attachment shows the subnet asked for.
    network_configuration = models.JSONField(default=dict, blank=True)
    # RunTask's placementStrategy and placementConstraints (a service's tasks follow the service's).
    placement_strategy = models.JSONField(default=list, blank=True)
    placement_constraints = models.JSONField(default=list, blank=True)
    client_token = models.CharField(max_length=64, blank=True)
    request_fingerprint = models.CharField(max_length=64, blank=True)
    # Task scale-in protection (UpdateTaskProtection): protected until then (None: not protected).
    protected_until = models.DateTimeField(null=True, blank=True)
    # ECS Exec: the task runs the managed ExecuteCommandAgent and accepts ExecuteCommand.
    enable_execute_command = models.BooleanField(default=False)
    # The trace of the request that created the task (RunTask, or the service's pass).
    trace_id = models.CharField(max_length=64, blank=True)
    # The trace that stopped it (a StopTask, a scale-in, a container that died): the agent's
    # later passes over the stopping task (after the stop signal, on the die event) continue it.
    stop_trace_id = models.CharField(max_length=64, blank=True)
    desired_status = models.CharField(max_length=16, default=RUNNING)
    last_status = models.CharField(max_length=16, default=PROVISIONING)
    # Why a task waits (e.g. no instance has room) — shown while PROVISIONING.
    pending_reason = models.TextField(blank=True)
    stop_code = models.CharField(max_length=48, blank=True)
    stopped_reason = models.TextField(blank=True)
    # What DescribeTasks shows: the two parts below as ``task_health.combine`` combines them.
    health_status = models.CharField(max_length=16, default="UNKNOWN")
    # The load balancer's part (written by ``elb_health``) and the containers' health checks'
    # part (written by the agent): HEALTHY / UNHEALTHY / UNKNOWN, or "" where it has none.
    lb_health_status = models.CharField(max_length=16, blank=True)
    container_health_status = models.CharField(max_length=16, blank=True)
    private_ip = models.CharField(max_length=45, blank=True)
    # The Docker id of the warm pool's pause container whose network the task's containers
    # joined (its Pod sandbox, ``orchestrator.sandbox_pool``); "" for a task started without one.
    # Written before any container joins it, so a sandbox named here is never handed out again.
    sandbox_id = models.CharField(max_length=80, blank=True)
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(default=timezone.now)
    pull_started_at = models.DateTimeField(null=True, blank=True)
    pull_stopped_at = models.DateTimeField(null=True, blank=True)
    connectivity_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    stopping_at = models.DateTimeField(null=True, blank=True)
    execution_stopped_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["cluster", "last_status"]),
            models.Index(fields=["service", "desired_status"]),
            models.Index(fields=["last_status"]),
        ]
        constraints = [  # a Pod sandbox is never handed to two tasks, even by two processes' pools
            models.UniqueConstraint(fields=["sandbox_id"], condition=~models.Q(sandbox_id=""),
                                    name="task_sandbox_unique"),
        ]
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return self.task_id

    @property
    def arn(self):
        return self.arn_prefix(self.cluster, self.account.account_id) + self.task_id

    @staticmethod
    def arn_prefix(cluster, account_id):
        """What every task ARN of ``cluster`` (of account ``account_id``) begins with: its id follows."""
        return f"arn:aws:ecs:{cluster.region}:{account_id}:task/{cluster.name}/"

    def _container_facts(self):
        """Each container's essential flag, exit code and reason, as the Pod mapping reads them."""
        return [{"essential": c.essential, "exitCode": c.exit_code, "reason": c.reason} for c in self.containers.all()]

    @property
    def pod_phase(self):
        """The Pod's status.phase: Succeeded only when every essential container exited 0."""
        return kubernetes.pod_phase(self.last_status, self._container_facts())

    @property
    def pod_status(self):
        """What kubectl get pods shows: Terminating, Error, ErrImagePull, CrashLoopBackOff…"""
        return kubernetes.pod_status(self.last_status, self._container_facts(), self.stopped_reason,
                                     backoff=self.in_restart_backoff)

    @property
    def failed_to_start(self):
        """Whether the task stopped on its own before it ever ran (what restart throttling counts)."""
        return self.last_status == Task.STOPPED and self.started_at is None and self.stop_code in Task.FAILURE_CODES

    @cached_property
    def in_restart_backoff(self):
        """Whether this is a failed start of a service whose restarts are throttled right now
        (a table sets it for its rows with one look per service)."""
        return bool(self.service_id and self.failed_to_start and self.service.restart_backoff())

    @property
    def load_balancers(self):
        """The loadBalancers entries whose target groups the task registers in: its task set's,
        else its service's ([] for a task of no service)."""
        if self.service_id is None:
            return []
        if self.deployment_id and self.service.deployment_controller == "EXTERNAL":
            return list(self.deployment.revision.get("loadBalancers", []))
        return list(self.service.load_balancers or [])

    @property
    def pod_name(self):
        """The name of the Pod this task would be (see ``kubernetes.pod_name``)."""
        return kubernetes.pod_name(
            self.task_id, self.service.name if self.service_id else None,
            self.deployment.deployment_id if self.deployment_id else None, self.task_definition.family,
        )

    def advance(self, old_status, new_status, **fields):
        """Move last_status from old to new if nobody else moved it first; True if we did.

        The conditional UPDATE is the claim: two workers never act twice on one transition.
        """
        now = timezone.now()
        fields.setdefault("updated_at", now)
        changed = Task.objects.filter(pk=self.pk, last_status=old_status).update(
            last_status=new_status, version=models.F("version") + 1, **fields
        )
        if changed:
            # What we wrote, without reading it back (one SELECT less per status change): only
            # ``advance`` moves last_status and version. Columns others write meanwhile (a stop
            # request) reach the next pass, which their bus event or the watcher enqueues.
            self.last_status = new_status
            self.version += 1
            for name, value in fields.items():
                setattr(self, name, value)  # a changed foreign key drops its cached object
        return bool(changed)



class TaskContainer(models.Model):
    """One container of a task, with the Docker container that backs it once created."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="containers")
    name = models.CharField(max_length=255)
    image = models.CharField(max_length=1024)
    essential = models.BooleanField(default=True)
    docker_id = models.CharField(max_length=64, blank=True)
    last_status = models.CharField(max_length=16, default="PENDING")
    exit_code = models.IntegerField(null=True, blank=True)
    reason = models.TextField(blank=True)
    network_bindings = models.JSONField(default=list, blank=True)
    health_status = models.CharField(max_length=16, default="UNKNOWN")
    cpu = models.PositiveIntegerField(default=0)
    memory = models.PositiveIntegerField(null=True, blank=True)
    # The last lines of output, kept when the container is removed after it stopped.
    log_tail = models.TextField(blank=True)
    # When a container sent its stop signal is to be SIGKILLed (its stopTimeout after the signal).
    stop_deadline = models.DateTimeField(null=True, blank=True)
    # When it started and stopped (Docker's own times once known): the order dependsOn gave them.
    started_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"{self.task.task_id}/{self.name}"


class Lease(models.Model):
    """A leader-election lease (Kubernetes' coordination.k8s.io Lease): one holder reconciles."""

    name = models.CharField(max_length=64, unique=True)
    holder = models.CharField(max_length=128, blank=True)
    renewed_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"{self.name} held by {self.holder or 'nobody'}"


class Activity(models.Model):
    """One step the control plane took, for the dashboard's cards and a request's replay.

    ``trace_id`` ties the steps of one request together: the API call that created a task,
    its placement, its container start, its RUNNING report.
    """

    component = models.CharField(max_length=32)  # frontend, cluster_manager, capacity_manager, agent, docker…
    action = models.CharField(max_length=64)
    object_arn = models.CharField(max_length=512, blank=True)
    message = models.TextField(blank=True)
    trace_id = models.CharField(max_length=64, blank=True, db_index=True)
    # API calls: caller, HTTP status, latency.
    caller = models.CharField(max_length=128, blank=True)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    # API calls: the safe parameters ({"params": …, "known": …}, see ``activity.api_request``),
    # never environment values or secrets; from them the aws CLI and kubectl forms are shown.
    request = models.JSONField(default=dict, blank=True)
    # A trace step: when the component began the work and how long it took (an instant
    # record has no start, and counts as starting when it was written, taking no time).
    started_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.FloatField(null=True, blank=True)
    # What a decision weighed, kept as data when it was made (a placement's instances).
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "activities"

    def __str__(self):
        return f"{self.component} {self.action} {self.object_arn}"

    @property
    def aws_command(self):
        """The call in the aws CLI's words ("" for a step that is no ECS call)."""
        if self.component != "frontend" or not self.request:
            return ""
        return kubernetes.aws_cli_for(self.action, self.request.get("params") or {}, self.request.get("service", "ecs"))

    @property
    def kubectl_command(self):
        """The kubectl command that does what this ECS call did ("" when none)."""
        if self.component != "frontend" or not self.request:
            return ""
        return kubernetes.kubectl_for(self.action, self.request.get("params") or {}, self.request.get("known") or {})

    @property
    def step_start(self):
        """When the step began (an instant record: when it was written)."""
        return self.started_at or self.created_at


class Trace(models.Model):
    """One request or reaction followed through the control plane: its steps are the Activity
    rows carrying its ``trace_id``. Started by an API call, a Docker event, a relist that found
    a gap, a failed health check or a scheduler pass of its own; ``account`` is whose it is
    (None: the lab's own, such as the fleet's)."""

    trace_id = models.CharField(max_length=64, unique=True)
    account = models.ForeignKey(Account, null=True, blank=True, on_delete=models.CASCADE, related_name="traces")
    component = models.CharField(max_length=32)
    action = models.CharField(max_length=64)
    object_arn = models.CharField(max_length=512, blank=True)
    started_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self):
        return f"{self.trace_id} {self.component} {self.action}"


class ReconcilePass(models.Model):
    """One pass of the cluster manager over a service: desired against observed, and what the
    plan chose ("desired 3, running 2, pending 0 → start 1"). Passes that repeat the last one
    with nothing to do only count up ``repeats``; the last N are kept per service."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="reconcile_passes")
    trace_id = models.CharField(max_length=64, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    last_at = models.DateTimeField(default=timezone.now)
    duration_ms = models.FloatField(default=0)
    desired = models.PositiveIntegerField(default=0)
    running = models.PositiveIntegerField(default=0)
    pending = models.PositiveIntegerField(default=0)
    actions = models.JSONField(default=list, blank=True)
    summary = models.TextField()
    repeats = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["service", "-started_at"])]

    def __str__(self):
        return self.summary


# --- Elastic Load Balancing (ALB) and ECR -------------------------------------------------


def new_short_id():
    """A 16-hex-digit id, the shape ELBv2 uses at the end of its ARNs."""
    return uuid.uuid4().hex[:16]


def new_dns_number():
    """Ten digits, the shape ELB uses in a load balancer's DNS name."""
    return str(uuid.uuid4().int)[:10]


class LoadBalancer(models.Model):
    """An application load balancer (a Kubernetes Service of type LoadBalancer / an Ingress).

    Its listeners are served by ``load_balancer.DataPlane`` on the lab's host; its DNS name
    ends in ``.elb.localhost``, which browsers resolve to 127.0.0.1 (a classroom lab's is the
    address students reach it at: ``orchestrator.network``).
    """

    PROVISIONING, ACTIVE, ACTIVE_IMPAIRED, FAILED = "provisioning", "active", "active_impaired", "failed"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="load_balancers")
    region = models.CharField(max_length=32, default=region)
    name = models.CharField(max_length=32)
    lb_id = models.CharField(max_length=16, unique=True, default=new_short_id)
    dns_number = models.CharField(max_length=10, default=new_dns_number)
    type = models.CharField(max_length=16, default="application")
    scheme = models.CharField(max_length=16, default="internet-facing")
    ip_address_type = models.CharField(max_length=16, default="ipv4")
    state = models.CharField(max_length=16, default=ACTIVE)
    state_reason = models.TextField(blank=True)
    subnets = models.JSONField(default=list, blank=True)
    security_groups = models.JSONField(default=list, blank=True)
    tags = models.JSONField(default=list, blank=True)
    # ModifyLoadBalancerAttributes' values that differ from ELBv2's defaults (elbv2/attributes.py).
    attributes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "region", "name"], name="uniq_load_balancer_name")]
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def arn(self):
        return (
            f"arn:aws:elasticloadbalancing:{self.region}:{self.account.account_id}:"
            f"loadbalancer/app/{self.name}/{self.lb_id}"
        )

    @property
    def dns_name(self):
        from orchestrator.network import load_balancer_dns_name

        return load_balancer_dns_name(self.name, self.dns_number, self.region)


class TargetGroup(models.Model):
    """A target group (a Kubernetes Endpoints object): where a listener forwards, with its health check."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="target_groups")
    region = models.CharField(max_length=32, default=region)
    name = models.CharField(max_length=32)
    tg_id = models.CharField(max_length=16, unique=True, default=new_short_id)
    protocol = models.CharField(max_length=8, default="HTTP")
    protocol_version = models.CharField(max_length=8, default="HTTP1")
    port = models.PositiveIntegerField(null=True, blank=True)
    vpc_id = models.CharField(max_length=64, blank=True)
    target_type = models.CharField(max_length=16, default="instance")
    health_check_enabled = models.BooleanField(default=True)
    health_check_protocol = models.CharField(max_length=8, default="HTTP")
    health_check_port = models.CharField(max_length=16, default="traffic-port")
    health_check_path = models.CharField(max_length=1024, default="/")
    # Floats so that tests may check faster than the API's 5-second minimum.
    health_check_interval = models.FloatField(default=30)
    health_check_timeout = models.FloatField(default=5)
    healthy_threshold = models.PositiveIntegerField(default=5)
    unhealthy_threshold = models.PositiveIntegerField(default=2)
    matcher = models.CharField(max_length=128, default="200")
    deregistration_delay = models.FloatField(default=300)
    tags = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "region", "name"], name="uniq_target_group_name")]
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def arn(self):
        return f"arn:aws:elasticloadbalancing:{self.region}:{self.account.account_id}:targetgroup/{self.name}/{self.tg_id}"


class Listener(models.Model):
    """A listener: a port of a load balancer and the actions it takes (forward to target groups)."""

    load_balancer = models.ForeignKey(LoadBalancer, on_delete=models.CASCADE, related_name="listeners")
    listener_id = models.CharField(max_length=16, unique=True, default=new_short_id)
    port = models.PositiveIntegerField()
    protocol = models.CharField(max_length=8, default="HTTP")
    default_actions = models.JSONField(default=list)
    # Every target group its default actions and its rules forward to.
    target_groups = models.ManyToManyField(TargetGroup, related_name="listeners", blank=True)
    tags = models.JSONField(default=list, blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    # Written by the data plane: "" while serving, else why the port could not be bound.
    bind_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["port"]

    def __str__(self):
        return f"{self.load_balancer.name}:{self.port}"

    @property
    def arn(self):
        lb = self.load_balancer
        return (
            f"arn:aws:elasticloadbalancing:{lb.region}:{lb.account.account_id}:"
            f"listener/app/{lb.name}/{lb.lb_id}/{self.listener_id}"
        )

    @property
    def url(self):
        """The URL a browser opens: the load balancer's DNS name and this port."""
        return f"http://{self.load_balancer.dns_name}:{self.port}/"


class ListenerRule(models.Model):
    """A listener rule: conditions on the request (path, host, method, headers, query) and the
    actions taken when they all match, tried by priority before the listener's default actions.
    The Kubernetes counterpart is an Ingress rule (host, path → backend Service)."""

    listener = models.ForeignKey(Listener, on_delete=models.CASCADE, related_name="rules")
    rule_id = models.CharField(max_length=16, unique=True, default=new_short_id)
    priority = models.PositiveIntegerField()
    conditions = models.JSONField(default=list)
    actions = models.JSONField(default=list)
    tags = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["listener", "priority"], name="uniq_rule_priority")]
        ordering = ["priority"]

    def __str__(self):
        return f"{self.listener} rule {self.priority}"

    @property
    def arn(self):
        return rule_arn(self.listener, self.rule_id)


def rule_arn(listener, rule_id):
    """The ARN of a rule of ``listener`` (its default rule's id is the listener's own)."""
    lb = listener.load_balancer
    return (f"arn:aws:elasticloadbalancing:{lb.region}:{lb.account.account_id}:"
            f"listener-rule/app/{lb.name}/{lb.lb_id}/{listener.listener_id}/{rule_id}")


class Target(models.Model):
    """A registered target of a target group, with the health the data plane observed.

    ``target_id``/``port`` are what the API shows (an IP, or an instance id); ``address``/
    ``connect_port`` are where the proxy really connects (for a task: its port published on
    the host). ``task`` is set when the control plane registered a service's task.
    """

    INITIAL, HEALTHY, UNHEALTHY, DRAINING = "initial", "healthy", "unhealthy", "draining"

    target_group = models.ForeignKey(TargetGroup, on_delete=models.CASCADE, related_name="targets")
    target_id = models.CharField(max_length=255)
    port = models.PositiveIntegerField()
    availability_zone = models.CharField(max_length=32, blank=True)
    address = models.CharField(max_length=255)
    connect_port = models.PositiveIntegerField()
    task = models.ForeignKey(Task, null=True, blank=True, on_delete=models.SET_NULL, related_name="targets")
    state = models.CharField(max_length=16, default=INITIAL)
    reason = models.CharField(max_length=64, default="Elb.RegistrationInProgress", blank=True)
    description = models.TextField(blank=True)
    registered_at = models.DateTimeField(default=timezone.now)
    drain_until = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["target_group", "target_id", "port"], name="uniq_target")
        ]
        ordering = ["id"]

    def __str__(self):
        return f"{self.target_id}:{self.port} ({self.state})"


class Repository(models.Model):
    """An ECR repository; its images live in the lab's OCI registry at ``<account id>/<name>``,
    so each account has its own namespace of names."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="repositories")
    region = models.CharField(max_length=32, default=region)
    name = models.CharField(max_length=256)
    image_tag_mutability = models.CharField(max_length=16, default="MUTABLE")
    scan_on_push = models.BooleanField(default=False)
    encryption_type = models.CharField(max_length=8, default="AES256")
    tags = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "region", "name"], name="uniq_repository_per_account")]
        ordering = ["name"]
        verbose_name_plural = "repositories"

    def __str__(self):
        return self.name

    @property
    def arn(self):
        return f"arn:aws:ecr:{self.region}:{self.account.account_id}:repository/{self.name}"

    @property
    def path_name(self):
        """Its name under ``<account id>/`` in the lab's one registry: the name itself in the
        default region, ``<region>/<name>`` in another (each region's images are its own)."""
        return repository_path_name(self.region, self.name)


def repository_path_name(region_name, name):
    """A repository's name in the registry path (see ``Repository.path_name``)."""
    return name if region_name == default_region() else f"{region_name}/{name}"


def repository_of_path_name(path_name):
    """(region, name) of a registry path name (the inverse of ``repository_path_name``)."""
    first, _, rest = path_name.partition("/")
    if rest and first != default_region() and first in served_regions():
        return first, rest
    return default_region(), path_name


# --- CloudWatch Logs (orchestrator/frontend/logs/) ------------------------------------------

def now_ms():
    """Now in milliseconds since the epoch, CloudWatch Logs' unit of time."""
    return int(timezone.now().timestamp() * 1000)


class LogGroup(models.Model):
    """A CloudWatch Logs log group of an account in a region: the streams of one application.

    Storage is bounded: a group keeps at most LOGS_GROUP_MAX_BYTES of events (each stream at
    most LOGS_STREAM_MAX_BYTES), the oldest going first, and its retention policy drops events
    older than it (see ``expire``)."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="log_groups")
    region = models.CharField(max_length=32)
    name = models.CharField(max_length=512)
    retention_in_days = models.IntegerField(null=True, blank=True)
    log_group_class = models.CharField(max_length=32, default="STANDARD")
    tags = models.JSONField(default=dict, blank=True)
    stored_bytes = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "region", "name"], name="uniq_log_group")]
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def arn(self):
        return f"arn:aws:logs:{self.region}:{self.account.account_id}:log-group:{self.name}"

    @property
    def creation_time(self):
        return int(self.created_at.timestamp() * 1000)

    def retention_cutoff(self, now=None):
        """The oldest event timestamp (ms) the retention policy keeps, or None without one."""
        if not self.retention_in_days:
            return None
        return (now or now_ms()) - self.retention_in_days * 86_400_000

    def expire(self, now=None):
        """Delete the events older than the retention policy; returns how many went."""
        cutoff = self.retention_cutoff(now)
        if cutoff is None:
            return 0
        return _delete_events(LogEvent.objects.filter(group=self, timestamp__lt=cutoff))

    def expire_now_and_then(self):
        """``expire()``, at most once a minute per group in this process (reads and writes call
        it: events that age past the retention policy are deleted, not only hidden)."""
        if not self.retention_in_days:
            return
        now = time.monotonic()
        if now - _expired_at.get(self.pk, -EXPIRE_EVERY_SECONDS) >= EXPIRE_EVERY_SECONDS:
            _expired_at[self.pk] = now
            self.expire()

    def trim(self):
        """Delete the group's oldest events beyond LOGS_GROUP_MAX_BYTES (to 90% of it, so that
        not every write trims)."""
        cap = lab_setting("LOGS_GROUP_MAX_BYTES")
        stored = LogGroup.objects.filter(pk=self.pk).values_list("stored_bytes", flat=True).first() or 0
        if stored > cap:
            _delete_oldest(LogEvent.objects.filter(group=self), stored - cap * 9 // 10)


class LogStream(models.Model):
    """A log stream: the events of one source (an awslogs container: prefix/container/task-id)."""

    group = models.ForeignKey(LogGroup, on_delete=models.CASCADE, related_name="streams")
    name = models.CharField(max_length=512)
    created_at = models.DateTimeField(default=timezone.now)
    first_event_at = models.BigIntegerField(null=True, blank=True)  # ms
    last_event_at = models.BigIntegerField(null=True, blank=True)  # ms
    last_ingestion_at = models.BigIntegerField(null=True, blank=True)  # ms
    stored_bytes = models.BigIntegerField(default=0)
    # For a stream the agent ships (awslogs): Docker's timestamp (ns) of the last line stored,
    # so that a follow resumed after a restart stores no line twice.
    shipped_until_ns = models.BigIntegerField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["group", "name"], name="uniq_log_stream")]
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def arn(self):
        return f"{self.group.arn}:log-stream:{self.name}"

    @property
    def creation_time(self):
        return int(self.created_at.timestamp() * 1000)

    def append(self, events, shipped_until_ns=None):
        """Store ``events`` ((timestamp ms, message) pairs), then trim the stream and its group
        to their caps; returns the stored LogEvents."""
        if not events:
            return []
        ingested = now_ms()
        rows = [LogEvent(stream=self, group_id=self.group_id, timestamp=ts, ingestion_time=ingested,
                         message=message, size=event_size(message)) for ts, message in events]
        LogEvent.objects.bulk_create(rows, batch_size=500)
        added = sum(r.size for r in rows)
        first, last = min(ts for ts, _ in events), max(ts for ts, _ in events)
        fields = {"stored_bytes": models.F("stored_bytes") + added, "last_ingestion_at": ingested,
                  "first_event_at": Least(Coalesce("first_event_at", first), first),
                  "last_event_at": Greatest(Coalesce("last_event_at", last), last)}
        if shipped_until_ns is not None:
            fields["shipped_until_ns"] = shipped_until_ns
        LogStream.objects.filter(pk=self.pk).update(**fields)
        LogGroup.objects.filter(pk=self.group_id).update(stored_bytes=models.F("stored_bytes") + added)
        cap = lab_setting("LOGS_STREAM_MAX_BYTES")
        stored = LogStream.objects.filter(pk=self.pk).values_list("stored_bytes", flat=True).first() or 0
        if stored > cap:
            _delete_oldest(LogEvent.objects.filter(stream=self), stored - cap * 9 // 10)
        self.group.trim()
        return rows


class LogEvent(models.Model):
    """One log event: a message with its timestamp and when it was ingested (both ms)."""

    stream = models.ForeignKey(LogStream, on_delete=models.CASCADE, related_name="events")
    # The stream's group, kept on the event so that a group's events are one index range.
    group = models.ForeignKey(LogGroup, on_delete=models.CASCADE, related_name="events")
    timestamp = models.BigIntegerField()
    ingestion_time = models.BigIntegerField()
    message = models.TextField()
    size = models.IntegerField()  # as CloudWatch counts it: UTF-8 bytes + 26

    class Meta:
        indexes = [models.Index(fields=["stream", "timestamp", "id"], name="log_event_stream_time"),
                   models.Index(fields=["group", "timestamp", "id"], name="log_event_group_time")]


# When each group last deleted its expired events (process-local: a pass more is harmless).
EXPIRE_EVERY_SECONDS = 60.0
_expired_at = {}


def event_size(message):
    """The bytes an event counts for in CloudWatch Logs' quotas: its UTF-8 message plus 26."""
    return len(message.encode("utf-8", "replace")) + 26


def _delete_oldest(events, excess):
    """Delete the oldest of ``events`` until at least ``excess`` bytes are freed."""
    ids, freed = [], 0
    for pk, size in events.order_by("timestamp", "id").values_list("id", "size").iterator(chunk_size=2000):
        ids.append(pk)
        freed += size
        if freed >= excess:
            break
    for start in range(0, len(ids), 500):
        _delete_events(LogEvent.objects.filter(pk__in=ids[start:start + 500]))


def _delete_events(events):
    """Delete ``events`` and keep their streams' and groups' sizes and first timestamps true."""
    freed = list(events.values("stream_id", "group_id").annotate(bytes=models.Sum("size")))
    if not freed:
        return 0
    count, _ = events.delete()
    for row in freed:
        LogStream.objects.filter(pk=row["stream_id"]).update(stored_bytes=models.F("stored_bytes") - row["bytes"])
        LogGroup.objects.filter(pk=row["group_id"]).update(stored_bytes=models.F("stored_bytes") - row["bytes"])
        first = LogEvent.objects.filter(stream_id=row["stream_id"]).order_by("timestamp").values_list(
            "timestamp", flat=True).first()
        LogStream.objects.filter(pk=row["stream_id"]).update(first_event_at=first)
    return count


class Parameter(models.Model):
    """An SSM Parameter Store parameter of one account in one region; its values are its versions.

    Values (SecureString ones too) are stored as given, in the state database: the lab has no
    KMS, so "encrypted" means only that they are never shown unless asked for WithDecryption."""

    STRING, STRING_LIST, SECURE_STRING = "String", "StringList", "SecureString"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="parameters")
    region = models.CharField(max_length=32, default=region)
    name = models.CharField(max_length=2048)
    type = models.CharField(max_length=16)
    description = models.CharField(max_length=1024, blank=True)
    key_id = models.CharField(max_length=256, blank=True)
    allowed_pattern = models.CharField(max_length=1024, blank=True)
    tier = models.CharField(max_length=24, default="Standard")
    data_type = models.CharField(max_length=128, default="text")
    tags = models.JSONField(default=list, blank=True)
    version = models.PositiveIntegerField(default=1)
    last_modified_at = models.DateTimeField(default=timezone.now)
    last_modified_user = models.CharField(max_length=256, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["account", "region", "name"], name="parameter_unique_name")]

    def __str__(self):
        return self.name

    @property
    def arn(self):
        return f"arn:aws:ssm:{self.region}:{self.account.account_id}:parameter/{self.name.removeprefix('/')}"

    def current(self):
        """The ParameterVersion that is the parameter's value now."""
        return self.versions.get(version=self.version)


class ParameterVersion(models.Model):
    """One version of a parameter: its value and type when it was put."""

    parameter = models.ForeignKey(Parameter, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    type = models.CharField(max_length=16)
    value = models.TextField()
    description = models.CharField(max_length=1024, blank=True)
    modified_at = models.DateTimeField(default=timezone.now)
    modified_user = models.CharField(max_length=256, blank=True)

    class Meta:
        ordering = ["version"]
        constraints = [models.UniqueConstraint(fields=["parameter", "version"], name="parameter_version_unique")]

    def __str__(self):
        return f"{self.parameter.name}:{self.version}"


class Secret(models.Model):
    """A Secrets Manager secret of one account in one region; its values are its versions.

    Its ARN ends with six random characters after the name, as on AWS, so that a secret
    deleted and created again under the same name is another ARN."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="secrets")
    region = models.CharField(max_length=32, default=region)
    name = models.CharField(max_length=512)
    suffix = models.CharField(max_length=6)
    description = models.CharField(max_length=2048, blank=True)
    kms_key_id = models.CharField(max_length=2048, blank=True)
    tags = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_changed_at = models.DateTimeField(default=timezone.now)
    last_accessed_at = models.DateTimeField(null=True, blank=True)
    # Set by DeleteSecret with a recovery window: the secret is gone once this passes.
    deletion_date = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["account", "region", "name"], name="secret_unique_name")]

    def __str__(self):
        return self.name

    @property
    def arn(self):
        return f"arn:aws:secretsmanager:{self.region}:{self.account.account_id}:secret:{self.name}-{self.suffix}"


class SecretVersion(models.Model):
    """One version of a secret: a string or binary value and its staging labels (AWSCURRENT…)."""

    secret = models.ForeignKey(Secret, on_delete=models.CASCADE, related_name="versions")
    version_id = models.CharField(max_length=64)
    secret_string = models.TextField(null=True, blank=True)
    secret_binary = models.BinaryField(null=True, blank=True)
    stages = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [models.UniqueConstraint(fields=["secret", "version_id"], name="secret_version_unique")]

    def __str__(self):
        return f"{self.secret.name} {self.version_id}"


class Namespace(models.Model):
    """An AWS Cloud Map namespace of one account in one region: a private DNS zone (DNS_PRIVATE,
    ``web.lab.local``) or API-only discovery (HTTP), the Kubernetes cluster domain's counterpart."""

    DNS_PRIVATE, HTTP = "DNS_PRIVATE", "HTTP"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="namespaces")
    region = models.CharField(max_length=32, default=region)
    namespace_id = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=1024)
    type = models.CharField(max_length=16)
    description = models.CharField(max_length=1024, blank=True)
    vpc = models.CharField(max_length=64, blank=True)
    creator_request_id = models.CharField(max_length=64, blank=True)
    # The SOA TTL of a DNS namespace, as given (the lab's DNS is Docker's: see service_discovery).
    soa_ttl = models.PositiveIntegerField(null=True, blank=True)
    tags = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["account", "region", "name"], name="namespace_unique_name")]

    def __str__(self):
        return self.name

    @property
    def arn(self):
        return f"arn:aws:servicediscovery:{self.region}:{self.account.account_id}:namespace/{self.namespace_id}"

    @property
    def is_dns(self):
        return self.type == Namespace.DNS_PRIVATE


class DiscoveryService(models.Model):
    """A Cloud Map service: a name in a namespace whose instances are the addresses it
    resolves to (a Kubernetes Service, its instances the Endpoints)."""

    namespace = models.ForeignKey(Namespace, on_delete=models.CASCADE, related_name="services")
    service_id = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=127)
    type = models.CharField(max_length=16)
    description = models.CharField(max_length=1024, blank=True)
    dns_config = models.JSONField(default=dict, blank=True)
    health_check_custom_config = models.JSONField(null=True, blank=True)
    creator_request_id = models.CharField(max_length=64, blank=True)
    tags = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["namespace", "name"], name="discovery_service_unique_name")]

    def __str__(self):
        return f"{self.name}.{self.namespace.name}"

    @property
    def arn(self):
        namespace = self.namespace
        return f"arn:aws:servicediscovery:{namespace.region}:{namespace.account.account_id}:service/{self.service_id}"

    @property
    def dns_name(self):
        """The name tasks resolve (``web.lab.local``), or "" when its namespace has no DNS."""
        return f"{self.name}.{self.namespace.name}" if self.namespace.is_dns else ""


class DiscoveryInstance(models.Model):
    """One registered instance of a Cloud Map service: a task ECS registered (``task`` set), or
    any address a caller registered with RegisterInstance."""

    service = models.ForeignKey(DiscoveryService, on_delete=models.CASCADE, related_name="instances")
    instance_id = models.CharField(max_length=64)
    attributes = models.JSONField(default=dict, blank=True)
    creator_request_id = models.CharField(max_length=64, blank=True)
    task = models.ForeignKey("Task", null=True, blank=True, on_delete=models.CASCADE,
                             related_name="discovery_instances")
    # UpdateInstanceCustomHealthStatus's word for an instance without a task (HEALTHY by default).
    custom_health = models.CharField(max_length=16, default="HEALTHY")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [models.UniqueConstraint(fields=["service", "instance_id"], name="discovery_instance_unique")]

    def __str__(self):
        return self.instance_id

    @property
    def health_status(self):
        """HEALTHY, UNHEALTHY or UNKNOWN: a task's by its containers' health checks (HEALTHY without
        any, UNKNOWN until they first pass), as ECS reports it to Cloud Map; else the custom status."""
        if self.task_id is None:
            return self.custom_health
        return self.task.container_health_status or "HEALTHY"


class DiscoveryOperation(models.Model):
    """One Cloud Map operation (a namespace created, an instance registered): AWS completes
    them asynchronously; the lab completes them at once, so they read SUCCESS when asked."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="discovery_operations")
    region = models.CharField(max_length=32, default=region)
    operation_id = models.CharField(max_length=64, unique=True)
    type = models.CharField(max_length=32)
    status = models.CharField(max_length=16, default="SUCCESS")
    targets = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self):
        return f"{self.type} {self.operation_id}"


# --- Application Auto Scaling (the HorizontalPodAutoscaler of ECS services) --------------------

def service_linked_role(account_id):
    """The role Application Auto Scaling assumes for ECS when RegisterScalableTarget names none."""
    return (f"arn:aws:iam::{account_id}:role/aws-service-role/ecs.application-autoscaling.amazonaws.com/"
            "AWSServiceRoleForApplicationAutoScaling_ECSService")


class ScalableTarget(models.Model):
    """An ECS service's desired count registered with Application Auto Scaling, within min and max
    capacity (what a HorizontalPodAutoscaler's minReplicas and maxReplicas bound)."""

    NAMESPACE, DIMENSION = "ecs", "ecs:service:DesiredCount"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="scalable_targets")
    region = models.CharField(max_length=32, default=region)
    resource_id = models.CharField(max_length=1600)  # service/<cluster>/<service>
    service = models.ForeignKey(Service, null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="scalable_targets")
    target_id = models.CharField(max_length=32, default=new_id)
    min_capacity = models.PositiveIntegerField()
    max_capacity = models.PositiveIntegerField()
    role_arn = models.CharField(max_length=1600)
    suspended_state = models.JSONField(default=dict, blank=True)
    tags = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # What the scaling controller last saw (the HPA's status: current metrics, when), for the pages.
    observed = models.JSONField(default=dict, blank=True)
    # The not-scaled reason last recorded, so that one is recorded once, not on every pass.
    not_scaled_code = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["resource_id"]
        constraints = [models.UniqueConstraint(fields=["account", "region", "resource_id"],
                                               name="scalable_target_unique_resource")]

    def __str__(self):
        return self.resource_id

    @property
    def arn(self):
        return f"arn:aws:application-autoscaling:{self.region}:{self.account.account_id}:scalable-target/{self.target_id}"

    def suspended(self, what):
        """Whether DynamicScalingInSuspended, DynamicScalingOutSuspended or ScheduledScalingSuspended is set."""
        return bool(self.suspended_state.get(what))


class ScalingPolicy(models.Model):
    """A target tracking or step scaling policy of a scalable target (an HPA's metrics and behavior)."""

    TARGET_TRACKING, STEP = "TargetTrackingScaling", "StepScaling"

    target = models.ForeignKey(ScalableTarget, on_delete=models.CASCADE, related_name="policies")
    name = models.CharField(max_length=256)
    policy_type = models.CharField(max_length=32)
    policy_id = models.CharField(max_length=36, default=new_uuid)
    # The configuration as the API shows it (TargetTrackingScalingPolicyConfiguration or
    # StepScalingPolicyConfiguration), defaults filled in.
    configuration = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)
    # When this policy last scaled out and in: its cooldowns count from these.
    scaled_out_at = models.DateTimeField(null=True, blank=True)
    scaled_in_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["target", "name"], name="scaling_policy_unique_name")]

    def __str__(self):
        return self.name

    @property
    def arn(self):
        target = self.target
        return (f"arn:aws:autoscaling:{target.region}:{target.account.account_id}:scalingPolicy:{self.policy_id}:"
                f"resource/ecs/{target.resource_id}:policyName/{self.name}")

    def alarm_names(self):
        """The CloudWatch alarms AWS makes for a target tracking policy (high: scale out, low: in)."""
        if self.policy_type != self.TARGET_TRACKING:
            return []
        base = f"TargetTracking-{self.target.resource_id}"
        names = [f"{base}-AlarmHigh-{self.policy_id}"]
        if not self.configuration.get("DisableScaleIn"):
            names.append(f"{base}-AlarmLow-{self.policy_id}")
        return names


class ScheduledAction(models.Model):
    """A scheduled change of a scalable target's min and max capacity (at, rate or cron)."""

    target = models.ForeignKey(ScalableTarget, on_delete=models.CASCADE, related_name="scheduled_actions")
    name = models.CharField(max_length=256)
    action_id = models.CharField(max_length=36, default=new_uuid)
    schedule = models.CharField(max_length=1600)
    time_zone = models.CharField(max_length=64, default="UTC")
    start_time = models.DateTimeField(null=True, blank=True)
    end_time = models.DateTimeField(null=True, blank=True)
    min_capacity = models.PositiveIntegerField(null=True, blank=True)
    max_capacity = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # The last time it ran (None: never): the controller runs each scheduled time once.
    last_run_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["target", "name"], name="scheduled_action_unique_name")]

    def __str__(self):
        return self.name

    @property
    def arn(self):
        target = self.target
        return (f"arn:aws:autoscaling:{target.region}:{target.account.account_id}:scheduledAction:{self.action_id}:"
                f"resource/ecs/{target.resource_id}:scheduledActionName/{self.name}")


class ScalingActivity(models.Model):
    """One decision of the scaling controller (DescribeScalingActivities): a scale, or why not."""

    SUCCESSFUL, FAILED, UNFULFILLED = "Successful", "Failed", "Unfulfilled"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="scaling_activities")
    region = models.CharField(max_length=32, default=region)
    resource_id = models.CharField(max_length=1600)
    target = models.ForeignKey(ScalableTarget, null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="activities")
    activity_id = models.CharField(max_length=36, default=new_uuid)
    description = models.TextField()
    cause = models.TextField()
    start_time = models.DateTimeField(default=timezone.now)
    end_time = models.DateTimeField(null=True, blank=True)
    status_code = models.CharField(max_length=16, default=SUCCESSFUL)
    status_message = models.TextField(blank=True)
    details = models.TextField(blank=True)
    # [{"Code": "AlreadyAtMaxCapacity", "MaxCapacity": …}] for a decision not to scale.
    not_scaled_reasons = models.JSONField(default=list, blank=True)
    trace_id = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-start_time", "-id"]
        indexes = [models.Index(fields=["account", "region", "resource_id"])]

    def __str__(self):
        return f"{self.resource_id}: {self.description}"


class ExpressGatewayService(models.Model):
    """An ECS Express Mode service: a Fargate service and the load balancer, target group and
    listener ECS built for it (orchestrator/frontend/express_gateway.py), with the configuration
    the caller gave (the model's ExpressGatewayServiceConfiguration, defaults filled in)."""

    service = models.OneToOneField(Service, on_delete=models.CASCADE, related_name="express_gateway")
    infrastructure_role_arn = models.CharField(max_length=2048)
    configuration = models.JSONField(default=dict)
    load_balancer = models.ForeignKey(LoadBalancer, null=True, on_delete=models.SET_NULL, related_name="+")
    target_group = models.ForeignKey(TargetGroup, null=True, on_delete=models.SET_NULL, related_name="+")
    port = models.PositiveIntegerField(default=0)
    configured_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"express {self.service_id}"
