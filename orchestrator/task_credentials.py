"""Task role credentials, as ECS hands them to a task (a Kubernetes ServiceAccount token's counterpart).

A task whose definition (or RunTask's overrides) names a ``taskRoleArn`` gets
``AWS_CONTAINER_CREDENTIALS_RELATIVE_URI``; an SDK in the task asks
``http://169.254.170.2<relative URI>`` (the task endpoint, ``orchestrator/task_metadata.py``)
and receives temporary credentials of the task's own account: AccessKeyId, SecretAccessKey,
Token, Expiration, RoleArn. The lab's SigV4 checks accept them with their session token
while the task runs and until they expire, and refuse them after.

Nothing is stored: the token is signed with the lab's SECRET_KEY and names the access key id,
the task and the expiry; the secret is an HMAC of the access key id under the same key. So a
credential cannot be forged without the key, and the task's own row decides whether it is
still good (a stopped task's credentials stop working at once, as ECS revokes them).
"""
import base64
import hashlib
import hmac
import re
import secrets
from datetime import datetime, timedelta, timezone

from django.conf import settings
from django.core import signing

from orchestrator.models import Task

# How long one set of credentials is good for: ECS's are about six hours, and SDKs ask again
# before they expire (botocore refreshes 15 minutes ahead).
LIFETIME = timedelta(hours=6)
TOKEN_SALT = "fargatelab.task-role-credentials"
_PATH_ID = re.compile(r"([0-9a-f]{32})-([0-9a-f]{32})")


def role_arn(task):
    """The task's role: RunTask's override, else its task definition's ('' for none)."""
    return (task.overrides or {}).get("taskRoleArn") or task.task_definition.body.get("taskRoleArn") or ""


def _digest(*parts):
    message = "\0".join(parts).encode()
    return hmac.new(settings.SECRET_KEY.encode(), message, hashlib.sha256).hexdigest()


def path_id(task, purpose):
    """An id for the task's endpoint paths that only the lab can make (the task's id and an HMAC):
    another task cannot guess a neighbour's from its id."""
    return f"{task.task_id}-{_digest('task-endpoint', purpose, task.task_id)[:32]}"


def task_of_path_id(value):
    """The task a path id names (not yet checked: compare ``path_id(task, purpose)`` with it), else None."""
    match = _PATH_ID.fullmatch(value or "")
    if not match:
        return None
    return Task.objects.select_related("account", "cluster", "task_definition").filter(task_id=match.group(1)).first()


def is_path_id(task, purpose, value):
    """Whether ``value`` is the task's path id for ``purpose`` (compared in constant time)."""
    return hmac.compare_digest(path_id(task, purpose), value or "")


def relative_uri(task):
    """AWS_CONTAINER_CREDENTIALS_RELATIVE_URI of a task with a role ('' without one)."""
    return f"/v2/credentials/{path_id(task, 'credentials')}" if role_arn(task) else ""


def _secret_of(access_key_id):
    raw = hmac.new(settings.SECRET_KEY.encode(), f"task-role-secret\0{access_key_id}".encode(), hashlib.sha256).digest()
    return base64.b64encode(raw).decode()[:40]


def alive(task):
    """Whether a task may still use its credentials (ECS revokes them when the task stops)."""
    return task.desired_status == Task.RUNNING and task.last_status != Task.STOPPED


def issue(task, now=None):
    """A fresh set of the task's role credentials, in the shape the ECS agent serves them."""
    now = now or datetime.now(timezone.utc)
    expires = (now + LIFETIME).replace(microsecond=0)
    access_key_id = "ASIA" + base64.b32encode(secrets.token_bytes(10)).decode()[:16]
    token = signing.dumps({"k": access_key_id, "t": task.task_id, "e": int(expires.timestamp())},
                          salt=TOKEN_SALT, compress=True)
    return {
        "RoleArn": role_arn(task),
        "AccessKeyId": access_key_id,
        "SecretAccessKey": _secret_of(access_key_id),
        "Token": token,
        "Expiration": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


class TaskRoleKey:
    """Temporary credentials of a task's role, as SigV4's checks use an AccessKey."""

    def __init__(self, task, access_key_id, role):
        self.task = task
        self.account = task.account
        self.access_key_id = access_key_id
        self.secret_access_key = _secret_of(access_key_id)
        self.role_arn = role

    @property
    def caller(self):
        """Who called, as CloudTrail names a task role's calls: the assumed role's session (never the key)."""
        name = self.role_arn.rpartition("/")[2][:64] or "task-role"
        return f"arn:aws:sts::{self.account.account_id}:assumed-role/{name}/{self.task.task_id}"


def key_for(access_key_id, token, now=None):
    """The TaskRoleKey that ``token`` was issued with for ``access_key_id``, if still good: signed
    by the lab, for this key id, not expired, its task not stopped and still with a role."""
    try:
        data = signing.loads(token, salt=TOKEN_SALT)
    except (signing.BadSignature, ValueError, TypeError):
        return None
    if not isinstance(data, dict) or data.get("k") != access_key_id or not isinstance(data.get("e"), int):
        return None
    if (now or datetime.now(timezone.utc)).timestamp() >= data["e"]:
        return None
    task = Task.objects.select_related("account", "task_definition").filter(task_id=str(data.get("t"))).first()
    if task is None or not alive(task) or not role_arn(task):
        return None
    return TaskRoleKey(task, access_key_id, role_arn(task))
