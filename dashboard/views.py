"""Dashboard pages and the actions of its forms.

Pages are thin: they find the object and render a template made of live fragments. Every
action goes through ``orchestrator.frontend.call`` with the user's account, as the API does;
a failed action re-renders its page with the ECS error in the form (status 400).
"""
import json
import logging
import time
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.staticfiles.views import serve
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from dashboard import forms, twins
from orchestrator import activity, spot, traces
from orchestrator.frontend import EcsError, network_configuration
from orchestrator.frontend.deleted_task_definitions import present
from orchestrator.models import Account, Cluster, ContainerInstance, Service, Task, TaskDefinition, region

log = logging.getLogger(__name__)


def account_for(user):
    """The AWS account a dashboard user acts as (``Account.members``; else the default one)."""
    return Account.of_user(user)


def _call_api(form, operation, account, params, caller, trace_id):
    """Run the form's operation through its service's own API code; raises EcsError, EcrError
    or ElbError as the HTTP API would answer."""
    if form.service == "ecr":
        from orchestrator import registry

        return registry.call(account, operation, params)
    if form.service == "elbv2":
        from orchestrator.elbv2.views import call

        return call(account, operation, params, caller=caller)
    from orchestrator import frontend

    return frontend.call(account, operation, params, caller=caller, trace_id=trace_id)


# The component that answers each service's calls (where they show on the map and in traces).
CALL_COMPONENTS = {"ecs": "frontend", "ecr": "registry", "elbv2": "load_balancer"}


def run_ecs(request, form, params=None, operation=None, **context):
    """Run the form's operation as the user, as the API would; the response, or None with the
    error in the form. The call is logged for the map like an API call of its service.
    ``operation`` and ``params`` name a call of its own (a form that makes two)."""
    from orchestrator.elbv2.protocol import ElbError
    from orchestrator.registry import EcrError

    operation = operation or form.operation
    started, started_at, trace_id = time.perf_counter(), timezone.now(), traces.new_trace_id()
    caller = f"console:{request.user.get_username()}"
    response, status, message = None, 200, f"{operation} → 200 (console)"
    account = account_for(request.user)
    params = form.params(**context) if params is None else params
    try:
        with traces.continuing(trace_id):
            response = _call_api(form, operation, account, params, caller, trace_id)
    except (EcsError, EcrError) as error:
        form.add_ecs_error(error)
        status, message = error.status, f"{operation} → {error.status} {error.error_type}: {error.message}"
    except ElbError as error:
        form.add_api_error(error.code, error.message)
        status, message = error.status, f"{operation} → {error.status} {error.code}: {error.message}"
    except ImportError:  # the frontend's operations are not installed in this build
        log.exception("ECS frontend unavailable")
        form.add_error(None, "ServerException: the ECS frontend is not available in this lab.")
        status, message = 503, f"{operation} → 503 frontend unavailable"
    component = CALL_COMPONENTS[form.service]
    fields = {"request": activity.api_request(account, operation, params)} if form.service == "ecs" else {}
    traces.record_call(component, operation if component == "frontend" else f"api.{operation}", trace_id,
                       account, started_at, (time.perf_counter() - started) * 1000, _object_arn(response), message,
                       caller=caller, status_code=status, **fields)
    return response


def _commands(request, form, **context):
    """The aws and kubectl forms of what ``form`` sends, for ``_commands.html``."""
    from dashboard import commands

    endpoint = request.build_absolute_uri("/").rstrip("/")
    return {**commands.for_form(form, account_for(request.user), endpoint, **context),
            "id": f"{form.id_prefix or forms._kebab(form.operation)}-commands"}


PREVIEW_HEADER = "X-Commands-Preview"


def _preview(request, form, **context):
    """For a form's live preview as one types (``_form.html`` posts it with PREVIEW_HEADER): its
    aws and kubectl commands alone, rendered from what was typed; nothing runs. None otherwise."""
    if not request.headers.get(PREVIEW_HEADER):
        return None
    return render(request, "dashboard/_commands.html", {"commands": _commands(request, form, **context)})


