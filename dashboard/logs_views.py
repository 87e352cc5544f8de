"""The dashboard's CloudWatch Logs pages: the account's log groups, and one group's streams and
latest events (what ``aws logs describe-log-streams`` and ``aws logs tail`` show)."""
from datetime import datetime, timezone

from django.contrib.auth.decorators import login_required
from django.db.models import F
from django.http import Http404
from django.shortcuts import render
from django.views.decorators.http import require_safe

from dashboard.views import account_for
from orchestrator.models import LogEvent, LogGroup, region

EVENTS_SHOWN = 200


def _time(ms):
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc) if ms is not None else None


@login_required
@require_safe
def log_groups(request):
    """The account's log groups in this region."""
    groups = LogGroup.objects.filter(account=account_for(request.user), region=region()).order_by("name")
    return render(request, "dashboard/log_groups.html", {"groups": groups})


@login_required
@require_safe
def log_group(request, name):
    """One log group of the account: its streams and its latest events, oldest first."""
    group = LogGroup.objects.filter(account=account_for(request.user), region=region(), name=name).first()
    if group is None:
        raise Http404("No such log group in your account.")
    streams = list(group.streams.order_by(F("last_event_at").desc(nulls_last=True), "name"))  # unwritten last
    names = {s.pk: s.name for s in streams}
    cutoff = group.retention_cutoff()
    events = LogEvent.objects.filter(group=group)
    if cutoff is not None:
        events = events.filter(timestamp__gte=cutoff)
    latest = reversed(list(events.order_by("-timestamp", "-id")[:EVENTS_SHOWN]))
    rows = [{"time": _time(e.timestamp), "stream": names.get(e.stream_id, ""), "message": e.message} for e in latest]
    for stream in streams:
        stream.last_event_time = _time(stream.last_event_at)
    return render(request, "dashboard/log_group.html", {"group": group, "streams": streams, "events": rows,
                                                        "shown": EVENTS_SHOWN})
