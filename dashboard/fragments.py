"""The live fragments: every piece of a page that changes by push, rendered from one place.

A page includes a fragment with ``{% fragment "name" key %}``; the WebSocket consumer renders
the very same fragment with ``oob=True`` (the root element then carries ``hx-swap-oob``) when
the bus says its objects changed. Each fragment's root element has the stable id
``dom_id(name, key)`` so htmx swaps it in place.
"""
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from dashboard import diagram, rollouts, state, twins
from orchestrator.models import acting_in, region

log = logging.getLogger(__name__)
_registry = {}
# Fragments whose root element is a table row: their placeholder must be one too.
_ROW_FRAGMENTS = {"task-row": 10}


@dataclass(frozen=True)
class Fragment:
    """A template and the function that builds its context from a key (a pk or None).

    A ``viewed`` fragment is shared by every user but names only the ids its viewer may see
    (their account's; all for staff): it is rendered per viewer, with a ``Viewed`` key."""

    name: str
    template: str
    context: Callable
    viewed: bool = False


@dataclass(frozen=True)
class Viewed:
    """The key of a viewed fragment: the object's key (or None) and the viewer (``state.ALL``
    or an account pk), which decides whose ids it names. The DOM id ignores the viewer."""

    key: object
    viewer: object


def fragment(name, template, viewed=False):
    """Register ``func(key) -> dict`` as the context builder of fragment ``name``."""

    def register(func):
        _registry[name] = Fragment(name, template, func, viewed)
        return func

    return register


def is_viewed(name):
    """Whether fragment ``name`` is rendered per viewer."""
    return _registry[name].viewed


def dom_id(name, key=None):
    """The stable DOM id of a fragment: its name, and its key when it has one."""
    if isinstance(key, Viewed):
        key = key.key
    return name if key is None else f"{name}-{key}"


def render(name, key=None, *, oob=False):
    """Render fragment ``name`` for ``key`` to HTML; None when its object no longer exists.

    A fragment that fails (malformed data written around the API's checks, a bug) renders a
    placeholder with the same id: the page and its WebSocket live on, the next push retries."""
    spec = _registry[name]
    if spec.viewed and not isinstance(key, Viewed):  # no viewer given (a tool, a test): as staff see it
        key = Viewed(key, state.ALL)
    try:
        context = spec.context(key)
        if context is None:
            return None
        context.update(dom_id=dom_id(name, key), oob=oob, fragment_key=key)
        return render_to_string(spec.template, context)
    except Exception as exc:
        log_failure(f"fragment {name} ({key}) failed to render", exc)
        return _unshowable(name, key, oob)


_logged = set()


def log_failure(what, exc):
    """Log a render failure with its traceback once per process and kind; pushes re-render a
    bad row on every change, and a traceback each time would flood the log (as in issue 10)."""
    signature = (what, type(exc).__name__, str(exc)[:200])
    if signature in _logged:
        log.debug("%s again: %s", what, exc)
        return
    if len(_logged) < 10_000:
        _logged.add(signature)
    log.error("%s", what, exc_info=exc)


def _unshowable(name, key, oob):
    """The placeholder of a fragment that could not be rendered."""
    message = "This part could not be shown (the error is in the lab's log)."
    swap = mark_safe(' hx-swap-oob="true"' if oob else "")
    if name in _ROW_FRAGMENTS:
        return format_html('<tr id="{}"{} class="unshowable"><td colspan="{}" class="status-bad">{}</td></tr>',
                           dom_id(name, key), swap, _ROW_FRAGMENTS[name], message)
    return format_html('<div id="{}"{} class="unshowable status-bad">{}</div>', dom_id(name, key), swap, message)


class RenderCache:
    """Renders shared by every consumer of one process for one broadcast (``seq``).

    Fifty open pages hear the same change; the first consumer renders, the others reuse it.
    """

    def __init__(self, size=512):
        self.size = size
        self.entries = OrderedDict()
        self.lock = threading.Lock()

    def render(self, name, key, seq):
        """The out-of-band HTML of fragment ``name``/``key`` as of broadcast ``seq`` (None: uncached),
        in the region the caller acts in (pages of two regions never share a render)."""
        if seq is None:
            return render(name, key, oob=True)
        cache_key = (name, key, seq, region())
        with self.lock:
            if cache_key in self.entries:
                return self.entries[cache_key]
        html = render(name, key, oob=True)
        with self.lock:
            self.entries[cache_key] = html
            while len(self.entries) > self.size:
                self.entries.popitem(last=False)
        return html


cache = RenderCache()


# --- The component map's cards -----------------------------------------------------------

@fragment("card-frontend", "dashboard/cards/frontend.html", viewed=True)
def _card_frontend(key):
    return state.frontend_card(key.viewer)


@fragment("card-statedb", "dashboard/cards/statedb.html", viewed=True)
def _card_statedb(key):
    return state.statedb_card(key.viewer)