def _object_arn(response):
    """The ARN of the first object an ECS, ECR or ELBv2 response names ("" when none)."""
    for value in (response or {}).values():
        value = value[0] if isinstance(value, list) and value else value
        if isinstance(value, dict):
            for field in ("taskArn", "serviceArn", "taskDefinitionArn", "clusterArn", "repositoryArn",
                          "LoadBalancerArn", "TargetGroupArn", "ListenerArn"):
                if isinstance(value.get(field), str):
                    return value[field][:512]
    return ""


def _cluster(request, name):
    """The user's cluster ``name``, or 404."""
    return get_object_or_404(Cluster.objects.select_related("account"), account=account_for(request.user),
                             region=region(), name=name)


def _service(request, pk):
    """The user's service ``pk`` (in the region shown), or 404."""
    return get_object_or_404(
        Service.objects.select_related("account", "cluster", "task_definition"),
        account=account_for(request.user), cluster__region=region(), pk=pk,
    )


def _task(request, task_id):
    """The user's task ``task_id`` (in the region shown), or 404."""
    return get_object_or_404(
        Task.objects.select_related("account", "cluster", "task_definition", "service", "container_instance"),
        account=account_for(request.user), cluster__region=region(), task_id=task_id,
    )


def _task_definitions(request):
    """The user's ACTIVE task definitions of the region shown."""
    return TaskDefinition.objects.filter(account=account_for(request.user), region=region(),
                                         status=TaskDefinition.ACTIVE)


def _submit(request, form_class, **context):
    """Bind ``form_class`` to the POST and, if valid, run its ECS operation on ``context``:
    (form, the response or a falsy value with the error in the form)."""
    form = form_class(request.POST)
    return form, form.is_valid() and run_ecs(request, form, **context)


# --- The component map -------------------------------------------------------------------

@login_required
@require_safe
def home(request):
    """The component map: the article's architecture as a live diagram (``?replay=<trace id>``
    plays a trace on it), and each component's card below."""
    from dashboard import diagram, state

    viewer = state.viewer_of(request.user)
    return render(request, "dashboard/map.html", {
        "live": "/ws/map/", "viewer": viewer, "nodes": diagram.NODES, "arrows": diagram.ARROWS,
        "width": diagram.WIDTH, "height": diagram.HEIGHT, "flow": diagram.flow_table(),
        "events": state.recent_events(viewer), "replay": request.GET.get("replay", "")[:64],
    })


# --- Clusters ----------------------------------------------------------------------------

@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def clusters(request):
    """The cluster list, and CreateCluster."""
    form = forms.ClusterForm(request.POST if request.method == "POST" else None)
    if request.method == "POST":
        if preview := _preview(request, form):
            return preview
        if form.is_valid() and run_ecs(request, form):
            messages.success(request, f"Cluster {form.cleaned_data['name']} created.")
            return redirect("dashboard:cluster", name=form.cleaned_data["name"])
        status = 400
    else:
        status = 200
    return render(request, "dashboard/clusters.html",
                  {"form": form, "live": "/ws/clusters/", "account": account_for(request.user),
                   "commands": _commands(request, form)}, status=status)


def _revisions(request):
    """The user's runnable task definitions as family:revision, newest family revisions first."""
    rows = _task_definitions(request).order_by("family", "-revision").values_list("family", "revision")
    return [f"{family}:{revision}" for family, revision in rows]


def _target_groups(request):
    """The user's target groups that a listener uses (a service can only join those)."""
    from orchestrator.models import TargetGroup

    return list(TargetGroup.objects.filter(account=account_for(request.user), region=region(), listeners__isnull=False)
                .select_related("account").distinct().order_by("name"))


def service_form(request, data=None):
    """The CreateService form, with the account's revisions and target groups to choose from;
    ``?task_definition=`` and ``?target_group=`` (the previous steps' links) preselect."""
    revisions, groups = _revisions(request), _target_groups(request)
    wanted = request.GET.get("task_definition", "")
    initial = {"task_definition": wanted if wanted in revisions else (revisions[0] if revisions else "")}
    group = next((tg for tg in groups if tg.arn == request.GET.get("target_group")), None)
    if group is not None:
        initial.update(target_group=group.arn, container_port=group.port)
    if initial["task_definition"]:
        # The service is named after the family, and sends traffic to its first container's port.
        family, revision = initial["task_definition"].rsplit(":", 1)
        td = _task_definitions(request).filter(family=family, revision=revision).first()
        containers = td.container_definitions if td else []
        if containers:
            initial.setdefault("container_name", containers[0].get("name", ""))
            initial.setdefault("container_port", (containers[0].get("portMappings") or [{}])[0].get("containerPort"))
        initial["name"] = family
    return forms.ServiceForm(data, initial=initial, task_definitions=revisions, target_groups=groups)


