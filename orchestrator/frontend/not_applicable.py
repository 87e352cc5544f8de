"""Operations that only the ECS container agent on an EC2 instance, or EC2 itself, calls.

Fargate Lab runs the Fargate launch type: Fargate manages the container instances, so no
caller registers, drains or updates one, and no agent reports state through the API. Each
is answered with a clear refusal instead of UnknownOperationException.
"""
from orchestrator.frontend import EcsError
from orchestrator.frontend.operations import operation

FARGATE_MANAGED = (
    "Fargate Lab runs the Fargate launch type; container instances are managed by Fargate, "
    "so {what}."
)
DAEMONS = ("ClientException", "daemons, one task per container instance, do not apply")
DAEMON_TASK_DEFINITIONS = ("ClientException", "daemon task definitions do not apply")
REFUSED = {
    "RegisterContainerInstance": ("ClientException", "no EC2 instance registers itself with a cluster"),
    "DeregisterContainerInstance": ("ClientException", "there is no container instance of yours to deregister"),
    "UpdateContainerAgent": ("ClientException", "there is no container agent of yours to update"),
    "UpdateContainerInstancesState": ("ClientException", "there is no container instance of yours to drain"),
    "DiscoverPollEndpoint": ("ClientException", "no container agent of yours polls for work"),
    "SubmitTaskStateChange": ("ClientException", "task state changes come from Fargate, not from an agent of yours"),
    "SubmitContainerStateChange": (
        "ClientException", "container state changes come from Fargate, not from an agent of yours"),
    "SubmitAttachmentStateChanges": (
        "ClientException", "attachment state changes come from Fargate, not from an agent of yours"),
    "StartTask": (
        "InvalidParameterException",
        "StartTask, which places tasks on container instances you name, does not apply: use RunTask"),
    "CreateDaemon": DAEMONS,
    "UpdateDaemon": DAEMONS,
    "DeleteDaemon": DAEMONS,
    "DescribeDaemon": DAEMONS,
    "ListDaemons": DAEMONS,
    "DescribeDaemonDeployments": DAEMONS,
    "ListDaemonDeployments": DAEMONS,
    "DescribeDaemonRevisions": DAEMONS,
    "RegisterDaemonTaskDefinition": DAEMON_TASK_DEFINITIONS,
    "DescribeDaemonTaskDefinition": DAEMON_TASK_DEFINITIONS,
    "ListDaemonTaskDefinitions": DAEMON_TASK_DEFINITIONS,
    "DeleteDaemonTaskDefinition": DAEMON_TASK_DEFINITIONS,
}


def refusal(name):
    """The (error type, message) the lab answers ``name`` with, or None if it does not refuse it."""
    if name not in REFUSED:
        return None
    error_type, what = REFUSED[name]
    return error_type, FARGATE_MANAGED.format(what=what)


def _refuse(name):
    """A handler that refuses ``name`` with its reason."""

    def handler(ctx, params):
        """Refuse the call: it does not apply to Fargate."""
        raise EcsError(*refusal(name))

    return handler


for _name in REFUSED:
    operation(_name)(_refuse(_name))
