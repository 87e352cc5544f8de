"""The labs' pages (a student's) and the class page (staff's). Thin: find, render, redirect."""
import csv

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST, require_safe

from classroom import progress as progress_views
from classroom.labs import all_labs, get_lab
from classroom.models import LabProgress
from classroom.runner import evaluate
from orchestrator import registry
from orchestrator.models import Account


def _lab(slug):
    lab = get_lab(slug)
    if lab is None:
        raise Http404("no such lab")
    return lab


def _run(request, slug):
    return LabProgress.objects.filter(user=request.user, lab=slug).select_related("account").first()


def _staff(request):
    if not (request.user.is_staff or request.user.is_superuser):
        raise Http404("the class page is for staff")


@login_required
@require_safe
def lab_list(request):
    """Every lab, with how far the user got in each."""
    runs = {run.lab: run for run in LabProgress.objects.filter(user=request.user).prefetch_related("ticks")}
    labs = [{"lab": lab, "run": runs.get(lab.slug),
             "done": len({t.step for t in runs[lab.slug].ticks.all()} & set(lab.step_ids)) if lab.slug in runs else 0}
            for lab in all_labs().values()]
    return render(request, "classroom/labs.html", {"labs": labs})


@login_required
@require_safe
def lab(request, slug):
    """A lab: its steps, each ticked live as its check passes (``Start`` first if not begun)."""
    lab = _lab(slug)
    run = _run(request, slug)
    account = run.account if run else Account.of_user(request.user)
    return render(request, "classroom/lab.html", {
        "lab": lab, "run": run, "live": f"/ws/lab/{run.pk}/" if run else None,
        "steps": progress_views.steps_of(run, lab), "account": account,
        "endpoint": request.build_absolute_uri("/").rstrip("/"), "registry": registry.registry_host(),
        "key_ids": list(account.access_keys.filter(active=True).values_list("access_key_id", flat=True)[:3]),
    })


@login_required
@require_POST
def lab_start(request, slug):
    """Start the lab (or resume it: a run already begun is kept) and check what is done already."""
    _lab(slug)
    evaluate(progress_views.start(request.user, slug))
    return redirect("classroom:lab", slug=slug)


@login_required
@require_POST
def lab_restart(request, slug):
    """Start the lab over: every tick and answer cleared."""
    _lab(slug)
    run = _run(request, slug)
    if run is not None:
        progress_views.restart(run)
        evaluate(run)
    return redirect("classroom:lab", slug=slug)


@login_required
@require_POST
def lab_answer(request, slug, step_id):
    """A quiz step's answer: kept (a later answer replaces it), then the checks run."""
    lab = _lab(slug)
    step = lab.step(step_id)
    run = _run(request, slug)
    if step is None or step.quiz is None or run is None:
        raise Http404("no such quiz")
    try:
        choice = int(request.POST.get("choice", ""))
    except ValueError:
        choice = -1
    if not 0 <= choice < len(step.quiz.choices):
        return HttpResponse("Pick one of the choices.", status=400, content_type="text/plain")
    run.answers = {**run.answers, step.id: choice}
    run.save(update_fields=["answers"])
    evaluate(run)
    return redirect(f"{request.path.rsplit('/answer/', 1)[0]}/#step-{step.id}")


@login_required
@require_safe
def lab_progress_json(request, slug):
    """The user's progress in the lab as JSON (scripts and tests read it)."""
    lab = _lab(slug)
    run = _run(request, slug)
    ticked = run.ticked() if run else set()
    return JsonResponse({
        "lab": lab.slug, "started": run is not None, "steps": lab.step_ids,
        "ticked": [s for s in lab.step_ids if s in ticked], "notes": run.notes if run else {},
        "completed": bool(run and run.completed_at),
    })


@login_required
@require_safe
def class_page(request):
    """The teacher's view of the class: each student's lab, step, ticks, running tasks and CPU, live."""
    _staff(request)
    return render(request, "classroom/class.html", {"live": "/ws/class/", "labs": all_labs().values()})


@login_required
@require_safe
def class_csv(request):
    """Every student's progress in every lab, as CSV."""
    _staff(request)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="class-progress.csv"'
    writer = csv.writer(response)
    for row in progress_views.csv_rows():
        writer.writerow(row)
    return response
