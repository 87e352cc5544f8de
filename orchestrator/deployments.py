"""Rolling deployments, the deployment circuit breaker and restart throttling, as ECS documents
them — pure functions over plain data, used by the cluster manager's plan.

Kubernetes counterpart: the Deployment controller rolling one ReplicaSet into another within
maxSurge / maxUnavailable; ECS says it with maximumPercent / minimumHealthyPercent.
"""
import math
from dataclasses import dataclass, field

DEFAULT_MINIMUM_HEALTHY_PERCENT = 100
DEFAULT_MAXIMUM_PERCENT = 200
THROTTLE_CAP_SECONDS = 15 * 60
CIRCUIT_BREAKER_REASON = "ECS deployment circuit breaker: tasks failed to start."
STOPPED_REASON = "Service deployment stopped by StopServiceDeployment (ROLLBACK): rolling back."


def rolling_limits(desired, minimum_healthy_percent=None, maximum_percent=None):
    """(minimum healthy tasks, maximum tasks) during a deployment.

    ECS rounds minimumHealthyPercent up and maximumPercent down: desired 3 with 50 / 150 keeps
    at least 2 healthy and runs at most 4.
    """
    low = DEFAULT_MINIMUM_HEALTHY_PERCENT if minimum_healthy_percent is None else minimum_healthy_percent
    high = DEFAULT_MAXIMUM_PERCENT if maximum_percent is None else maximum_percent
    return math.ceil(desired * low / 100), math.floor(desired * high / 100)


def circuit_breaker_threshold(desired):
    """How many failed tasks fail a deployment: ceil(0.5 × desired), clamped to [3, 200]."""
    return min(max(math.ceil(0.5 * desired), 3), 200)


def throttle_delay(consecutive_failures, base_seconds=10.0):
    """Seconds to wait before launching again after ``consecutive_failures`` failed starts:
    none after the first, then doubling from ``base_seconds``, capped at 15 minutes."""
    if consecutive_failures <= 1:
        return 0.0
    return min(base_seconds * 2 ** (consecutive_failures - 2), THROTTLE_CAP_SECONDS)


def backing_off(consecutive_failures, last_failed_at, now):
    """Whether launches still wait out ``throttle_delay`` after the last failed start."""
    delay = throttle_delay(consecutive_failures)
    return bool(delay) and last_failed_at is not None and (now - last_failed_at).total_seconds() < delay


@dataclass(frozen=True)
class RolloutTask:
    """What the rollout needs to know of one live (not STOPPED, desired RUNNING) task."""

    key: object
    primary: bool  # belongs to the PRIMARY (newest) deployment
    running: bool  # last status RUNNING
    healthy: bool  # RUNNING and healthy (load balancer, or past the grace period)
    created_order: int = 0  # larger is newer
    settling: bool = False  # RUNNING, health not judged yet (in its grace period, or target "initial")
    protected: bool = False  # task scale-in protection (UpdateTaskProtection) in force


@dataclass
class RolloutStep:
    """What one pass of the rollout does: start this many primary tasks, stop these."""

    start: int = 0
    stop: list = field(default_factory=list)

    @property
    def idle(self):
        return self.start == 0 and not self.stop


def plan_rollout(desired, tasks, minimum_healthy_percent=None, maximum_percent=None, stopping=0):
    """One pass of a rolling update (also plain scaling, when every task is primary).

    1. Stop surplus primary tasks beyond ``desired`` (not-yet-running and newest first).
    2. Stop old tasks that are not healthy: they hold up no capacity the service counts on
       (but keep settling ones, still in their grace period, until they are judged).
    3. Stop healthy old tasks while the healthy count stays at or above the minimum.
    4. Start primary tasks up to ``desired``, keeping the total within the maximum (counting the
       tasks this pass stops, and the ``stopping`` ones still on their way out, as present until
       they are STOPPED: no surge past the maximum).
    Protected tasks are never stopped by a scale-in or a deployment, as ECS documents task
    scale-in protection: the service stays above its desired count, or the deployment waits,
    until their protection is removed or expires.
    """
    min_healthy, max_total = rolling_limits(desired, minimum_healthy_percent, maximum_percent)
    # With maximum 100 and minimum 100 nothing can move, as in ECS, and the deployment waits.
    step = RolloutStep()
    primary = [t for t in tasks if t.primary]
    old = [t for t in tasks if not t.primary]
    healthy = sum(1 for t in tasks if t.healthy)

    surplus = len(primary) - desired
    stopped_surplus = 0
    if surplus > 0:
        unprotected = [t for t in primary if not t.protected]
        for task in sorted(unprotected, key=lambda t: (t.running, -t.created_order))[:surplus]:
            step.stop.append(task.key)
            healthy -= task.healthy
            stopped_surplus += 1

    for task in sorted(old, key=lambda t: (t.healthy, t.running, -t.created_order)):
        if task.protected or (task.settling and not task.healthy):
            continue
        if not task.healthy:
            step.stop.append(task.key)
        elif healthy - 1 >= min_healthy:
            step.stop.append(task.key)
            healthy -= 1

    live_primary = len(primary) - stopped_surplus
    total = len(tasks) + stopping
    room = max(max_total - total, 0)
    # A plain scale-out (no old tasks) is never held back by maximumPercent.
    step.start = max(desired - live_primary, 0) if not old else min(max(desired - live_primary, 0), room)
    return step
