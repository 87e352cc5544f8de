"""AWS's pace for task launches, when the lab is asked to keep it (FARGATE_LAB_AWS_PACING).

ECS launches Fargate tasks at a sustained rate per account and region, with bursts above it (a
token bucket: 20 tasks a second refilled, 100 held, by default): RunTask beyond the bucket is
refused with ThrottlingException ("Rate exceeded"), and a service's scheduler starts as many
tasks as the bucket allows and comes back for the rest. That is why a 1,000-task service takes
most of a minute on AWS, where an unpaced lab starts it as fast as the machine allows.

The buckets live in the process that holds them: the frontend's for RunTask, the control plane's
for services (one leader), so a lab of several server processes paces RunTask per process.
"""
import threading
import time

from django.conf import settings

_lock = threading.Lock()
_buckets = {}  # account pk -> [tokens, monotonic time of the last refill]


def enabled():
    return bool(settings.FARGATE_LAB["AWS_PACING"])


def _refilled(account_pk, now):
    conf = settings.FARGATE_LAB
    rate, burst = conf["TASK_LAUNCH_RATE"], conf["TASK_LAUNCH_BURST"]
    tokens, at = _buckets.get(account_pk, (float(burst), now))
    tokens = min(float(burst), tokens + (now - at) * rate)
    return tokens, rate


def take(account_pk, count, partial=False):
    """Take ``count`` launches from the account's bucket; returns (granted, seconds until the
    rest could be). All or none unless ``partial`` (a service starts what the bucket allows)."""
    if not enabled():
        return count, 0.0
    with _lock:
        now = time.monotonic()
        tokens, rate = _refilled(account_pk, now)
        granted = count if tokens >= count else (int(tokens) if partial else 0)
        _buckets[account_pk] = (tokens - granted, now)
        # The rest waits at least until the bucket holds one more launch.
        wait = max(0.0, (1 - (tokens - granted)) / rate) if granted < count else 0.0
        return granted, wait


def reset():
    """Forget every bucket (tests, and a teacher turning pacing on afresh)."""
    with _lock:
        _buckets.clear()