@fragment("card-cluster-manager", "dashboard/cards/cluster_manager.html", viewed=True)
def _card_cluster_manager(key):
    return state.cluster_manager_card(key.viewer)


@fragment("card-capacity-manager", "dashboard/cards/capacity_manager.html", viewed=True)
def _card_capacity_manager(key):
    return state.capacity_manager_card(key.viewer)


@fragment("card-agents", "dashboard/cards/agents.html", viewed=True)
def _card_agents(key):
    return state.agents_card(key.viewer)


@fragment("card-docker", "dashboard/cards/docker.html", viewed=True)
def _card_docker(key):
    return state.docker_card(key.viewer)


@fragment("card-alb", "dashboard/cards/alb.html", viewed=True)
def _card_alb(key):
    return state.alb_card(key.viewer)


@fragment("card-ecr", "dashboard/cards/ecr.html", viewed=True)
def _card_ecr(key):
    return state.ecr_card(key.viewer)


# --- The map as a diagram: one box per component, and the events that animate it -------

def _box(node_id, figures):
    return {**figures, "node": diagram.NODES[node_id]}


@fragment("box-frontend", "dashboard/diagram/frontend.html")
def _box_frontend(key):
    return _box("frontend", state.frontend_box())


@fragment("box-statedb", "dashboard/diagram/statedb.html", viewed=True)
def _box_statedb(key):
    return _box("statedb", state.statedb_box(key.viewer))


@fragment("box-cluster-manager", "dashboard/diagram/cluster_manager.html")
def _box_cluster_manager(key):
    return _box("cluster_manager", state.cluster_manager_box())


@fragment("box-capacity-manager", "dashboard/diagram/capacity_manager.html")
def _box_capacity_manager(key):
    return _box("capacity_manager", state.capacity_manager_box())


@fragment("box-fleet", "dashboard/diagram/fleet.html", viewed=True)
def _box_fleet(key):
    """The instances with their agents; the chips name the viewer's own tasks only."""
    return {**_box("agent", state.fleet_box(key.viewer)), "task_path": _task_path()}


def _task_path():
    """The task pages' path before the id ("/tasks/"): reversed once, not once per chip."""
    return reverse("dashboard:task", args=["0"])[:-len("0/")]


@fragment("box-docker", "dashboard/diagram/docker.html")
def _box_docker(key):
    return _box("docker", state.docker_box())


@fragment("box-alb", "dashboard/diagram/alb.html")
def _box_alb(key):
    return _box("load_balancer", state.alb_box())


@fragment("box-ecr", "dashboard/diagram/ecr.html")
def _box_ecr(key):
    return _box("registry", state.ecr_box())


@fragment("map-events", "dashboard/diagram/events.html")
def _map_events(key):
    """New events appended to the map's event list; ``key`` is (viewer, activity pks)."""
    viewer, pks = key
    events = state.events_of(pks, viewer)
    return {"events": events} if events else None


# --- Object pages ------------------------------------------------------------------------

@fragment("cluster-list", "dashboard/fragments/cluster_list.html")
def _cluster_list(key):
    """The clusters of account ``key`` (a user sees the account they act as)."""
    return {"clusters": state.clusters(account_pk=key)}


@fragment("cluster-summary", "dashboard/fragments/cluster_summary.html")
def _cluster_summary(key):
    cluster = state.cluster_or_none(key)
    return None if cluster is None else {"cluster": cluster, "counts": state.cluster_counts(cluster)}


@fragment("cluster-services", "dashboard/fragments/service_table.html")
def _cluster_services(key):
    cluster = state.cluster_or_none(key)
    return None if cluster is None else {"services": state.services_of(cluster)}


@fragment("cluster-tasks", "dashboard/fragments/task_table.html")
def _cluster_tasks(key):
    cluster = state.cluster_or_none(key)
    if cluster is None:
        return None
    tasks, more = state.tasks_of(cluster=cluster)
    return {"tasks": tasks, "more": more, "all_url": reverse("dashboard:cluster_tasks", args=[cluster.name])}


@fragment("task-row", "dashboard/fragments/task_row.html")
def _task_row(key):
    task = state.task_row_or_none(key)
    return None if task is None else {"task": task}


@fragment("service-summary", "dashboard/fragments/service_summary.html")
def _service_summary(key):
    service = state.service_or_none(key)
    if service is None:
        return None
    return {"service": service, "plot": state.running_plot(service), "deployments": service.deployments.all()[:5],
            "ready": state.ready_replicas(service)}


@fragment("service-rollout", "dashboard/fragments/service_rollout.html")
def _service_rollout(key):
    service = state.service_or_none(key)
    if service is not None and service.deployment_controller == "EXTERNAL":
        return {"external": True}  # its task sets are the service-task-sets fragment's
    return None if service is None else rollouts.rollout(service)


