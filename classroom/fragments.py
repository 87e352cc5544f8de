"""The classroom's live fragments and pages: a student's lab (its steps and ticks) and the class.

They join the dashboard's registry (``dashboard.fragments``, ``dashboard.consumers.PAGES``):
the same consumer pushes them when the bus says ``lab_progress`` (a tick, a note) or a task
changed.
"""
from dashboard import consumers
from dashboard.fragments import fragment

from classroom import progress as progress_views
from classroom.labs import get_lab
from classroom.models import LabProgress
from orchestrator import task_metrics


@fragment("lab-steps", "classroom/fragments/lab_steps.html")
def _lab_steps(key):
    """The steps of one student's run of a lab (``key``: the LabProgress pk)."""
    run = LabProgress.objects.filter(pk=key).first()
    lab = get_lab(run.lab) if run else None
    if lab is None:
        return None
    steps = progress_views.steps_of(run, lab)
    return {"lab": lab, "run": run, "steps": steps, "done": sum(1 for s in steps if s.done)}


@fragment("class-roster", "classroom/fragments/class_roster.html")
def _class_roster(key):
    return {"rows": progress_views.class_rows()}


consumers.PAGES["lab"] = consumers.Page(model=LabProgress, group="labrun", fragments={"lab-steps": {"lab_progress"}})
consumers.PAGES["class"] = consumers.Page(fragments={"class-roster": {"lab_progress", "task", task_metrics.BUS_KIND}},
                                          staff=True)
