"""Each ECS call beside the kubectl command that does the same job, and the call in the aws CLI's
words, from the safe part of its parameters."""
import json
import re
import shlex

from orchestrator.kubernetes.names import app_label, dns_label, family_revision, last_part, namespace_of, pod_template_name

# Parameters that may be kept from a request to show it again: names, counts, flags. Never
# environment, secrets, overrides or container definitions (they may hold secret values).
SAFE_PARAMS = (
    "cluster", "clusterName", "service", "serviceName", "taskDefinition", "family", "desiredCount",
    "count", "task", "tasks", "services", "clusters", "launchType", "forceNewDeployment", "force",
    "startedBy", "group", "desiredStatus", "status", "familyPrefix", "resourceArn", "cpu", "memory",
    "networkMode", "containerInstances",
)
_MAX_SAFE_STRING = 256
_MAX_SAFE_LIST = 10


def request_summary(params):
    """The safe part of an ECS request (see SAFE_PARAMS): short scalars and short lists of them."""
    summary = {}
    for name in SAFE_PARAMS:
        value = (params or {}).get(name) if isinstance(params, dict) else None
        if isinstance(value, bool) or isinstance(value, int):
            summary[name] = value
        elif isinstance(value, str):
            summary[name] = value[:_MAX_SAFE_STRING]
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            summary[name] = [v[:_MAX_SAFE_STRING] for v in value[:_MAX_SAFE_LIST]]
    return summary


def containers_of(container_definitions):
    """(name, image) of each container definition: what kubectl commands name, nothing else."""
    return [
        {"name": str(c.get("name", ""))[:255], "image": str(c.get("image", ""))[:1024]}
        for c in container_definitions or [] if isinstance(c, dict)
    ]


def _kebab(name):
    """An operation or parameter name as the aws CLI spells it: RunTask → run-task."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", name).lower()


def aws_cli_for(operation, params, service="ecs"):
    """The aws CLI form of a call, from its (safe) parameters: aws ecs update-service --cluster …"""
    words = ["aws", service, _kebab(operation)]
    for name, value in (params or {}).items():
        flag = "--" + _kebab(name)
        if isinstance(value, bool):
            words.append(flag if value else "--no-" + _kebab(name))
        elif isinstance(value, (int, str)):
            words += [flag, shlex.quote(str(value))]
        elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            words += [flag, *(shlex.quote(v) for v in value)]
        elif value:  # a structure (the console's full requests): as the JSON the CLI accepts
            words += [flag, shlex.quote(json.dumps(value, separators=(",", ":")))]
    return " ".join(words)


def _ns(params):
    return f"-n {shlex.quote(namespace_of(params.get('cluster') or params.get('clusterName')))}"


def _images(known, fallback):
    """--image flags for the containers of a task definition (a placeholder when unknown)."""
    containers = (known or {}).get("containers") or [{"name": fallback, "image": "<image>"}]
    return " ".join(f"--image={shlex.quote(c['image'])}" for c in containers)


def _deployment(params):
    return "deployment/" + app_label(last_part(params.get("service") or params.get("serviceName")))


def _run_task(params, known):
    family, _ = family_revision(params.get("taskDefinition"))
    count = params.get("count") or 1
    containers = (known or {}).get("containers") or []
    if count == 1 and len(containers) == 1:
        image = shlex.quote(containers[0]["image"])
        return f"kubectl run {app_label(family=family)} --image={image} --restart=Never {_ns(params)}"
    return f"kubectl apply -f pod.yaml {_ns(params)}" + (f"  # {count} Pods" if count > 1 else "")


def _stop_task(params, known):
    pod = (known or {}).get("pod") or last_part(params.get("task"))
    return f"kubectl delete pod {shlex.quote(pod)} {_ns(params)}"


def _describe_tasks(params, known):
    pod = (known or {}).get("pod")
    return f"kubectl get pod {shlex.quote(pod)} -o yaml {_ns(params)}" if pod else f"kubectl get pods -o yaml {_ns(params)}"


def _create_service(params, known):
    name = app_label(params.get("serviceName"))
    family, _ = family_revision(params.get("taskDefinition"))
    replicas = params.get("desiredCount")
    scale = f" --replicas={replicas}" if isinstance(replicas, int) else ""
    return f"kubectl create deployment {name} {_images(known, family)}{scale} {_ns(params)}"


def _update_service(params, known):
    commands = []
    if params.get("taskDefinition"):
        containers = (known or {}).get("containers") or []
        pairs = " ".join(f"{dns_label(c['name'])}={shlex.quote(c['image'])}" for c in containers)
        commands.append(f"kubectl set image {_deployment(params)} {pairs or '<container>=<image>'} {_ns(params)}")
    elif params.get("forceNewDeployment"):
        commands.append(f"kubectl rollout restart {_deployment(params)} {_ns(params)}")
    if isinstance(params.get("desiredCount"), int):
        commands.append(f"kubectl scale {_deployment(params)} --replicas={params['desiredCount']} {_ns(params)}")
    return " && ".join(commands) or f"kubectl apply -f deployment.yaml {_ns(params)}"


def _list_tasks(params, known):
    service = params.get("serviceName")
    selector = f" -l app={app_label(last_part(service))}" if service else ""
    return f"kubectl get pods{selector} {_ns(params)}"


def _template(params):
    family, revision = family_revision(params.get("taskDefinition") or params.get("family"))
    return pod_template_name(family, revision) if revision else f"-l app={app_label(family=family)}"


def _arn_name(arn):
    """The name in an ELBv2 ARN (…:targetgroup/web-tg/0123 → web-tg)."""
    parts = str(arn or "").split("/")
    return parts[-2] if len(parts) >= 3 else "<name>"


def _listener(params):
    """A listener forwarding to a target group: the Ingress's rule to its Service."""
    actions = params.get("DefaultActions") or [{}]
    group = actions[0].get("TargetGroupArn") if isinstance(actions[0], dict) else ""
    return (f"kubectl create ingress {dns_label(_arn_name(params.get('LoadBalancerArn')))} --class=alb"
            f" --rule='/*={dns_label(_arn_name(group))}:80'  # port {params.get('Port')}: the Ingress's listener")