@fragment("service-task-sets", "dashboard/fragments/service_task_sets.html")
def _service_task_sets(key):
    service = state.service_or_none(key)
    if service is None:
        return None
    external = service.deployment_controller == "EXTERNAL"
    return {"service": service, "external": external, "rows": rollouts.task_sets(service) if external else []}


@fragment("fleet-history", "dashboard/fragments/fleet_history.html")
def _fleet_history(key):
    return rollouts.fleet_history()


@fragment("service-events", "dashboard/fragments/service_events.html")
def _service_events(key):
    service = state.service_or_none(key)
    return None if service is None else {"events": service.events.all()[:20]}


@fragment("service-tasks", "dashboard/fragments/task_table.html")
def _service_tasks(key):
    service = state.service_or_none(key)
    if service is None:
        return None
    tasks, more = state.tasks_of(service=service)
    return {"tasks": tasks, "more": more, "all_url": reverse("dashboard:service_tasks", args=[service.pk])}


@fragment("task", "dashboard/fragments/task_detail.html")
def _task(key):
    task = state.task_or_none(key)
    if task is None:
        return None
    return {"task": task, "timeline": state.timeline(task), "containers": state.containers_of(task)}


@fragment("taskdef-list", "dashboard/fragments/taskdef_list.html")
def _taskdef_list(key):
    """The task definition families of account ``key``."""
    return {"families": state.families(account_pk=key)}


@fragment("instance-list", "dashboard/fragments/instance_list.html", viewed=True)
def _instance_list(key):
    return {"instances": state.instances(viewer=key.viewer)}


@fragment("instance", "dashboard/fragments/instance_detail.html", viewed=True)
def _instance(key):
    instance = state.instance_or_none(key.key)
    return None if instance is None else {"instance": state.instance_usage(instance, key.viewer)}


@fragment("task-pull-targets", "dashboard/fragments/task_pull_targets.html")
def _task_pull_targets(key):
    task = state.task_or_none(key)
    return None if task is None else {"task": task, **state.task_pull_and_targets(task)}


@fragment("service-load-balancing", "dashboard/fragments/service_load_balancing.html")
def _service_load_balancing(key):
    service = state.service_or_none(key)
    return None if service is None else {"service": service, "rows": state.service_load_balancing(service)}


@fragment("service-autoscaling", "dashboard/fragments/service_autoscaling.html")
def _service_autoscaling(key):
    service = state.service_or_none(key)
    return None if service is None else {"service": service, **state.service_autoscaling(service)}


@fragment("service-discovery", "dashboard/fragments/service_discovery.html")
def _service_discovery(key):
    service = state.service_or_none(key)
    return None if service is None else {"service": service, "rows": state.service_discovery(service)}


# --- Kubernetes twins: each object's manifest as YAML ---------------------------------------

@fragment("task-twin", "dashboard/fragments/manifest.html")
def _task_twin(key):
    task = state.task_or_none(key)
    return None if task is None else twins.task_twin(task)


@fragment("service-twin", "dashboard/fragments/manifest.html")
def _service_twin(key):
    service = state.service_or_none(key)
    return None if service is None else twins.service_twin(service)


@fragment("cluster-twin", "dashboard/fragments/manifest.html")
def _cluster_twin(key):
    cluster = state.cluster_or_none(key)
    return None if cluster is None else twins.cluster_twin(cluster)


@fragment("instance-twin", "dashboard/fragments/manifest.html")
def _instance_twin(key):
    instance = state.instance_or_none(key)
    return None if instance is None else twins.instance_twin(state.instance_usage(instance))


@fragment("task-traces", "dashboard/fragments/task_traces.html")
def _task_traces(key):
    task = state.task_or_none(key)
    return None if task is None else {"task": task, **state.task_traces_and_placement(task)}


@fragment("service-passes", "dashboard/fragments/service_passes.html")
def _service_passes(key):
    service = state.service_or_none(key)
    return None if service is None else {"service": service, "passes": state.reconcile_passes(service)}


# --- Steps 1 and 4 of the article: repositories and load balancers -------------------------

@fragment("repository-list", "dashboard/fragments/repository_list.html")
def _repository_list(key):
    """The repositories of account ``key`` with their images."""
    return {"repositories": state.repositories(key)}


@fragment("repository-images", "dashboard/fragments/repository_images.html")
def _repository_images(key):
    """One repository's images, tags and digests (``key``: its pk)."""
    from orchestrator.models import Repository

    repository = Repository.objects.select_related("account").filter(pk=key).first()
    if repository is None:
        return None
    with acting_in(repository.region):  # its images, through its own region's ECR API
        return {"repository": repository, **state.repository_images(repository.account, repository.name)}


@fragment("elb-list", "dashboard/fragments/elb_list.html")
def _elb_list(key):
    """The load balancers and target groups of account ``key``."""
    return state.load_balancing(key)
