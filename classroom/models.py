"""A student's progress through a lab: when they started it, their quiz answers, the steps ticked.

Ticks are kept once earned (a later step may undo what an earlier one built: a student who
kills a task to see it replaced has still done the step before), so a student who comes back
resumes at the first step not yet ticked.
"""
from django.conf import settings
from django.db import models
from django.utils import timezone

from orchestrator.models import Account


class LabProgress(models.Model):
    """One user's run of one lab (``lab`` is the folder's slug under ``labs/``)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="lab_progress")
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="lab_progress")
    lab = models.SlugField(max_length=64)
    answers = models.JSONField(default=dict, blank=True)  # quiz steps: step id -> the choice picked
    notes = models.JSONField(default=dict, blank=True)  # steps not ticked: step id -> what is still missing
    started_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "lab"], name="uniq_lab_progress")]
        ordering = ["user_id", "lab"]
        verbose_name_plural = "lab progress"

    def __str__(self):
        return f"{self.user} · {self.lab}"

    def ticked(self):
        """The ids of the steps ticked so far."""
        return set(self.ticks.values_list("step", flat=True))

    def tick(self, step, detail=""):
        """Tick ``step`` once (a second tick changes nothing); True if it was new."""
        _, created = StepTick.objects.get_or_create(progress=self, step=step, defaults={"detail": detail[:500]})
        return created


class StepTick(models.Model):
    """A step whose check passed, and when (kept: ticks are earned once)."""

    progress = models.ForeignKey(LabProgress, on_delete=models.CASCADE, related_name="ticks")
    step = models.SlugField(max_length=64)
    detail = models.CharField(max_length=500, blank=True)
    ticked_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["progress", "step"], name="uniq_step_tick")]
        ordering = ["ticked_at", "id"]

    def __str__(self):
        return f"{self.progress} · {self.step}"
