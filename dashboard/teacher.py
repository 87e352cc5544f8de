"""The teacher's pages under /class/ (staff only; for anyone else they do not exist): one
student's page (their objects, a read-only look at their dashboard, resetting their account,
their quotas) and the class's chaos page (``orchestrator.chaos``)."""
from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe

from dashboard import view_as
from orchestrator import chaos
from orchestrator.account_reset import reset_account
from orchestrator.models import (
    Account, Cluster, ContainerInstance, LoadBalancer, Repository, Service, TargetGroup, Task, TaskDefinition,
)


def _staff(request):
    if not (request.user.is_authenticated and request.user.is_staff):
        raise Http404("No such page.")


def _student(request, pk):
    """The student ``pk`` (a user who is not staff) and the account they act as, or 404."""
    _staff(request)
    student = get_object_or_404(get_user_model(), pk=pk, is_staff=False, is_superuser=False)
    return student, Account.of_user(student)


def account_objects(account):
    """What an account holds, by kind, as the student page lists it."""
    live = Task.objects.filter(account=account).exclude(last_status=Task.STOPPED)
    return [
        ("Clusters", Cluster.objects.filter(account=account).count()),
        ("Services", Service.objects.filter(account=account).exclude(status=Service.INACTIVE).count()),
        ("Tasks not stopped", live.count()),
        ("Task definitions", TaskDefinition.objects.filter(account=account).count()),
        ("Load balancers", LoadBalancer.objects.filter(account=account).count()),
        ("Target groups", TargetGroup.objects.filter(account=account).count()),
        ("Repositories", Repository.objects.filter(account=account).count()),
    ]


class ResetForm(forms.Form):
    """Resetting asks for the student's user name, typed: it cannot be undone."""

    confirm = forms.CharField(label="Type the student's user name to confirm", max_length=150)

    def __init__(self, *args, student, **kwargs):
        super().__init__(*args, **kwargs)
        self.student = student

    def clean_confirm(self):
        if self.cleaned_data["confirm"] != self.student.get_username():
            raise forms.ValidationError(f"Type {self.student.get_username()} to reset this account.")
        return self.cleaned_data["confirm"]


def _student_page(request, student, account, status=200, reset_form=None):
    return render(request, "teacher/student.html", {
        "student": student, "account": account, "objects": account_objects(account),
        "reset_form": reset_form or ResetForm(student=student),
        "keys": list(account.access_keys.values_list("access_key_id", "active")),
    }, status=status)


@login_required
@require_safe
def student(request, pk):
    """One student: their account's objects and the teacher's actions on it."""
    found, account = _student(request, pk)
    return _student_page(request, found, account)


@login_required
@require_POST
def student_reset(request, pk):
    """Reset the student's account: every object, container, network and EFS volume goes; labs start over."""
    found, account = _student(request, pk)
    form = ResetForm(request.POST, student=found)
    if not form.is_valid():
        return _student_page(request, found, account, status=400, reset_form=form)
    done = reset_account(account, caller=f"console:{request.user.get_username()}")
    messages.success(request, (
        f"Account {account.account_id} of {found.get_username()} reset: {done['tasks']} task(s), "
        f"{done['containers']} container(s), {done['networks']} network(s) and {done['volumes']} EFS volume(s) "
        "removed, every object deleted, "
        f"{done['labs']} lab(s) restarted."))
    return redirect("teacher:student", pk=found.pk)


@login_required
@require_POST
def student_view_as(request, pk):
    """Look at the dashboard as the student sees it, read only, until "Back to the class"."""
    found, _ = _student(request, pk)
    request.session[view_as.SESSION_KEY] = found.pk
    return redirect("root")


@login_required
@require_POST
def view_as_stop(request):
    """End a read-only view (the middleware lets this one POST through)."""
    user_pk = request.session.pop(view_as.SESSION_KEY, None)
    if user_pk is not None and request.user.is_staff:
        return redirect(reverse("teacher:student", kwargs={"pk": user_pk}))
    return redirect("root")


# --- Chaos for the class ------------------------------------------------------------------

class DisconnectForm(forms.Form):
    instance = forms.CharField(max_length=64)
    seconds = forms.IntegerField(min_value=1, max_value=chaos.MAX_DISCONNECT_SECONDS, initial=20)


def _chaos_page(request, status=200, error=""):
    instances = ContainerInstance.objects.exclude(status=ContainerInstance.INACTIVE).order_by("name")
    fillers = Task.objects.filter(account__account_id=chaos.CHAOS_ACCOUNT_ID, group="chaos:fill").exclude(
        last_status=Task.STOPPED).count()
    return render(request, "teacher/chaos.html", {
        "instances": instances, "fillers": fillers, "error": error,
        "max_seconds": chaos.MAX_DISCONNECT_SECONDS,
        "services": Service.objects.filter(status=Service.ACTIVE).exclude(
            account__account_id=chaos.CHAOS_ACCOUNT_ID).count(),
    }, status=status)


@login_required
@require_safe
def chaos_page(request):
    """The class's chaos: kill, drain, disconnect, fill; each told on the students' pages."""
    _staff(request)
    return _chaos_page(request)


@login_required
@require_POST
def chaos_action(request, action):
    """Carry out one chaos ``action`` for the class; a refusal re-renders the page (400)."""
    _staff(request)
    caller = f"console:{request.user.get_username()}"
    try:
        if action == "kill":
            killed = chaos.kill_one_task_per_service(caller)
            messages.success(request, f"Killed one task in each of {len(killed)} service(s).")
        elif action == "drain":
            instance = _instance(request.POST.get("instance", ""))
            moved = chaos.drain_instance(instance, caller)
            messages.success(request, f"{instance.name} is DRAINING; {moved} service(s) move their tasks.")
        elif action == "disconnect":
            form = DisconnectForm(request.POST)
            if not form.is_valid():
                raise chaos.ChaosError(" ".join(e for errors in form.errors.values() for e in errors))
            instance = _instance(form.cleaned_data["instance"])
            chaos.disconnect_agent(instance, form.cleaned_data["seconds"], caller)
            messages.success(request, f"The agent of {instance.name} is disconnected for {form.cleaned_data['seconds']} s.")
        elif action == "fill":
            filled = chaos.fill_capacity(caller)
            messages.success(request, f"Filled {len(filled)} instance(s).")
        elif action == "release":
            messages.success(request, f"Released the capacity ({chaos.release_capacity(caller)} task(s) stopping).")
        else:
            raise Http404("No such chaos.")
    except chaos.ChaosError as error:
        return _chaos_page(request, status=400, error=str(error))
    return redirect("teacher:chaos")


def _instance(name):
    found = ContainerInstance.objects.filter(name=name).first()
    if found is None:
        raise chaos.ChaosError(f"No instance named {name[:64]!r}.")
    return found