def _cluster_page(request, cluster, status=200, **forms_given):
    """The cluster page, with ``forms_given`` (bound, with errors) in place of the blank forms."""
    revisions = _revisions(request)
    wanted = request.GET.get("task_definition", "")
    context = {
        "cluster": cluster,
        "live": f"/ws/cluster/{cluster.pk}/",
        "task_definitions": revisions,
        "subnets": network_configuration.subnets_of(account_for(request.user)),
        "run_form": forms.RunTaskForm(initial={"task_definition": wanted or (revisions[0] if revisions else "")}),
        "service_form": service_form(request),
        "delete_form": forms.DeleteClusterForm(),
    }
    context.update(forms_given)
    context["run_commands"] = _commands(request, context["run_form"], cluster=cluster)
    context["service_commands"] = _commands(request, context["service_form"], cluster=cluster)
    return render(request, "dashboard/cluster.html", context, status=status)


@login_required
@require_safe
def cluster(request, name):
    """A cluster with its services and tasks."""
    return _cluster_page(request, _cluster(request, name))


@login_required
@require_POST
def cluster_delete(request, name):
    """DeleteCluster."""
    found = _cluster(request, name)
    form, done = _submit(request, forms.DeleteClusterForm, cluster=found)
    if done:
        messages.success(request, f"Cluster {found.name} deleted.")
        return redirect("dashboard:clusters")
    return _cluster_page(request, found, status=400, delete_form=form)


@login_required
@require_POST
def run_task(request, name):
    """RunTask in this cluster."""
    found = _cluster(request, name)
    if preview := _preview(request, forms.RunTaskForm(request.POST), cluster=found):
        return preview
    form, response = _submit(request, forms.RunTaskForm, cluster=found)
    if response:
        started = len(response.get("tasks", []))
        messages.success(request, f"RunTask started {started} task(s).")
        for failure in response.get("failures", []):
            messages.warning(request, f"{failure.get('arn', '')} {failure.get('reason', '')}")
        return redirect("dashboard:cluster", name=found.name)
    return _cluster_page(request, found, status=400, run_form=form)


@login_required
@require_POST
def service_create(request, name):
    """CreateService in this cluster; the service's page is the journey's end (its URL)."""
    found = _cluster(request, name)
    form = service_form(request, request.POST)
    if preview := _preview(request, form, cluster=found):
        return preview
    response = form.is_valid() and run_ecs(request, form, cluster=found)
    if response:
        messages.success(request, f"Service {form.cleaned_data['name']} created: its tasks start now.")
        return redirect("dashboard:service", pk=_created_service(found, form.cleaned_data["name"]).pk)
    return _cluster_page(request, found, status=400, service_form=form)


def _created_service(cluster, name):
    """The live service ``name`` of ``cluster`` (the one CreateService just made)."""
    return Service.objects.filter(cluster=cluster, name=name).exclude(status=Service.INACTIVE).latest("pk")


# --- Services ----------------------------------------------------------------------------

def _rollout_form(request, service, data=None):
    """UpdateService to a revision of the service's family (its current one preselected)."""
    revisions = [r for r in _revisions(request) if r.rsplit(":", 1)[0] == service.task_definition.family]
    current = f"{service.task_definition.family}:{service.task_definition.revision}"
    newest = revisions[0] if revisions else current
    return forms.UpdateServiceForm(data, initial={"task_definition": newest}, task_definitions=revisions or [current])


def _service_page(request, service, status=200, **forms_given):
    """The service page, with ``forms_given`` (bound, with errors) in place of the blank forms."""
    context = {
        "service": service,
        "live": f"/ws/service/{service.pk}/",
        "scale_form": forms.ScaleServiceForm(initial={"desired_count": service.desired_count}),
        "rollout_form": _rollout_form(request, service),
        "delete_form": forms.DeleteServiceForm(),
    }
    context.update(forms_given)
    for name in ("scale", "rollout", "delete"):
        context[f"{name}_commands"] = _commands(request, context[f"{name}_form"], service=service)
    return render(request, "dashboard/service.html", context, status=status)


