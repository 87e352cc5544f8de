"""Template helpers: live fragments, Kubernetes names, status colours, short ids."""
from django import template
from django.utils.safestring import mark_safe

from dashboard import fragments, state

register = template.Library()

# The Kubernetes name of each ECS object, shown beside it on every page.
KUBERNETES_NAMES = {
    "task": "Pod",
    "service": "Deployment",
    "cluster": "cluster / namespace",
    "task_definition": "Pod spec (PodTemplate)",
    "instance": "Node",
    "deployment": "ReplicaSet",
    "container": "container",
}

_STATUS_CLASS = {
    "RUNNING": "ok", "ACTIVE": "ok", "PRIMARY": "ok", "COMPLETED": "ok", "HEALTHY": "ok",
    "PROVISIONING": "wait", "PENDING": "wait", "ACTIVATING": "wait", "IN_PROGRESS": "wait",
    "DEACTIVATING": "going", "STOPPING": "going", "DEPROVISIONING": "going", "DRAINING": "going",
    "STOPPED": "done", "INACTIVE": "done", "FAILED": "bad", "UNHEALTHY": "bad",
}


@register.simple_tag
def fragment(name, key=None):
    """Include live fragment ``name`` (the same HTML the WebSocket pushes later)."""
    return mark_safe(fragments.render(name, key) or "")


@register.filter
def k8s(kind):
    """The Kubernetes counterpart of an ECS object kind ("task" → "Pod")."""
    return KUBERNETES_NAMES.get(kind, "")


@register.filter
def status_class(status):
    """A CSS class for a lifecycle or status value (ok / wait / going / done / bad)."""
    return "status-" + _STATUS_CLASS.get(str(status).upper(), "other")


@register.filter
def short_id(value):
    """The first 8 characters of a long id, as the console shows it."""
    return str(value)[:8]


@register.filter
def published_urls(container):
    """Links to a container's published ports."""
    return state.published_urls(container)


@register.filter
def seconds_ago(seconds):
    """A short age: "0.4 s", "12 s", "3 min"."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"
