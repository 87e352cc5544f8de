"""The task endpoint on 169.254.170.2, as the ECS agent serves it to a task (the Downward API's counterpart).

Every container gets ``ECS_CONTAINER_METADATA_URI_V4`` (and ``ECS_CONTAINER_METADATA_URI``, v3,
at the same paths), and a task with a role gets ``AWS_CONTAINER_CREDENTIALS_RELATIVE_URI``
(``orchestrator/task_credentials.py``). The endpoint answers:
- ``/v4/<id>`` (the container), ``/v4/<id>/task``, ``/v4/<id>/stats``, ``/v4/<id>/task/stats``
  (Docker's stats, one sample each), in ECS's shapes;
- ``/v2/credentials/<id>``: the task role's temporary credentials;
- ``$ECS_AGENT_URI/task-protection/v1/state`` (``/api/<id>/…``): GET and PUT the task's scale-in
  protection (``{"ProtectionEnabled": true, "ExpiresInMinutes": 60}``), as the ECS agent serves
  it, through GetTaskProtection and UpdateTaskProtection of the task's own account;
- ``POST /``: the lab's AWS APIs (``AWS_ENDPOINT_URL`` points here), so an SDK in a task reaches
  ECS, Logs, SSM… of its own account with no configuration. Nothing else: the dashboard and the
  admin stay out of a task's reach.

How a task reaches it: the host firewall (``orchestrator/host_firewall.py``) DNATs 169.254.170.2:80
from the lab's bridges to this server on 127.0.0.1, as the ECS agent does for its own. The ids in
the paths are HMACs only the lab can make, and each request must come from an address of that
very task's containers: a task reads only its own metadata and credentials, another account's
task gets the same 404 as an unknown id. The leader's control plane serves it (it owns the rules).
"""
import collections
import json
import logging
import socketserver
import threading
from datetime import timezone as dt_timezone
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from django.conf import settings
from django.db import close_old_connections

from orchestrator import host_firewall, sandbox_pool, task_credentials
from orchestrator.docker_engine import DockerEngine, EngineError, LABEL_PREFIX
from orchestrator.models import Task

log = logging.getLogger(__name__)

ENDPOINT = f"http://{host_firewall.TASK_ENDPOINT_ADDRESS}"
# The largest API request the endpoint passes on (the lab's own APIs take far less).
MAX_BODY = 10 * 1024 * 1024


def _container_purpose(name):
    return f"metadata:{name}"


def _agent_purpose(name):
    return f"agent:{name}"


def environment(task, container_name):
    """The variables ECS sets in one container of a task for its metadata, agent API and credentials."""
    metadata_id = task_credentials.path_id(task, _container_purpose(container_name))
    env = {
        "ECS_CONTAINER_METADATA_URI_V4": f"{ENDPOINT}/v4/{metadata_id}",
        "ECS_CONTAINER_METADATA_URI": f"{ENDPOINT}/v3/{metadata_id}",
        "ECS_AGENT_URI": f"{ENDPOINT}/api/{task_credentials.path_id(task, _agent_purpose(container_name))}",
    }
    if task_credentials.role_arn(task):
        env["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"] = task_credentials.relative_uri(task)
    return env


def page_facts(task):
    """What the task page shows of the endpoint: each container's metadata URI and the role, never
    the credentials (nor their path, though only the task itself could use it)."""
    return {
        "containers": [(c.name, environment(task, c.name)["ECS_CONTAINER_METADATA_URI_V4"]) for c in task.containers.all()],
        "role_arn": task_credentials.role_arn(task),
        "endpoint": ENDPOINT,
    }


# --- shapes (ECS's task metadata v4 JSON for tasks on Fargate) -------------------------------