_KUBECTL = {
    "CreateCluster": lambda p, k: f"kubectl create namespace {namespace_of(p.get('clusterName'))}",
    "DeleteCluster": lambda p, k: f"kubectl delete namespace {namespace_of(p.get('cluster'))}",
    "DescribeClusters": lambda p, k: "kubectl get namespace " + " ".join(namespace_of(c) for c in p.get("clusters") or ["default"]),
    "ListClusters": lambda p, k: "kubectl get namespaces",
    "RegisterTaskDefinition": lambda p, k: "kubectl apply -f podtemplate.yaml  # PodTemplate "
                                            + dns_label(p.get("family") or "task"),
    "DeregisterTaskDefinition": lambda p, k: f"kubectl delete podtemplate {_template(p)}",
    "DescribeTaskDefinition": lambda p, k: f"kubectl get podtemplate {_template(p)} -o yaml",
    "ListTaskDefinitions": lambda p, k: "kubectl get podtemplates",
    "ListTaskDefinitionFamilies": lambda p, k: "kubectl get podtemplates",
    "RunTask": _run_task,
    "StopTask": _stop_task,
    "DescribeTasks": _describe_tasks,
    "ListTasks": _list_tasks,
    "CreateService": _create_service,
    "UpdateService": _update_service,
    "DeleteService": lambda p, k: f"kubectl delete {_deployment(p)} {_ns(p)}",
    "DescribeServices": lambda p, k: "kubectl get deployment "
                                     + " ".join(app_label(last_part(s)) for s in p.get("services") or [])
                                     + f" -o yaml {_ns(p)}",
    "ListServices": lambda p, k: f"kubectl get deployments {_ns(p)}",
    "ListContainerInstances": lambda p, k: "kubectl get nodes",
    "DescribeContainerInstances": lambda p, k: "kubectl describe nodes",
    # ECR and ELBv2, the article's steps 1 and 4.
    "CreateRepository": lambda p, k: "docker push <registry>/" + str(p.get("repositoryName") or "<repository>")
                                      + ":<tag>  # any OCI registry; Kubernetes keeps none of its own",
    "CreateLoadBalancer": lambda p, k: f"kubectl create ingress {dns_label(p.get('Name') or 'lb')}"
                                        " --class=alb --rule='/*=<service>:80'  # an Ingress (or a Service type LoadBalancer)",
    "CreateTargetGroup": lambda p, k: f"kubectl create service clusterip {dns_label(p.get('Name') or 'tg')}"
                                       f" --tcp={p.get('Port') or 80}:{p.get('Port') or 80}  # its Endpoints are the targets",
    "CreateListener": lambda p, k: _listener(p),
    "TagResource": lambda p, k: "kubectl label …  # tags are labels",
    "UntagResource": lambda p, k: "kubectl label … key-  # tags are labels",
    "ListTagsForResource": lambda p, k: "kubectl get … --show-labels",
}


def kubectl_for(operation, params, known=None):
    """The kubectl command that does what an ECS call does ("" when Kubernetes has none).

    ``params`` are the call's safe parameters (``request_summary``); ``known`` may add what the
    lab looked up for it: the task definition's ``containers`` (name, image) and a task's ``pod``.
    """
    build = _KUBECTL.get(operation)
    return build(params or {}, known or {}) if build else ""