def _task_list(request, title, parent_url, **owner):
    """A cluster's or a service's tasks, page by page (the live table shows the newest only)."""
    from dashboard import state

    status = request.GET.get("status", "all")
    if status not in state.TASK_FILTERS:
        status = "all"
    page = state.task_page(request.GET.get("page"), status=status, **owner)
    return render(request, "dashboard/task_list.html", {
        "title": title, "parent_url": parent_url, "page": page, "status": status,
        "filters": list(state.TASK_FILTERS),
    })


@login_required
@require_safe
def cluster_tasks(request, name):
    """ListTasks of a cluster, page by page."""
    found = _cluster(request, name)
    return _task_list(request, f"Cluster {found.name}", reverse("dashboard:cluster", args=[found.name]), cluster=found)


@login_required
@require_safe
def service_tasks(request, pk):
    """A service's tasks, page by page."""
    found = _service(request, pk)
    return _task_list(request, f"Service {found.name}", reverse("dashboard:service", args=[found.pk]), service=found)


@login_required
@require_safe
def service(request, pk):
    """A service: desired / running / pending, its plot, events and tasks."""
    return _service_page(request, _service(request, pk))


@login_required
@require_POST
def service_scale(request, pk):
    """UpdateService desiredCount."""
    found = _service(request, pk)
    if preview := _preview(request, forms.ScaleServiceForm(request.POST), service=found):
        return preview
    form, done = _submit(request, forms.ScaleServiceForm, service=found)
    if done:
        messages.success(request, f"Service {found.name} scaled to {form.cleaned_data['desired_count']}.")
        return redirect("dashboard:service", pk=found.pk)
    return _service_page(request, found, status=400, scale_form=form)


@login_required
@require_POST
def service_update(request, pk):
    """UpdateService to a revision, or forceNewDeployment: a rolling update from the page."""
    found = _service(request, pk)
    form = _rollout_form(request, found, request.POST)
    if preview := _preview(request, form, service=found):
        return preview
    if form.is_valid() and run_ecs(request, form, service=found):
        how = " (forced new deployment)" if form.cleaned_data["force_new_deployment"] else ""
        messages.success(request, f"Rolling out {form.cleaned_data['task_definition']}{how}: watch the deployment below.")
        return redirect("dashboard:service", pk=found.pk)
    return _service_page(request, found, status=400, rollout_form=form)


@login_required
@require_POST
def service_delete(request, pk):
    """DeleteService (force optional)."""
    found = _service(request, pk)
    if preview := _preview(request, forms.DeleteServiceForm(request.POST), service=found):
        return preview
    form, done = _submit(request, forms.DeleteServiceForm, service=found)
    if done:
        messages.success(request, f"Service {found.name} is draining.")
        return redirect("dashboard:cluster", name=found.cluster.name)
    return _service_page(request, found, status=400, delete_form=form)


# --- Tasks -------------------------------------------------------------------------------

def _task_page(request, task, status=200, **forms_given):
    """The task page, with ``forms_given`` (a bound form, a kill error) in place of the blanks."""
    from orchestrator import awslogs, task_metadata

    context = {"task": task, "live": f"/ws/task/{task.pk}/", "stop_form": forms.StopTaskForm(), "kill_error": "",
               "interrupt_error": "", "spot_warning_seconds": spot.warning_seconds(),
               "log_stream": awslogs.task_stream(task),
               "log_container": task.containers.order_by("-essential", "id").first(),
               "task_endpoint": task_metadata.page_facts(task)}
    context.update(forms_given)
    return render(request, "dashboard/task.html", context, status=status)


@login_required
@require_safe
def task(request, task_id):
    """A task: its lifecycle timeline, containers, ports, and live logs."""
    return _task_page(request, _task(request, task_id))


@login_required
@require_POST
def task_stop(request, task_id):
    """StopTask."""
    found = _task(request, task_id)
    form, done = _submit(request, forms.StopTaskForm, task=found)
    if done:
        messages.success(request, f"Task {found.task_id[:8]} is stopping.")
        return redirect("dashboard:task", task_id=found.task_id)
    return _task_page(request, found, status=400, stop_form=form)


