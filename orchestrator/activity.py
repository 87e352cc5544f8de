"""Activity records: every step a component takes, for the dashboard's cards and replay.

``record`` writes one Activity row and publishes it on the bus, so an open dashboard shows
it at once. ``new_trace_id`` starts a trace; pass it along so a request's steps tie together.
"""
import uuid

from orchestrator import bus
from orchestrator.models import Activity


def new_trace_id():
    """A fresh trace id (16 hex digits)."""
    return uuid.uuid4().hex[:16]


def record(component, action, object_arn="", message="", trace_id="", **fields):
    """Write one activity row (component is frontend, cluster_manager, capacity_manager,
    agent or docker) and publish it; returns the row. Extra fields: caller, status_code,
    latency_ms."""
    row = Activity.objects.create(
        component=component, action=action, object_arn=object_arn, message=message,
        trace_id=trace_id or "", **fields
    )
    bus.publish("activity", row.pk, component=component)
    return row
