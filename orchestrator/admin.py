"""The state database in the Django admin, for inspection and repair."""
from django.contrib import admin

from orchestrator import models, quotas


@admin.register(models.Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ("account_id", "name", "created_at")
    filter_horizontal = ("members",)
    fieldsets = (
        (None, {"fields": ("account_id", "name", "created_at", "members")}),
        ("Service quotas", {
            "description": "Empty: the lab's default (AWS's for the default account, the classroom's for the others).",
            "fields": tuple(quota.field for quota in quotas.QUOTAS),
        }),
    )


@admin.register(models.AccessKey)
class AccessKeyAdmin(admin.ModelAdmin):
    list_display = ("access_key_id", "account", "active", "created_at")
    list_filter = ("active",)


@admin.register(models.Cluster)
class ClusterAdmin(admin.ModelAdmin):
    list_display = ("name", "account", "status", "created_at")
    list_filter = ("status",)
    search_fields = ("name",)


@admin.register(models.TaskDefinition)
class TaskDefinitionAdmin(admin.ModelAdmin):
    list_display = ("family", "revision", "status", "cpu", "memory", "registered_at")
    list_filter = ("status",)
    search_fields = ("family",)


class TaskContainerInline(admin.TabularInline):
    model = models.TaskContainer
    extra = 0


@admin.register(models.Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ("task_id", "cluster", "group", "desired_status", "last_status", "container_instance", "created_at")
    list_filter = ("last_status", "desired_status", "cluster")
    search_fields = ("task_id", "group", "started_by")
    inlines = [TaskContainerInline]


class ServiceEventInline(admin.TabularInline):
    model = models.ServiceEvent
    extra = 0
    fields = ("created_at", "message")
    readonly_fields = ("created_at", "message")


class DeploymentInline(admin.TabularInline):
    model = models.Deployment
    extra = 0


@admin.register(models.Service)
class ServiceAdmin(admin.ModelAdmin):
    list_display = ("name", "cluster", "status", "desired_count", "running_count", "pending_count", "task_definition")
    list_filter = ("status", "cluster")
    search_fields = ("name",)
    inlines = [DeploymentInline, ServiceEventInline]


@admin.register(models.ContainerInstance)
class ContainerInstanceAdmin(admin.ModelAdmin):
    list_display = ("name", "instance_id", "engine_url", "status", "cpu_registered", "memory_registered", "agent_connected")
    list_filter = ("status",)


@admin.register(models.Lease)
class LeaseAdmin(admin.ModelAdmin):
    list_display = ("name", "holder", "renewed_at", "expires_at")


@admin.register(models.Activity)
class ActivityAdmin(admin.ModelAdmin):
    list_display = ("created_at", "component", "action", "object_arn", "trace_id", "duration_ms", "status_code",
                    "latency_ms")
    list_filter = ("component", "action")
    search_fields = ("object_arn", "trace_id", "message")


@admin.register(models.Trace)
class TraceAdmin(admin.ModelAdmin):
    list_display = ("started_at", "trace_id", "account", "component", "action", "object_arn")
    list_filter = ("component",)
    search_fields = ("trace_id", "object_arn")


@admin.register(models.ReconcilePass)
class ReconcilePassAdmin(admin.ModelAdmin):
    list_display = ("started_at", "service", "summary", "repeats", "duration_ms", "trace_id")
    search_fields = ("summary", "trace_id")


# --- Elastic Load Balancing and ECR --------------------------------------------------------


class ListenerInline(admin.TabularInline):
    model = models.Listener
    extra = 0
    fields = ("port", "protocol", "default_actions", "bind_error")


@admin.register(models.LoadBalancer)
class LoadBalancerAdmin(admin.ModelAdmin):
    list_display = ("name", "account", "dns_name", "state", "scheme", "created_at")
    list_filter = ("state",)
    search_fields = ("name", "lb_id")
    inlines = [ListenerInline]


@admin.register(models.Listener)
class ListenerAdmin(admin.ModelAdmin):
    list_display = ("listener_id", "load_balancer", "port", "protocol", "bind_error")
    search_fields = ("listener_id", "load_balancer__name")


class TargetInline(admin.TabularInline):
    model = models.Target
    extra = 0
    fields = ("target_id", "port", "address", "connect_port", "task", "state", "reason", "drain_until")
    raw_id_fields = ("task",)


@admin.register(models.TargetGroup)
class TargetGroupAdmin(admin.ModelAdmin):
    list_display = ("name", "account", "target_type", "port", "health_check_path", "health_check_interval",
                    "deregistration_delay")
    search_fields = ("name", "tg_id")
    inlines = [TargetInline]


@admin.register(models.Target)
class TargetAdmin(admin.ModelAdmin):
    list_display = ("target_id", "port", "target_group", "task", "state", "reason", "updated_at")
    list_filter = ("state", "target_group")
    search_fields = ("target_id", "task__task_id")
    raw_id_fields = ("task",)


@admin.register(models.Repository)
class RepositoryAdmin(admin.ModelAdmin):
    list_display = ("name", "account", "image_tag_mutability", "created_at")
    search_fields = ("name",)


# --- Parameter Store and Secrets Manager: names, types and dates, never a value --------------


class ParameterVersionInline(admin.TabularInline):
    model = models.ParameterVersion
    extra = 0
    fields = ("version", "type", "modified_at", "modified_user")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False  # a value is put through the API, never typed where a page shows it


@admin.register(models.Parameter)
class ParameterAdmin(admin.ModelAdmin):
    list_display = ("name", "account", "region", "type", "version", "last_modified_at")
    list_filter = ("type", "region")
    search_fields = ("name",)
    inlines = [ParameterVersionInline]


class SecretVersionInline(admin.TabularInline):
    model = models.SecretVersion
    extra = 0
    fields = ("version_id", "stages", "created_at")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False  # a value is put through the API, never typed where a page shows it


@admin.register(models.Secret)
class SecretAdmin(admin.ModelAdmin):
    list_display = ("name", "account", "region", "suffix", "deletion_date", "last_changed_at")
    list_filter = ("region",)
    search_fields = ("name",)
    inlines = [SecretVersionInline]


class LogStreamInline(admin.TabularInline):
    model = models.LogStream
    fields = ("name", "created_at", "last_event_at", "stored_bytes")
    readonly_fields = fields
    extra = 0
    show_change_link = False


@admin.register(models.LogGroup)
class LogGroupAdmin(admin.ModelAdmin):
    """CloudWatch Logs groups: retention and size can be repaired here; events are read with the API."""

    list_display = ("name", "account", "region", "retention_in_days", "stored_bytes", "created_at")
    search_fields = ("name",)
    readonly_fields = ("stored_bytes",)
    inlines = [LogStreamInline]


class ScalingPolicyInline(admin.TabularInline):
    model = models.ScalingPolicy
    fields = ("name", "policy_type", "configuration", "scaled_out_at", "scaled_in_at")
    readonly_fields = ("scaled_out_at", "scaled_in_at")
    extra = 0


class ScheduledActionInline(admin.TabularInline):
    model = models.ScheduledAction
    fields = ("name", "schedule", "time_zone", "min_capacity", "max_capacity", "last_run_at")
    extra = 0


@admin.register(models.ScalableTarget)
class ScalableTargetAdmin(admin.ModelAdmin):
    """Application Auto Scaling's targets: min and max capacity and the suspended state can be repaired here."""

    list_display = ("resource_id", "account", "region", "min_capacity", "max_capacity", "created_at")
    search_fields = ("resource_id",)
    readonly_fields = ("observed", "not_scaled_code")
    inlines = [ScalingPolicyInline, ScheduledActionInline]


@admin.register(models.ScalingActivity)
class ScalingActivityAdmin(admin.ModelAdmin):
    list_display = ("resource_id", "account", "description", "status_code", "start_time")
    list_filter = ("status_code",)
    search_fields = ("resource_id", "description", "cause")
