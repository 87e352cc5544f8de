"""The dashboard's forms: each turns its fields into the parameters of one ECS operation.

Forms check only what they must to build the request (numbers are numbers, JSON parses); the
ECS frontend validates the rest, so the console shows the same errors as the API.
"""
import shlex

from django import forms

from orchestrator.frontend import wire

# Generous bounds: the frontend enforces the real limits and says so in ECS's words.
LONG_TEXT = 256 * 1024


class EcsForm(forms.Form):
    """A form whose ``params()`` are the request of ``operation``."""

    operation = ""

    def params(self, **context):
        raise NotImplementedError

    def add_ecs_error(self, error):
        """Show an EcsError the way the API reports it: type and message."""
        self.add_error(None, f"{error.error_type}: {error.message}")


class ClusterForm(EcsForm):
    operation = "CreateCluster"
    name = forms.CharField(label="Cluster name", max_length=LONG_TEXT, strip=True)

    def params(self):
        return {"clusterName": self.cleaned_data["name"]}


class DeleteClusterForm(EcsForm):
    operation = "DeleteCluster"

    def params(self, cluster):
        return {"cluster": cluster.name}


class RunTaskForm(EcsForm):
    operation = "RunTask"
    task_definition = forms.CharField(label="Task definition (family:revision)", max_length=LONG_TEXT)
    count = forms.IntegerField(initial=1)

    def params(self, cluster):
        return {
            "cluster": cluster.name,
            "taskDefinition": self.cleaned_data["task_definition"],
            "count": self.cleaned_data["count"],
            "launchType": "FARGATE",
            "startedBy": "dashboard",
        }


class StopTaskForm(EcsForm):
    operation = "StopTask"
    reason = forms.CharField(required=False, max_length=LONG_TEXT)

    def params(self, task):
        params = {"cluster": task.cluster.name, "task": task.arn}
        if self.cleaned_data["reason"]:
            params["reason"] = self.cleaned_data["reason"]
        return params


class ServiceForm(EcsForm):
    operation = "CreateService"
    name = forms.CharField(label="Service name", max_length=LONG_TEXT)
    task_definition = forms.CharField(label="Task definition (family:revision)", max_length=LONG_TEXT)
    desired_count = forms.IntegerField(label="Desired count", initial=1)

    def params(self, cluster):
        return {
            "cluster": cluster.name,
            "serviceName": self.cleaned_data["name"],
            "taskDefinition": self.cleaned_data["task_definition"],
            "desiredCount": self.cleaned_data["desired_count"],
            "launchType": "FARGATE",
        }


class ScaleServiceForm(EcsForm):
    operation = "UpdateService"
    desired_count = forms.IntegerField(label="Desired count")

    def params(self, service):
        return {
            "cluster": service.cluster.name,
            "service": service.name,
            "desiredCount": self.cleaned_data["desired_count"],
        }


class DeleteServiceForm(EcsForm):
    operation = "DeleteService"
    force = forms.BooleanField(required=False, label="Force (stop its tasks even if scaled above 0)")

    def params(self, service):
        return {"cluster": service.cluster.name, "service": service.name, "force": self.cleaned_data["force"]}


class TaskDefinitionForm(EcsForm):
    """A task definition from a few fields, or pasted as the JSON ECS accepts."""

    operation = "RegisterTaskDefinition"
    family = forms.CharField(required=False, max_length=LONG_TEXT)
    image = forms.CharField(required=False, max_length=LONG_TEXT)
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
