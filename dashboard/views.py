"""Dashboard pages and the actions of its forms.

Pages are thin: they find the object and render a template made of live fragments. Every
action goes through ``orchestrator.frontend.call`` with the user's account, as the API does;
a failed action re-renders its page with the ECS error in the form (status 400).
"""
import json
import logging
import time

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.staticfiles.views import serve
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from dashboard import forms, twins
from orchestrator import activity, traces
from orchestrator.frontend import EcsError
from orchestrator.frontend.deleted_task_definitions import present
from orchestrator.models import Account, Cluster, ContainerInstance, Service, Task, TaskDefinition

log = logging.getLogger(__name__)


def account_for(user):
    """The AWS account a dashboard user acts as (``Account.members``; else the default one)."""
    return Account.of_user(user)


def run_ecs(request, form, **context):
    """Run the form's ECS operation as the user, as the API would; the response, or None with
    the error in the form. The call is logged for the frontend card like an API call."""
    from orchestrator import frontend

    started, started_at, trace_id = time.perf_counter(), timezone.now(), traces.new_trace_id()
    caller = f"console:{request.user.get_username()}"
    response, status, message = None, 200, f"{form.operation} → 200 (console)"
    account, params = account_for(request.user), form.params(**context)
    try:
        with traces.continuing(trace_id):
            response = frontend.call(account, form.operation, params, caller=caller, trace_id=trace_id)
    except EcsError as error:
        form.add_ecs_error(error)
        status, message = error.status, f"{form.operation} → {error.status} {error.error_type}: {error.message}"
    except ImportError:  # the frontend's operations are not installed in this build
        log.exception("ECS frontend unavailable")
        form.add_error(None, "ServerException: the ECS frontend is not available in this lab.")
        status, message = 503, f"{form.operation} → 503 frontend unavailable"
    traces.record_call("frontend", form.operation, trace_id, account, started_at,
                       (time.perf_counter() - started) * 1000, _object_arn(response), message,
                       caller=caller, status_code=status,
                       request=activity.api_request(account, form.operation, params))
    return response


def _object_arn(response):
    """The ARN of the first object an ECS response names ("" when none)."""
    for value in (response or {}).values():
        value = value[0] if isinstance(value, list) and value else value
        if isinstance(value, dict):
            for field in ("taskArn", "serviceArn", "taskDefinitionArn", "clusterArn"):
                if isinstance(value.get(field), str):
                    return value[field][:512]
    return ""


def _cluster(request, name):
    """The user's cluster ``name``, or 404."""
    return get_object_or_404(Cluster.objects.select_related("account"), account=account_for(request.user), name=name)


def _service(request, pk):
    """The user's service ``pk``, or 404."""
    return get_object_or_404(
        Service.objects.select_related("account", "cluster", "task_definition"),
        account=account_for(request.user), pk=pk,
    )


def _task(request, task_id):
    """The user's task ``task_id``, or 404."""
    return get_object_or_404(
        Task.objects.select_related("account", "cluster", "task_definition", "service", "container_instance"),
        account=account_for(request.user), task_id=task_id,
    )


def _task_definitions(request):
    """The user's ACTIVE task definitions."""
    return TaskDefinition.objects.filter(account=account_for(request.user), status=TaskDefinition.ACTIVE)


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
        if form.is_valid() and run_ecs(request, form):
            messages.success(request, f"Cluster {form.cleaned_data['name']} created.")
            return redirect("dashboard:cluster", name=form.cleaned_data["name"])
        status = 400
    else:
        status = 200
    return render(request, "dashboard/clusters.html",
                  {"form": form, "live": "/ws/clusters/", "account": account_for(request.user)}, status=status)


def _cluster_page(request, cluster, status=200, **forms_given):
    """The cluster page, with ``forms_given`` (bound, with errors) in place of the blank forms."""
    families = [f"{td.family}:{td.revision}" for td in _task_definitions(request)]
    context = {
        "cluster": cluster,
        "live": f"/ws/cluster/{cluster.pk}/",
        "task_definitions": families,
        "run_form": forms.RunTaskForm(initial={"task_definition": families[-1] if families else ""}),
        "service_form": forms.ServiceForm(initial={"task_definition": families[-1] if families else ""}),
        "delete_form": forms.DeleteClusterForm(),
    }
    context.update(forms_given)
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
    """CreateService in this cluster."""
    found = _cluster(request, name)
    form, done = _submit(request, forms.ServiceForm, cluster=found)
    if done:
        messages.success(request, f"Service {form.cleaned_data['name']} created.")
        return redirect("dashboard:cluster", name=found.name)
    return _cluster_page(request, found, status=400, service_form=form)


# --- Services ----------------------------------------------------------------------------

def _service_page(request, service, status=200, **forms_given):
    """The service page, with ``forms_given`` (bound, with errors) in place of the blank forms."""
    context = {
        "service": service,
        "live": f"/ws/service/{service.pk}/",
        "scale_form": forms.ScaleServiceForm(initial={"desired_count": service.desired_count}),
        "delete_form": forms.DeleteServiceForm(),
    }
    context.update(forms_given)
    return render(request, "dashboard/service.html", context, status=status)


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
    form, done = _submit(request, forms.ScaleServiceForm, service=found)
    if done:
        messages.success(request, f"Service {found.name} scaled to {form.cleaned_data['desired_count']}.")
        return redirect("dashboard:service", pk=found.pk)
    return _service_page(request, found, status=400, scale_form=form)


@login_required
@require_POST
def service_delete(request, pk):
    """DeleteService (force optional)."""
    found = _service(request, pk)
    form, done = _submit(request, forms.DeleteServiceForm, service=found)
    if done:
        messages.success(request, f"Service {found.name} is draining.")
        return redirect("dashboard:cluster", name=found.cluster.name)
    return _service_page(request, found, status=400, delete_form=form)


# --- Tasks -------------------------------------------------------------------------------

def _task_page(request, task, status=200, **forms_given):
    """The task page, with ``forms_given`` (a bound form, a kill error) in place of the blanks."""
    context = {"task": task, "live": f"/ws/task/{task.pk}/", "stop_form": forms.StopTaskForm(), "kill_error": ""}
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


# --- Task definitions --------------------------------------------------------------------

@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def task_definitions(request):
    """Task definition families, and RegisterTaskDefinition."""
    form = forms.TaskDefinitionForm(request.POST if request.method == "POST" else None)
    if request.method == "POST":
        response = form.is_valid() and run_ecs(request, form)
        if response:
            registered = response["taskDefinition"]
            messages.success(request, f"Registered {registered['family']}:{registered['revision']}.")
            return redirect("dashboard:task_definition", family=registered["family"], revision=registered["revision"])
        status = 400
    else:
        status = 200
    return render(
        request, "dashboard/task_definitions.html",
        {"form": form, "live": "/ws/task-definitions/", "account": account_for(request.user)}, status=status,
    )


@login_required
@require_safe
def task_definition(request, family, revision):
    """One revision as registered, and the family's other revisions (deleted ones are gone)."""
    revisions = present(TaskDefinition.objects.filter(account=account_for(request.user), family=family))
    found = next((td for td in revisions if td.revision == revision), None)
    if found is None:
        raise Http404("No such task definition")
    context = {
        "td": found,
        "revisions": revisions,
        "body_json": json.dumps(found.body, indent=2, sort_keys=True, default=str),
        "twin": twins.task_definition_twin(found),
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