@login_required
@require_POST
def task_kill(request, task_id):
    """Kill the task's essential container behind the control plane's back (self-healing demo)."""
    found = _task(request, task_id)
    if found.last_status != Task.RUNNING:
        return _task_page(request, found, status=400, kill_error=f"The task is {found.last_status}, not RUNNING.")
    try:
        from orchestrator.agent import kill_task_container

        killed = kill_task_container(found)  # records the "agent kill" activity itself
    except Exception as exc:  # an engine down, a container gone mid-kill: say so on the page
        log.warning("kill of task %s failed: %s", found.task_id, exc)
        return _task_page(request, found, status=400, kill_error=f"Could not kill the container: {exc}")
    if not killed:
        return _task_page(request, found, status=400, kill_error="The task has no running container to kill.")
    messages.success(request, "Container killed: watch the agent report it and the service replace it.")
    return redirect("dashboard:task", task_id=found.task_id)


@login_required
@require_POST
def task_interrupt(request, task_id):
    """Give a FARGATE_SPOT task its Spot interruption warning, as Fargate does when it takes the
    capacity back (the Kubernetes node-preemption lesson)."""
    found = _task(request, task_id)
    if found.capacity_provider != spot.PROVIDER:
        return _task_page(request, found, status=400, interrupt_error="Only a FARGATE_SPOT task can be interrupted: "
                          f"this one runs on {found.capacity_provider or 'FARGATE'}.")
    if not spot.interruptible(found) or not spot.interrupt(found, by="interrupted from the dashboard"):
        return _task_page(request, found, status=400,
                          interrupt_error=f"The task is {found.last_status} (desired {found.desired_status}), "
                                          "not RUNNING: there is nothing to interrupt.")
    messages.success(request, f"Spot interruption sent: the task's containers got SIGTERM, it stops within "
                              f"{spot.warning_seconds():g} s, and its service (if any) starts a replacement.")
    return redirect("dashboard:task", task_id=found.task_id)


# --- Task definitions --------------------------------------------------------------------

@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def task_definitions(request):
    """Task definition families, and RegisterTaskDefinition (``?image=`` and ``?family=``, the
    repository page's link, prefill the form)."""
    from dashboard import state

    initial = {name: request.GET[name][:1024] for name in ("image", "family") if request.GET.get(name)}
    if initial.get("image"):
        initial.setdefault("port", 80)
    form = forms.TaskDefinitionForm(request.POST if request.method == "POST" else None, initial=initial)
    if request.method == "POST":
        if preview := _preview(request, form):
            return preview
        response = form.is_valid() and run_ecs(request, form)
        if response:
            registered = response["taskDefinition"]
            messages.success(request, f"Registered {registered['family']}:{registered['revision']}: run it, or create a service.")
            return redirect("dashboard:task_definition", family=registered["family"], revision=registered["revision"])
        status = 400
    else:
        status = 200
    account = account_for(request.user)
    return render(request, "dashboard/task_definitions.html", {
        "form": form, "live": "/ws/task-definitions/", "account": account, "commands": _commands(request, form),
        "images": state.image_suggestions(account),
    }, status=status)


@login_required
@require_safe
def task_definition(request, family, revision):
    """One revision as registered, and the family's other revisions (deleted ones are gone)."""
    revisions = present(TaskDefinition.objects.filter(account=account_for(request.user), region=region(), family=family))
    found = next((td for td in revisions if td.revision == revision), None)
    if found is None:
        raise Http404("No such task definition")
    context = {
        "td": found,
        "revisions": revisions,
        "body_json": json.dumps(found.body, indent=2, sort_keys=True, default=str),
        "twin": twins.task_definition_twin(found),
        "clusters": Cluster.objects.filter(account=found.account, region=found.region,
                                           status=Cluster.ACTIVE).order_by("name"),
    }
    return render(request, "dashboard/task_definition.html", context)


# --- Instances ---------------------------------------------------------------------------

@login_required
@require_safe
def instances(request):
    """The fleet: each instance's capacity bars and tasks."""
    return render(request, "dashboard/instances.html", {"live": "/ws/instances/"})


