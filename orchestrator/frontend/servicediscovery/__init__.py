"""AWS Cloud Map (service discovery: the names ECS services register their tasks under), at POST /
with ``X-Amz-Target: Route53AutoNaming_v20170314.<Operation>``; the operations are in ``operations``.

DiscoverInstances is served on AWS by a data-plane endpoint: botocore prepends ``data-`` to the
host of the endpoint URL. The lab answers it at either host (it does not look at the host), so
``AWS_DISABLE_HOST_PREFIX_INJECTION=true`` or a host whose ``data-`` name resolves both work."""
from orchestrator.frontend.json_service import JsonService
from orchestrator.frontend.servicediscovery.operations import OPERATIONS, SAFE_PARAMS

SERVICE = JsonService("servicediscovery", OPERATIONS, invalid="InvalidInput", safe_params=SAFE_PARAMS)
TARGET_PREFIX = SERVICE.target_prefix


def api(request):
    """The HTTP face of Cloud Map."""
    return SERVICE.api(request)
