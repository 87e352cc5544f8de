"""Progress as the pages show it: a student's run of a lab, and the class at a glance."""
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db.models import Count, Q, Sum

from classroom.labs import all_labs, get_lab
from classroom.models import LabProgress
from orchestrator import task_metrics
from orchestrator.models import Account, Task


@dataclass
class StepView:
    step: object
    number: int
    ticked_at: object = None
    note: str = ""
    current: bool = False
    answer: object = None

    @property
    def done(self):
        return self.ticked_at is not None


def steps_of(progress, lab=None):
    """The lab's steps with their ticks, notes and which one is current (the first not ticked)."""
    lab = lab or get_lab(progress.lab)
    ticks = dict(progress.ticks.values_list("step", "ticked_at")) if progress else {}
    rows, current_found = [], False
    for number, step in enumerate(lab.steps, 1):
        row = StepView(step, number, ticks.get(step.id), (progress.notes or {}).get(step.id, "") if progress else "",
                       answer=(progress.answers or {}).get(step.id) if progress else None)
        if not row.done and not current_found and progress is not None:
            row.current = current_found = True
        rows.append(row)
    return rows


def start(user, slug):
    """The user's run of lab ``slug``, started now if it was not (a returning student resumes)."""
    progress, _ = LabProgress.objects.get_or_create(user=user, lab=slug, defaults={"account": Account.of_user(user)})
    return progress


def restart(progress):
    """Start the lab over: no ticks, no answers, from now."""
    from django.utils import timezone

    progress.ticks.all().delete()
    progress.answers, progress.notes, progress.completed_at = {}, {}, None
    progress.started_at = progress.updated_at = timezone.now()
    progress.save(update_fields=["answers", "notes", "completed_at", "started_at", "updated_at"])


def students():
    """The users a class page lists: everyone not staff who belongs to an account or began a lab."""
    users = get_user_model().objects.filter(is_staff=False, is_superuser=False)
    return users.filter(Q(aws_accounts__isnull=False) | Q(lab_progress__isnull=False)).distinct().order_by("username")


def class_rows():
    """One row per student: their account, the lab they worked on last, its step and ticks, and
    their account's running tasks, the vCPU those reserve, and the CPU and memory they use."""
    labs = all_labs()
    users = list(students())
    progress_of = {}
    for progress in (LabProgress.objects.filter(user__in=users).prefetch_related("ticks")
                     .order_by("user_id", "-updated_at")):
        progress_of.setdefault(progress.user_id, []).append(progress)
    accounts = {user.pk: Account.of_user(user) for user in users}
    running = Task.objects.filter(account__in=set(accounts.values()), last_status=Task.RUNNING,
                                  desired_status=Task.RUNNING)
    usage = {row["account_id"]: row for row in running.values("account_id").annotate(tasks=Count("id"), cpu=Sum("cpu"))}
    measured = measured_use(running.values_list("pk", "account_id"))
    rows = []
    for user in users:
        account = accounts[user.pk]
        runs = [p for p in progress_of.get(user.pk, []) if p.lab in labs]
        latest = runs[0] if runs else None
        lab = labs[latest.lab] if latest else None
        ticked = {tick.step for tick in latest.ticks.all()} if latest else set()
        current = lab.next_step(ticked) if lab else None
        used = usage.get(account.pk, {})
        rows.append({
            "user": user, "account": account, "progress": latest, "lab": lab,
            "steps": [(step, step.id in ticked) for step in lab.steps] if lab else [],
            "done": len(ticked & set(lab.step_ids)) if lab else 0,
            "current": current, "current_number": lab.step_ids.index(current.id) + 1 if current else None,
            "labs_done": sum(1 for p in runs if p.completed_at),
            "running_tasks": used.get("tasks", 0), "vcpu": (used.get("cpu") or 0) / 1024,
            "measured": measured.get(account.pk),
        })
    return rows


def measured_use(task_accounts):
    """{account pk: {"vcpu", "memory_mib", "tasks"}}: what the accounts' running tasks use, as
    Docker last measured it (orchestrator/task_metrics; tasks not sampled yet are left out)."""
    owners = dict(task_accounts)
    found = {}
    for pk, usage in task_metrics.latest(list(owners)).items():
        total = found.setdefault(owners[pk], {"vcpu": 0.0, "memory_mib": 0.0, "tasks": 0})
        total["vcpu"] += usage.cpu_units / 1024
        total["memory_mib"] += usage.memory_mib
        total["tasks"] += 1
    return found


def csv_rows():
    """Every student's every lab as CSV rows (one per student and lab, then each step's tick time)."""
    labs = all_labs()
    yield ["user", "account", "lab", "started_at", "completed_at", "steps_done", "steps_total", "current_step", "ticks"]
    for user in students():
        account = Account.of_user(user)
        for progress in LabProgress.objects.filter(user=user).prefetch_related("ticks").order_by("lab"):
            lab = labs.get(progress.lab)
            if lab is None:
                continue
            ticks = {tick.step: tick.ticked_at for tick in progress.ticks.all()}
            current = lab.next_step(set(ticks))
            yield [user.username, account.account_id, lab.slug, progress.started_at.isoformat(),
                   progress.completed_at.isoformat() if progress.completed_at else "",
                   sum(1 for s in lab.step_ids if s in ticks), len(lab.steps), current.id if current else "",
                   " ".join(f"{s}@{ticks[s].isoformat()}" for s in lab.step_ids if s in ticks)]