@login_required
@require_safe
def instance(request, name):
    """One instance (a node) and its tasks."""
    found = get_object_or_404(ContainerInstance, name=name)
    return render(request, "dashboard/instance.html", {"instance": found, "live": f"/ws/instance/{found.pk}/"})


@require_safe
def static_file(request, path):
    """A static file (htmx, the dashboard's CSS and script), found as ``collectstatic`` would.

    Django's ``serve`` answers with a FileResponse, which streams from a synchronous file: under
    ASGI, Django must then buffer it in a thread and warns on every request. These files are a
    few kilobytes, so the whole body is read here; ``serve`` still decides the status, the
    content type and Last-Modified (a conditional GET gets 304).
    """
    response = serve(request, path, insecure=True)
    if not response.streaming:
        return response
    try:
        body = b"".join(response.streaming_content)
    finally:
        response.close()
    whole = HttpResponse(body, status=response.status_code)
    for header, value in response.items():
        whole[header] = value
    whole["Content-Length"] = str(len(body))
    return whole



# --- Traces ------------------------------------------------------------------------------

WATERFALL_WIDTH = 1000  # the SVG user units a trace's span is drawn across


def _trace(request, trace_id):
    """The trace ``trace_id`` if the user may see it (their account's; staff see all), or 404."""
    found = traces.visible_to(trace_id, account_for(request.user), staff=request.user.is_staff)
    if found is None:
        raise Http404("No such trace")
    return found


@login_required
@require_safe
def trace(request, trace_id):
    """A trace as a waterfall: each step where and how long it ran, beside its Kubernetes twin."""
    found = _trace(request, trace_id)
    steps = traces.steps(trace_id)
    span = traces.span_ms(steps)
    for step in steps:
        step["x"] = round(step["start_ms"] / span * WATERFALL_WIDTH, 2) if span else 0
        step["width"] = max(round(step["duration_ms"] / span * WATERFALL_WIDTH, 2), 2) if span else 2
        step["end_ms"] = step["start_ms"] + step["duration_ms"]
    context = {"trace": found, "steps": steps, "span_ms": span, "waterfall_width": WATERFALL_WIDTH}
    return render(request, "dashboard/trace.html", context)


@login_required
@require_safe
def trace_json(request, trace_id):
    """A trace's steps as JSON, ordered by start (what the map's replay plays)."""
    try:
        _trace(request, trace_id)
    except Http404:
        return JsonResponse({"message": "Trace not found."}, status=404)
    return JsonResponse({"trace_id": trace_id, "steps": traces.steps(trace_id)})


# --- ECR: repositories (the article's step 1) ----------------------------------------------

def _repository(request, name):
    """The user's repository ``name``, or 404."""
    from orchestrator.models import Repository

    return get_object_or_404(Repository.objects.select_related("account"), account=account_for(request.user),
                             region=region(), name=name)


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def repositories(request):
    """The account's repositories, CreateRepository, and how to push to them."""
    from dashboard import state

    form = forms.RepositoryForm(request.POST if request.method == "POST" else None)
    if request.method == "POST":
        if preview := _preview(request, form):
            return preview
        response = form.is_valid() and run_ecs(request, form)
        if response:
            messages.success(request, f"Repository {response['repository']['repositoryName']} created: push an image to it.")
            return redirect("dashboard:repository", name=response["repository"]["repositoryName"])
        status = 400
    else:
        status = 200
    account = account_for(request.user)
    return render(request, "dashboard/repositories.html", {
        "form": form, "commands": _commands(request, form), "live": "/ws/repositories/", "account": account,
        "push": state.push_commands(account, None, request.build_absolute_uri("/").rstrip("/")),
    }, status=status)


@login_required
@require_safe
def repository(request, name):
    """One repository: its push commands, and its images, tags and digests as pushes land."""
    from dashboard import state

    found = _repository(request, name)
    return render(request, "dashboard/repository.html", {
        "repository": found, "live": f"/ws/repository/{found.pk}/",
        "push": state.push_commands(found.account, found, request.build_absolute_uri("/").rstrip("/")),
    })


# --- ELBv2: load balancers, target groups, listeners (the article's step 4) ----------------

def _load_balancers(request):
    from orchestrator.models import LoadBalancer

    return list(LoadBalancer.objects.filter(account=account_for(request.user), region=region())
                .select_related("account").order_by("name"))