def _time(value):
    """A datetime as the agent writes it (RFC 3339, UTC)."""
    return value.astimezone(dt_timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if value else None


def _compact(data):
    return {key: value for key, value in data.items() if value not in (None, "")}


def _definition(task, name):
    return next((c for c in task.task_definition.container_definitions if c.get("name") == name), {})


def container_shape(task, container, inspected):
    """One container as ``${ECS_CONTAINER_METADATA_URI_V4}`` answers (``inspected``: Docker's inspect, or {})."""
    definition = _definition(task, container.name)
    state = inspected.get("State") or {}
    networks = (inspected.get("NetworkSettings") or {}).get("Networks") or {}
    address = next(iter(networks.values()), {})
    labels = {key: value for key, value in ((inspected.get("Config") or {}).get("Labels") or {}).items()
              if not key.startswith(LABEL_PREFIX)}
    labels.update({
        "com.amazonaws.ecs.cluster": task.cluster.arn,
        "com.amazonaws.ecs.container-name": container.name,
        "com.amazonaws.ecs.task-arn": task.arn,
        "com.amazonaws.ecs.task-definition-family": task.task_definition.family,
        "com.amazonaws.ecs.task-definition-version": str(task.task_definition.revision),
    })
    log_configuration = definition.get("logConfiguration") or {}
    return _compact({
        "DockerId": container.docker_id,
        "Name": container.name,
        "DockerName": (inspected.get("Name") or "").lstrip("/"),
        "Image": container.image,
        "ImageID": inspected.get("Image"),
        "Labels": labels,
        "DesiredStatus": Task.STOPPED if task.desired_status == Task.STOPPED else Task.RUNNING,
        "KnownStatus": container.last_status,
        "ExitCode": container.exit_code,
        "Limits": {"CPU": container.cpu, "Memory": container.memory or task.memory},
        "CreatedAt": inspected.get("Created"),
        "StartedAt": state.get("StartedAt") if container.started_at else None,
        "FinishedAt": state.get("FinishedAt") if container.last_status == Task.STOPPED else None,
        "Type": "NORMAL",
        "Health": ({"status": container.health_status} if definition.get("healthCheck") else None),
        "ContainerARN": _container_arn(task, container),
        "LogDriver": log_configuration.get("logDriver"),
        "LogOptions": log_configuration.get("options"),
        "Networks": [_compact({
            "NetworkMode": "awsvpc",
            "IPv4Addresses": [address["IPAddress"]] if address.get("IPAddress") else [],
            "AttachmentIndex": 0,
            "MACAddress": address.get("MacAddress"),
            "IPv4SubnetCIDRBlock": f"{address['IPAddress']}/{address['IPPrefixLen']}"
            if address.get("IPAddress") and address.get("IPPrefixLen") else None,
            "SubnetGatewayIpv4Address": address.get("Gateway"),
            "PrivateDNSName": (inspected.get("Config") or {}).get("Hostname"),
        })] if address else [],
    })


def _container_arn(task, container):
    from orchestrator.frontend.shapes import _container_shape

    return _container_shape(task, container)["containerArn"]


def task_shape(task, inspected):
    """The task as ``${ECS_CONTAINER_METADATA_URI_V4}/task`` answers (``inspected``: docker id -> inspect)."""
    from orchestrator.frontend.shapes import availability_zone

    containers = list(task.containers.all())
    return _compact({
        "Cluster": task.cluster.arn,
        "ServiceName": task.service.name if task.service_id else None,
        "TaskARN": task.arn,
        "Family": task.task_definition.family,
        "Revision": str(task.task_definition.revision),
        "DesiredStatus": task.desired_status,
        "KnownStatus": task.last_status,
        "Limits": {"CPU": task.cpu / 1024, "Memory": task.memory},
        "PullStartedAt": _time(task.pull_started_at),
        "PullStoppedAt": _time(task.pull_stopped_at),
        "AvailabilityZone": availability_zone(task.cluster.region),
        "LaunchType": "FARGATE",
        "Containers": [container_shape(task, c, inspected.get(c.docker_id, {})) for c in containers],
        "EphemeralStorageMetrics": {"Utilized": 0, "Reserved": 20496},
    })


# --- answering one request -------------------------------------------------------------------

def _engine(task):
    url = task.container_instance.engine_url if task.container_instance_id else settings.FARGATE_LAB["DOCKER_URL"]
    return DockerEngine.for_url(url)


def _inspect_all(engine, task):
    """Docker's inspect of each of the task's containers that exists (docker id -> data)."""
    found = {}
    for container in task.containers.all():
        if container.docker_id:
            try:
                found[container.docker_id] = engine.inspect(container.docker_id)
            except EngineError:  # removed meanwhile: its metadata says what the lab knows
                continue
    return found


def _addresses(inspected):
    return {n.get("IPAddress") for data in inspected.values()
            for n in ((data.get("NetworkSettings") or {}).get("Networks") or {}).values() if n.get("IPAddress")}


class NotFound(Exception):
    """No such path for this caller (an unknown id, another task's, or the wrong source)."""


def _own_task(path_id, purpose_of, remote_addr):
    """(task, container or None, engine, inspected) for a path id the caller may use, else NotFound."""
    task = task_credentials.task_of_path_id(path_id)
    if task is None:
        raise NotFound()
    container = None
    if purpose_of is not None:
        container = next((c for c in task.containers.all()
                          if task_credentials.is_path_id(task, purpose_of(c.name), path_id)), None)
        if container is None:
            raise NotFound()
    elif not task_credentials.is_path_id(task, "credentials", path_id):
        raise NotFound()
    engine = _engine(task)
    inspected = _inspect_all(engine, task)
    addresses = _addresses(inspected)
    if task.sandbox_id:  # its containers joined a Pod sandbox: theirs is the sandbox's address
        addresses.add(sandbox_pool.pool().address(engine, task.sandbox_id) or task.private_ip)
    if remote_addr not in addresses:  # only the task's own containers may ask
        raise NotFound()
    return task, container, engine, inspected


# The last sample answered per container: the next answer's ``precpu_stats``, as the ECS agent's
# stats (read from Docker's stream) carry the sample before, so that a CPU percentage can be
# computed from one answer. Bounded: old containers' samples go first.
_previous = {}
_previous_lock = threading.Lock()
PREVIOUS_KEPT = 1000


def _stats(engine, docker_id):
    """Docker's stats of one container, with the previous sample this endpoint took as ``precpu_stats``."""
    try:
        sample = engine.stats(docker_id)
    except EngineError:
        return None
    with _previous_lock:
        before = _previous.pop(docker_id, None)
        _previous[docker_id] = {"cpu_stats": sample.get("cpu_stats"), "read": sample.get("read")}
        while len(_previous) > PREVIOUS_KEPT:
            _previous.pop(next(iter(_previous)))
    if before and before["cpu_stats"]:
        sample["precpu_stats"], sample["preread"] = before["cpu_stats"], before["read"]
    return sample


def metadata(path, remote_addr):
    """(status, JSON body) for a GET of a metadata path (``/v4/<id>[/task][/stats]``, or ``/v3/…``)."""
    parts = path.strip("/").split("/")
    if len(parts) < 2 or parts[0] not in ("v3", "v4") or parts[2:] not in ([], ["task"], ["stats"], ["task", "stats"]):
        raise NotFound()
    task, container, engine, inspected = _own_task(parts[1], _container_purpose, remote_addr)
    rest = parts[2:]
    if rest == []:
        return container_shape(task, container, inspected.get(container.docker_id, {}))
    if rest == ["task"]:
        return task_shape(task, inspected)
    if rest == ["stats"]:
        return _stats(engine, container.docker_id) if container.docker_id else None
    return {c.docker_id: _stats(engine, c.docker_id) for c in task.containers.all() if c.docker_id}


def credentials(path, remote_addr):
    """The role credentials for a GET of ``/v2/credentials/<id>``."""
    parts = path.strip("/").split("/")
    if len(parts) != 3 or parts[:2] != ["v2", "credentials"]:
        raise NotFound()
    task, _, _, _ = _own_task(parts[2], None, remote_addr)
    if not task_credentials.role_arn(task) or not task_credentials.alive(task):
        raise NotFound()
    return task_credentials.issue(task)


def _iso(epoch):
    from datetime import datetime

    return datetime.fromtimestamp(epoch, dt_timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def task_protection(path, method, body, remote_addr):
    """(HTTP status, JSON body) for the agent's ``/api/<id>/task-protection/v1/state``: the task's
    protection as GetTaskProtection reads it, or (PUT) as UpdateTaskProtection sets it; ECS's
    refusals in the agent's shapes (``error``, ``failure``)."""
    from orchestrator.frontend import EcsError, call
    from orchestrator.models import acting_in

    parts = path.strip("/").split("/")
    if len(parts) != 5 or parts[0] != "api" or parts[2:] != ["task-protection", "v1", "state"]:
        raise NotFound()
    task, _, _, _ = _own_task(parts[1], _agent_purpose, remote_addr)
    params, operation = {"cluster": task.cluster.arn, "tasks": [task.arn]}, "GetTaskProtection"
    if method == "PUT":
        operation = "UpdateTaskProtection"
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            request = None
        if not isinstance(request, dict) or not isinstance(request.get("ProtectionEnabled"), bool):
            return 400, {"error": {"Code": "InvalidRequest", "Message": "Invalid request: does not contain "
                                                                        "'ProtectionEnabled' field"}}
        params["protectionEnabled"] = request["ProtectionEnabled"]
        if "ExpiresInMinutes" in request:
            if not isinstance(request["ExpiresInMinutes"], int) or isinstance(request["ExpiresInMinutes"], bool):
                return 400, {"error": {"Code": "InvalidRequest", "Message": "Invalid request: ExpiresInMinutes "
                                                                            "must be an integer"}}
            params["expiresInMinutes"] = request["ExpiresInMinutes"]
    try:
        with acting_in(task.cluster.region):
            answer = call(task.account, operation, params, caller="ecs-agent")
    except EcsError as error:
        return 400, {"error": {"Arn": task.arn, "Code": error.error_type, "Message": error.message}}
    if answer.get("failures"):
        failure = answer["failures"][0]
        return 200, {"failure": {"Arn": failure.get("arn"), "Reason": failure.get("reason"),
                                 "Detail": failure.get("detail")}}
    protected = answer["protectedTasks"][0]
    shown = {"ProtectionEnabled": protected["protectionEnabled"], "TaskArn": protected["taskArn"]}
    if protected.get("expirationDate") is not None:
        shown["ExpirationDate"] = _iso(protected["expirationDate"])
    return 200, {"protection": shown}


def _json(start_response, status, body):
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


class Application:
    """The WSGI application of the task endpoint."""

    def __init__(self):
        self._django = None

    def django(self):
        """Django's own handler, for the API calls (made on first use: it loads the middleware)."""
        if self._django is None:
            from django.core.handlers.wsgi import WSGIHandler

            self._django = WSGIHandler()
        return self._django

    def __call__(self, meta, start_response):
        path, method = meta.get("PATH_INFO") or "/", meta.get("REQUEST_METHOD", "GET")
        remote_addr = meta.get("REMOTE_ADDR", "")
        if path == "/" and method == "POST" and ("HTTP_X_AMZ_TARGET" in meta or "HTTP_AUTHORIZATION" in meta):
            return self.django()(meta, start_response)  # an AWS API call (never the dashboard's page at /)
        if path.startswith("/api/") and method in ("GET", "PUT"):
            return self.agent_api(meta, path, method, remote_addr, start_response)
        if method != "GET":
            return _json(start_response, "405 Method Not Allowed", "Method not allowed")
        close_old_connections()
        try:
            if path.startswith("/v2/credentials/"):
                try:
                    return _json(start_response, "200 OK", credentials(path, remote_addr))
                except NotFound:  # the ECS agent's words for an id it has no credentials for
                    return _json(start_response, "400 Bad Request", {
                        "code": "InvalidIdInRequest", "message": "CredentialsV2Request: Credentials not found"})
            try:
                return _json(start_response, "200 OK", metadata(path, remote_addr))
            except NotFound:
                return _json(start_response, "404 Not Found",
                             "V4 container metadata handler: unable to get task arn from request")
        except Exception:  # a bug answers 500 to the task, never takes the endpoint down
            log.exception("task endpoint: %s failed", path[:200])
            return _json(start_response, "500 Internal Server Error", "internal error")
        finally:
            close_old_connections()

    def agent_api(self, meta, path, method, remote_addr, start_response):
        """The agent's task protection API (``task_protection``); 404 for anything else or anyone else's."""
        close_old_connections()
        try:
            length = int(meta.get("CONTENT_LENGTH") or 0)
            body = meta["wsgi.input"].read(min(length, 64 * 1024)) if length > 0 else b""
            status, answer = task_protection(path, method, body, remote_addr)
            return _json(start_response, "200 OK" if status == 200 else "400 Bad Request", answer)
        except (NotFound, ValueError):
            return _json(start_response, "404 Not Found", "404 page not found")
        except Exception:  # a bug answers 500 to the task, never takes the endpoint down
            log.exception("task endpoint: %s failed", path[:200])
            return _json(start_response, "500 Internal Server Error", "internal error")
        finally:
            close_old_connections()


class _Handler(WSGIRequestHandler):
    timeout = 15  # a task that opens a connection and sends nothing holds a thread this long at most

    def log_message(self, format, *args):
        log.debug("task endpoint: %s %s", self.address_string(), format % args)

    def get_environ(self):
        meta = super().get_environ()
        try:
            if int(meta.get("CONTENT_LENGTH") or 0) > MAX_BODY:
                meta["CONTENT_LENGTH"] = "0"
        except ValueError:
            meta["CONTENT_LENGTH"] = "0"
        return meta


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    """A thread per connection, but at most PER_ADDRESS at once from one address and TOTAL in all:
    a task that opens connections by the thousand is refused, not served at the others' expense."""

    daemon_threads = True
    allow_reuse_address = True
    PER_ADDRESS, TOTAL = 8, 128

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._open = collections.Counter()
        self._open_lock = threading.Lock()

    def process_request(self, request, client_address):
        address = client_address[0]
        with self._open_lock:
            if self._open[address] >= self.PER_ADDRESS or sum(self._open.values()) >= self.TOTAL:
                self.shutdown_request(request)
                return
            self._open[address] += 1
        try:
            super().process_request(request, client_address)
        except Exception:  # no thread could start: give the slot back
            self._release(address)
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release(client_address[0])

    def _release(self, address):
        with self._open_lock:
            self._open[address] -= 1
            if self._open[address] <= 0:
                del self._open[address]


class TaskEndpoint:
    """The endpoint's server on 127.0.0.1 (an ephemeral port), on a thread of its own."""

    def __init__(self):
        self.server = None
        self._thread = None

    @property
    def port(self):
        return self.server.server_address[1] if self.server else None

    def start(self):
        """Bind and serve; tell the host firewall where 169.254.170.2:80 now goes."""
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.set_app(Application())
        self._thread = threading.Thread(target=self.server.serve_forever, name="task-endpoint", daemon=True)
        self._thread.start()
        host_firewall.serve_task_endpoint(self.port)
        log.info("task endpoint (metadata, role credentials, APIs) for tasks at %s, served on 127.0.0.1:%d",
                 ENDPOINT, self.port)
        return self

    def stop(self):
        """Stop serving (the firewall's rules go with the control plane's)."""
        host_firewall.serve_task_endpoint(None)
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
