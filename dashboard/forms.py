"""The dashboard's forms: each turns its fields into the parameters of one ECS operation.

Forms check only what they must to build the request (numbers are numbers, JSON parses); the
ECS frontend validates the rest, so the console shows the same errors as the API.
"""
import re
import shlex

from django import forms

from orchestrator.frontend import wire
from orchestrator.frontend.network_configuration import DEFAULT_SUBNET

def _kebab(name):
    """CreateService → create-service."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", name).lower()


# Generous bounds: the frontend enforces the real limits and says so in ECS's words.
LONG_TEXT = 256 * 1024


class EcsForm(forms.Form):
    """A form whose ``params()`` are the request of ``operation`` of AWS service ``service``
    (ecs, ecr or elbv2: the name the aws CLI gives it)."""

    service = "ecs"
    operation = ""
    # Groups of fields shown under a legend each (the fields of no group come first).
    sections = ()
    # Field ids are "<id_prefix>-<field>" (e.g. create-service-desired_count): unique on a page
    # that holds several forms, and stable for the labs' instructions.
    id_prefix = ""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("auto_id", f"{self.id_prefix or _kebab(self.operation)}-%s")
        super().__init__(*args, **kwargs)

    @property
    def sectioned(self):
        return {name for _, names in self.sections for name in names}

    @property
    def section_fields(self):
        return [(legend, [self[name] for name in names]) for legend, names in self.sections]

    def params(self, **context):
        raise NotImplementedError

    def add_ecs_error(self, error):
        """Show an API error the way the API reports it: type and message."""
        self.add_api_error(error.error_type, error.message)

    def add_api_error(self, error_type, message):
        self.add_error(None, f"{error_type}: {message}")

    def example(self, **context):
        """The request this form sends as it stands: what was typed, a field left empty taking
        its initial value (or shown as <field>). For the aws and kubectl forms of it shown
        beside the form; never raises."""
        data = {}
        for name, field in self.fields.items():
            value = self.data.get(name) if self.is_bound else None
            if not self.is_bound or (value in (None, "") and not isinstance(field, forms.BooleanField)):
                value = self.initial.get(name, field.initial)
            if isinstance(field, forms.BooleanField):
                data[name] = "on" if value not in (None, "", False, "false", "off") else ""
            elif value in (None, "") and field.required and not isinstance(field, forms.IntegerField):
                data[name] = f"<{name.replace('_', '-')}>"
            elif value is not None:
                data[name] = str(value)
        copy = type(self)(data, **self.example_kwargs())
        try:
            return copy.params(**context) if copy.is_valid() else {}
        except Exception:  # a preview only: a request it cannot build shows no command
            return {}

    def example_kwargs(self):
        """The constructor arguments of a copy of this form (beyond its data)."""
        return {}


class ClusterForm(EcsForm):
    operation = "CreateCluster"
    name = forms.CharField(label="Cluster name", max_length=LONG_TEXT, strip=True)

    def params(self):
        return {"clusterName": self.cleaned_data["name"]}


class DeleteClusterForm(EcsForm):
    operation = "DeleteCluster"

    def params(self, cluster):
        return {"cluster": cluster.name}


class AwsvpcFields(forms.Form):
    """The awsvpc networkConfiguration of RunTask and CreateService: the subnets (the account's
    default one preselected, the others it knows offered by the page's ``subnets`` datalist),
    security groups and public IP."""

    subnets = forms.CharField(label="Subnets", initial=DEFAULT_SUBNET, max_length=LONG_TEXT, required=False,
                              widget=forms.TextInput(attrs={"list": "subnets", "autocomplete": "off"}),
                              help_text="Comma-separated; awsvpc needs one (each task gets its own address)")
    security_groups = forms.CharField(label="Security groups", required=False, max_length=LONG_TEXT,
                                      help_text="Comma-separated")
    assign_public_ip = forms.CharField(label="Assign public IP", initial="ENABLED", max_length=LONG_TEXT, required=False,
                                       widget=forms.Select(choices=[("ENABLED", "ENABLED"), ("DISABLED", "DISABLED")]))

    network_section = ("Networking (awsvpc)", ("subnets", "security_groups", "assign_public_ip"))

    def network_params(self):
        """{"networkConfiguration": …} as typed; {} with no subnet (ECS then refuses an awsvpc task)."""
        data = self.cleaned_data
        if not data["subnets"]:
            return {}
        network = {"subnets": _comma_list(data["subnets"])}
        if data["security_groups"]:
            network["securityGroups"] = _comma_list(data["security_groups"])
        if data["assign_public_ip"]:
            network["assignPublicIp"] = data["assign_public_ip"]
        return {"networkConfiguration": {"awsvpcConfiguration": network}}


class RunTaskForm(EcsForm, AwsvpcFields):
    operation = "RunTask"
    task_definition = forms.CharField(label="Task definition (family:revision)", max_length=LONG_TEXT,
                                      widget=forms.TextInput(attrs={"list": "task-definitions", "autocomplete": "off"}))
    count = forms.IntegerField(initial=1)

    sections = (AwsvpcFields.network_section,)

    def params(self, cluster):
        return {
            "cluster": cluster.name,
            "taskDefinition": self.cleaned_data["task_definition"],
            "count": self.cleaned_data["count"],
            "launchType": "FARGATE",
            "startedBy": "dashboard",
            **self.network_params(),
        }


class StopTaskForm(EcsForm):
    operation = "StopTask"
    reason = forms.CharField(required=False, max_length=LONG_TEXT)

    def params(self, task):
        params = {"cluster": task.cluster.name, "task": task.arn}
        if self.cleaned_data["reason"]:
            params["reason"] = self.cleaned_data["reason"]
        return params


def _comma_list(text):
    """"a, b" → ["a", "b"]."""
    return [part.strip() for part in (text or "").split(",") if part.strip()]


class ServiceForm(EcsForm, AwsvpcFields):
    """CreateService with what the article's step 5 sets: the task definition, the count, the
    load balancer, the network and the deployment's bounds and circuit breaker."""

    operation = "CreateService"
    name = forms.CharField(label="Service name", max_length=LONG_TEXT)
    task_definition = forms.CharField(label="Task definition (family:revision)", max_length=LONG_TEXT,
                                      widget=forms.Select)
    desired_count = forms.IntegerField(label="Desired count", initial=1)
    target_group = forms.CharField(label="Target group", required=False, max_length=LONG_TEXT, widget=forms.Select,
                                   help_text="Its listener's URL is the service's URL; none: no load balancer")
    container_name = forms.CharField(label="Container name", required=False, max_length=LONG_TEXT,
                                     help_text="The container the target group sends traffic to")
    container_port = forms.IntegerField(label="Container port", required=False)
    minimum_healthy_percent = forms.IntegerField(label="Minimum healthy percent", initial=100, required=False,
                                                 help_text="maxUnavailable's other side: tasks kept during a rollout")
    maximum_percent = forms.IntegerField(label="Maximum percent", initial=200, required=False,
                                         help_text="maxSurge's: tasks allowed during a rollout")
    circuit_breaker = forms.BooleanField(label="Deployment circuit breaker", required=False, initial=True,
                                         help_text="Stop a deployment whose tasks keep failing")
    rollback = forms.BooleanField(label="Roll back when it trips", required=False, initial=True)

    sections = (
        ("Load balancing", ("target_group", "container_name", "container_port")),
        AwsvpcFields.network_section,
        ("Deployment", ("minimum_healthy_percent", "maximum_percent", "circuit_breaker", "rollback")),
    )

    def __init__(self, *args, task_definitions=(), target_groups=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.choices = {"task_definitions": list(task_definitions), "target_groups": list(target_groups)}
        self.fields["task_definition"].widget.choices = [(td, td) for td in self.choices["task_definitions"]] or [
            ("", "(register a task definition first)")]
        self.fields["target_group"].widget.choices = [("", "(none)")] + [
            (tg.arn, f"{tg.name} (port {tg.port})") for tg in self.choices["target_groups"]]

    def example_kwargs(self):
        return {"task_definitions": self.choices["task_definitions"], "target_groups": self.choices["target_groups"]}

    def clean(self):
        data = super().clean()
        if data.get("target_group") and not self.errors:
            for name in ("container_name", "container_port"):
                if data.get(name) in (None, ""):
                    self.add_error(name, "Required with a target group.")
        return data

    def params(self, cluster):
        """The request; a setting left empty is left out, so ECS applies its default."""
        data = self.cleaned_data
        params = {
            "cluster": cluster.name,
            "serviceName": data["name"],
            "taskDefinition": data["task_definition"],
            "desiredCount": data["desired_count"],
            "launchType": "FARGATE",
            **self.network_params(),
        }
        deployment = {"deploymentCircuitBreaker": {"enable": data["circuit_breaker"], "rollback": data["rollback"]}}
        for name, field in (("minimumHealthyPercent", "minimum_healthy_percent"), ("maximumPercent", "maximum_percent")):
            if data[field] is not None:
                deployment[name] = data[field]
        params["deploymentConfiguration"] = deployment
        if data["target_group"]:
            params["loadBalancers"] = [{"targetGroupArn": data["target_group"], "containerName": data["container_name"],
                                        "containerPort": data["container_port"]}]
        return params


class ScaleServiceForm(EcsForm):
    operation, id_prefix = "UpdateService", "scale"
    desired_count = forms.IntegerField(label="Desired count")

    def params(self, service):
        return {
            "cluster": service.cluster.name,
            "service": service.name,
            "desiredCount": self.cleaned_data["desired_count"],
        }


class UpdateServiceForm(EcsForm):
    """A rolling update: to another revision, or the same one again (forceNewDeployment)."""

    operation, id_prefix = "UpdateService", "rollout"
    task_definition = forms.CharField(label="Task definition (family:revision)", max_length=LONG_TEXT,
                                      widget=forms.Select)
    force_new_deployment = forms.BooleanField(
        label="Force a new deployment", required=False,
        help_text="Replace every task even on the same revision (kubectl rollout restart)")

    def __init__(self, *args, task_definitions=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.task_definitions = list(task_definitions)
        self.fields["task_definition"].widget.choices = [(td, td) for td in self.task_definitions]

    def example_kwargs(self):
        return {"task_definitions": self.task_definitions}

    def params(self, service):
        params = {"cluster": service.cluster.name, "service": service.name,
                  "taskDefinition": self.cleaned_data["task_definition"]}
        if self.cleaned_data["force_new_deployment"]:
            params["forceNewDeployment"] = True
        return params


class DeleteServiceForm(EcsForm):
    operation = "DeleteService"
    force = forms.BooleanField(required=False, label="Force (stop its tasks even if scaled above 0)")

    def params(self, service):
        return {"cluster": service.cluster.name, "service": service.name, "force": self.cleaned_data["force"]}


class TaskDefinitionForm(EcsForm):
    """A task definition from a few fields, or pasted as the JSON ECS accepts."""

    operation = "RegisterTaskDefinition"
    family = forms.CharField(required=False, max_length=LONG_TEXT)
    image = forms.CharField(required=False, max_length=LONG_TEXT, help_text="Your registry's images and the engine's are suggested",
                            widget=forms.TextInput(attrs={"list": "image-suggestions", "autocomplete": "off"}))
    cpu = forms.CharField(required=False, initial="256", max_length=LONG_TEXT, label="CPU units")
    memory = forms.CharField(required=False, initial="512", max_length=LONG_TEXT, label="Memory (MiB)")
    port = forms.IntegerField(required=False, label="Container port")
    environment = forms.CharField(
        required=False, max_length=LONG_TEXT, widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One KEY=value per line",
    )
    command = forms.CharField(required=False, max_length=LONG_TEXT, help_text="As a shell would split it")
    json = forms.CharField(
        required=False, max_length=LONG_TEXT, label="…or paste the JSON",
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false"}),
        help_text="The body of aws ecs register-task-definition --cli-input-json; it wins over the fields.",
    )

    def clean_environment(self):
        pairs = []
        for line in self.cleaned_data["environment"].splitlines():
            if not line.strip():
                continue
            name, sep, value = line.partition("=")
            if not sep or not name.strip():
                raise forms.ValidationError(f"Not KEY=value: {line!r}")
            pairs.append({"name": name.strip(), "value": value})
        return pairs

    def clean_command(self):
        try:
            return shlex.split(self.cleaned_data["command"])
        except ValueError as exc:
            raise forms.ValidationError(f"Cannot split the command: {exc}")

    def clean_json(self):
        text = self.cleaned_data["json"].strip()
        if not text:
            return None
        try:
            return wire.json_object(text)
        except wire.Malformed as exc:
            raise forms.ValidationError(f"{exc} register-task-definition takes one JSON object.") from None

    def clean(self):
        data = super().clean()
        if not data.get("json") and not self.errors:
            for name in ("family", "image"):
                if not data.get(name):
                    self.add_error(name, "Required unless you paste the JSON.")
        return data

    def params(self):
        data = self.cleaned_data
        if data["json"] is not None:
            return data["json"]
        container = {"name": data["family"], "image": data["image"], "essential": True}
        if data["port"] is not None:
            container["portMappings"] = [{"containerPort": data["port"], "protocol": "tcp"}]
        if data["environment"]:
            container["environment"] = data["environment"]
        if data["command"]:
            container["command"] = data["command"]
        return {
            "family": data["family"],
            "requiresCompatibilities": ["FARGATE"],
            "networkMode": "awsvpc",
            "cpu": data["cpu"],
            "memory": data["memory"],
            "containerDefinitions": [container],
        }


# --- ECR (step 1) and ELBv2 (step 4): the same API code as their HTTP faces ---------------

class RepositoryForm(EcsForm):
    service, operation = "ecr", "CreateRepository"
    repository_name = forms.CharField(label="Repository name", max_length=LONG_TEXT,
                                      help_text="Lower case, digits, . _ - and / (e.g. web or team/web)")
    image_tag_mutability = forms.CharField(
        label="Tag mutability", initial="MUTABLE", max_length=LONG_TEXT,
        widget=forms.Select(choices=[("MUTABLE", "MUTABLE"), ("IMMUTABLE", "IMMUTABLE")]))

    def params(self):
        return {"repositoryName": self.cleaned_data["repository_name"],
                "imageTagMutability": self.cleaned_data["image_tag_mutability"]}


class LoadBalancerForm(EcsForm):
    service, operation = "elbv2", "CreateLoadBalancer"
    lb_name = forms.CharField(label="Load balancer name", max_length=LONG_TEXT)
    lb_subnets = forms.CharField(label="Subnets", initial="subnet-a, subnet-b", max_length=LONG_TEXT,
                                 help_text="Comma-separated; an ALB spans two or more")
    scheme = forms.CharField(label="Scheme", initial="internet-facing", max_length=LONG_TEXT, widget=forms.Select(
        choices=[("internet-facing", "internet-facing"), ("internal", "internal")]))

    def params(self):
        return {"Name": self.cleaned_data["lb_name"], "Subnets": _comma_list(self.cleaned_data["lb_subnets"]),
                "Scheme": self.cleaned_data["scheme"], "Type": "application"}


class TargetGroupForm(EcsForm):
    """CreateTargetGroup, then its deregistration delay (ModifyTargetGroupAttributes)."""

    service, operation = "elbv2", "CreateTargetGroup"
    tg_name = forms.CharField(label="Target group name", max_length=LONG_TEXT)
    tg_port = forms.IntegerField(label="Port", initial=80, help_text="The containers' port")
    target_type = forms.CharField(label="Target type", initial="ip", max_length=LONG_TEXT, widget=forms.Select(
        choices=[("ip", "ip (Fargate tasks: awsvpc)"), ("instance", "instance")]))
    health_check_path = forms.CharField(label="Health check path", initial="/", max_length=LONG_TEXT)
    health_check_interval = forms.IntegerField(label="Health check interval (s)", initial=30)
    healthy_threshold = forms.IntegerField(label="Healthy threshold", initial=5, help_text="Checks passed in a row")
    deregistration_delay = forms.IntegerField(label="Deregistration delay (s)", initial=300,
                                              help_text="How long a leaving task keeps its open connections")

    def params(self):
        data = self.cleaned_data
        return {"Name": data["tg_name"], "Protocol": "HTTP", "Port": data["tg_port"], "TargetType": data["target_type"],
                "VpcId": "vpc-fargatelab", "HealthCheckPath": data["health_check_path"],
                "HealthCheckIntervalSeconds": data["health_check_interval"],
                "HealthyThresholdCount": data["healthy_threshold"]}

    def attributes(self, target_group_arn):
        """The second call: ModifyTargetGroupAttributes with the deregistration delay."""
        return {"TargetGroupArn": target_group_arn, "Attributes": [
            {"Key": "deregistration_delay.timeout_seconds", "Value": str(self.cleaned_data["deregistration_delay"])}]}


class ListenerForm(EcsForm):
    service, operation = "elbv2", "CreateListener"
    load_balancer = forms.CharField(label="Load balancer", max_length=LONG_TEXT, widget=forms.Select)
    listener_port = forms.IntegerField(label="Listener port", initial=8080,
                                       help_text="Each listener of the lab needs a port of its own on this machine")
    forward_to = forms.CharField(label="Forward to target group", max_length=LONG_TEXT, widget=forms.Select)

    def __init__(self, *args, load_balancers=(), target_groups=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.load_balancers, self.target_groups = list(load_balancers), list(target_groups)
        self.fields["load_balancer"].widget.choices = [(lb.arn, lb.name) for lb in self.load_balancers]
        self.fields["forward_to"].widget.choices = [(tg.arn, tg.name) for tg in self.target_groups]

    def example_kwargs(self):
        return {"load_balancers": self.load_balancers, "target_groups": self.target_groups}

    def params(self):
        data = self.cleaned_data
        return {"LoadBalancerArn": data["load_balancer"], "Protocol": "HTTP", "Port": data["listener_port"],
                "DefaultActions": [{"Type": "forward", "TargetGroupArn": data["forward_to"]}]}