def _all_target_groups(request):
    from orchestrator.models import TargetGroup

    return list(TargetGroup.objects.filter(account=account_for(request.user), region=region())
                .select_related("account").order_by("name"))


def _listener_form(request, data=None):
    """CreateListener, with the account's load balancers and target groups; ``?load_balancer=``
    and ``?target_group=`` (the previous steps' links) preselect."""
    lbs, groups = _load_balancers(request), _all_target_groups(request)
    initial = {}
    for field, rows in (("load_balancer", lbs), ("forward_to", groups)):
        wanted = request.GET.get(field.replace("forward_to", "target_group"), "")
        newest = max(rows, key=lambda row: row.pk, default=None)
        chosen = next((row for row in rows if row.arn == wanted), newest)
        if chosen is not None:
            initial[field] = chosen.arn
    return forms.ListenerForm(data, initial=initial, load_balancers=lbs, target_groups=groups)


def _load_balancers_page(request, status=200, **forms_given):
    """The load balancer page, with ``forms_given`` (bound, with errors) in place of the blanks."""
    context = {
        "live": "/ws/load-balancers/", "account": account_for(request.user),
        "lb_form": forms.LoadBalancerForm(), "tg_form": forms.TargetGroupForm(), "listener_form": _listener_form(request),
    }
    context.update(forms_given)
    for name in ("lb", "tg", "listener"):
        context[f"{name}_commands"] = _commands(request, context[f"{name}_form"])
    return render(request, "dashboard/load_balancers.html", context, status=status)


@login_required
@require_safe
def load_balancers(request):
    """Load balancers with their listeners' URLs, target groups with their targets, and the
    forms that make them."""
    return _load_balancers_page(request)


@login_required
@require_POST
def load_balancer_create(request):
    """CreateLoadBalancer; then on to its target group."""
    if preview := _preview(request, forms.LoadBalancerForm(request.POST)):
        return preview
    form, response = _submit(request, forms.LoadBalancerForm)
    if response:
        lb = response["LoadBalancers"][0]
        messages.success(request, f"Load balancer {lb['LoadBalancerName']} created ({lb['DNSName']}): "
                                  "now a target group for its listener.")
        return redirect(reverse("dashboard:load_balancers") + "?" + urlencode({"load_balancer": lb["LoadBalancerArn"]})
                        + "#target-group")
    return _load_balancers_page(request, status=400, lb_form=form)


@login_required
@require_POST
def target_group_create(request):
    """CreateTargetGroup and its deregistration delay (ModifyTargetGroupAttributes); a delay the
    API refuses removes the target group again, so an error leaves nothing behind."""
    from orchestrator.models import TargetGroup

    form = forms.TargetGroupForm(request.POST)
    if preview := _preview(request, form):
        return preview
    existed = form.is_valid() and TargetGroup.objects.filter(
        account=account_for(request.user), region=region(), name=form.cleaned_data["tg_name"]).exists()
    response = form.is_valid() and run_ecs(request, form)
    if response:
        arn = response["TargetGroups"][0]["TargetGroupArn"]
        if not run_ecs(request, form, params=form.attributes(arn), operation="ModifyTargetGroupAttributes"):
            if not existed:
                run_ecs(request, forms.TargetGroupForm(), params={"TargetGroupArn": arn}, operation="DeleteTargetGroup")
            return _load_balancers_page(request, status=400, tg_form=form)
        messages.success(request, f"Target group {form.cleaned_data['tg_name']} created: now a listener that forwards to it.")
        return redirect(reverse("dashboard:load_balancers") + "?" + urlencode({"target_group": arn}) + "#listener")
    return _load_balancers_page(request, status=400, tg_form=form)


@login_required
@require_POST
def listener_create(request):
    """CreateListener; then on to a service behind its target group."""
    form = _listener_form(request, request.POST)
    if preview := _preview(request, form):
        return preview
    response = form.is_valid() and run_ecs(request, form)
    if response:
        messages.success(request, f"Listener on port {form.cleaned_data['listener_port']} created: "
                                  "now create a service behind its target group.")
        return redirect(reverse("dashboard:load_balancers") + "?" + urlencode({"target_group": form.cleaned_data["forward_to"]}))
    return _load_balancers_page(request, status=400, listener_form=form)
