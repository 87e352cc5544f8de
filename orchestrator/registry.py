"""ECR: the lab's image registry (any OCI registry, in Kubernetes terms) and its API.

Images live in a real CNCF distribution registry (Debian's ``docker-registry``) that the lab
starts as its own child process, with its own configuration and storage, listening on a Unix
socket only the lab's user can open. Docker reaches it through the lab's gate on
<REGISTRY_LISTEN_ADDRESS>:<REGISTRY_PORT> (the lab's HOST and 5055 by default; see
``registry_auth``), which checks the token GetAuthorizationToken hands out and the account in each
repository path: a repository's URI is ``127.0.0.1:5055/<account id>/<name>`` (on a classroom lab,
the advertised address instead of 127.0.0.1), so two accounts may both have ``web`` and each
reaches only its own. Docker talks plain HTTP to registries on 127.0.0.0/8, so ``docker push``
works there without TLS; a student's machine pushing to a classroom lab lists it as an insecure
registry (README), and the lab's own engine pulls through 127.0.0.1, where the gate always
listens. A registry already on the port (say the Debian package's own service on :5000) is never
used: the lab says so and runs without ECR.

The ECR API subset boto3 and the AWS CLI need (AWS JSON 1.1, target prefix
``AmazonEC2ContainerRegistry_V20150921.``, served by the shared ``JsonService``) keeps
repositories in the state database and asks the registry's HTTP API (on its socket) for images.
"""
import base64
import datetime
import functools
import hashlib
import hmac
import http.client
import json
import logging
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from orchestrator import activity, bus, network
from orchestrator.frontend import wire
from orchestrator.frontend.json_service import JsonService, ServiceError
from orchestrator.models import Repository, acting_in, default_region, region, repository_of_path_name
from orchestrator.registry_auth import IDENTITY_HEADER, Gate, UnixConnection, authorization_token, identity

log = logging.getLogger(__name__)

MANIFEST_TYPES = ", ".join([
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
])
_NAME_RE = re.compile(r"(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*")
_ACCOUNT_DIR = re.compile(r"[0-9]{12}")


class EcrError(ServiceError):
    """An ECR error: its ``__type`` and message (HTTP 400 unless said otherwise)."""


class RegistryError(Exception):
    """The registry process could not be started (no binary, port taken, did not answer)."""


def registry_port():
    return int(settings.FARGATE_LAB.get("REGISTRY_PORT", 5055))


def registry_host():
    """host:port of the registry as students reach it, the first part of every repositoryUri and
    GetAuthorizationToken's proxyEndpoint: 127.0.0.1 on a lab whose gate listens on loopback,
    else the address the lab advertises (see orchestrator/network.py)."""
    bound = network.registry_listen_address()
    if network.is_loopback(bound):
        return f"127.0.0.1:{registry_port()}"
    return f"{network.url_host(network.advertised_host(bound))}:{registry_port()}"


def local_reference(image):
    """``image`` (of the lab's registry) named through 127.0.0.1, where the gate always listens:
    the lab's own engine pulls there, since Docker talks plain HTTP to 127.0.0.0/8 only."""
    host, _, rest = image.partition("/")
    return f"127.0.0.1:{registry_port()}/{rest}" if host != f"127.0.0.1:{registry_port()}" else image


def repository_path(repository):
    """The repository's path in the registry: ``<account id>/<name>`` (``<account id>/<region>/<name>``
    outside the default region, see ``Repository.path_name``)."""
    return f"{repository.account.account_id}/{repository.path_name}"


def repository_uri(repository):
    """What ``docker push`` takes (ECR's repositoryUri): ``127.0.0.1:<port>/<account id>/<name>``."""
    return f"{registry_host()}/{repository_path(repository)}"


def is_registry_image(image):
    """True if ``image`` names a repository of the lab's registry (at its advertised address,
    127.0.0.1 or localhost)."""
    host = image.split("/", 1)[0] if "/" in image else ""
    return host in (registry_host(), f"127.0.0.1:{registry_port()}", f"localhost:{registry_port()}")


def storage_root():
    """Where the registry keeps its blobs and manifests."""
    return Path(settings.FARGATE_LAB.get("REGISTRY_ROOT") or settings.VAR_DIR / "registry")


def upstream_socket(root=None, port=None):
    """The Unix socket the registry listens on (in its storage root, or, when that path is too
    long for a socket, under the temporary directory), derived from the root and the port so
    that every process of one lab finds it."""
    root, port = Path(root or storage_root()), port or registry_port()
    candidate = root / f"registry-{port}.sock"
    if len(str(candidate)) <= 100:
        return candidate
    digest = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"fargate-lab-registry-{digest}-{port}.sock"


# --- the registry process -----------------------------------------------------------------


def _die_with_parent():
    """In the registry's process before exec: ask Linux to end it when the lab's process dies,
    so a lab that crashes (or is killed) leaves no registry behind. (Linux ties this to the
    thread that started it: the lab starts it from a thread that lives as long as the server,
    the lifespan's executor thread or the main thread.)"""
    try:
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:  # not Linux: the registry is stopped by stop() only
        pass


class RegistryProcess:
    """The lab's own registry: the CNCF distribution registry as a child process on a Unix
    socket, and the gate that checks tokens on <REGISTRY_LISTEN_ADDRESS>:<port> (and 127.0.0.1)."""

    def __init__(self, port=None, root=None, binary=None):
        self.port = port or registry_port()
        self.root = Path(root or storage_root())
        self.binary = binary or settings.FARGATE_LAB.get("REGISTRY_BIN") or shutil.which("docker-registry") or shutil.which("registry")
        self.socket = upstream_socket(self.root, self.port)
        self.process = None
        self.gate = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def config(self):
        """The registry's configuration (YAML is a superset of JSON, so JSON is written)."""
        return {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}, "fields": {"service": "registry"}},
            "storage": {"filesystem": {"rootdirectory": str(self.root / "data")}, "delete": {"enabled": True}},
            "http": {"net": "unix", "addr": str(self.socket), "secret": secrets.token_hex(16), "relativeurls": True},
            # Every push is told to the lab, which shows it live (the repository pages).
            "notifications": {"endpoints": [{
                "name": "fargate-lab", "url": notifications_url(), "timeout": "2s", "threshold": 3, "backoff": "1s",
                "headers": {"Authorization": [f"Bearer {notifications_token()}"]},
                "ignoredmediatypes": ["application/octet-stream"],
            }]},
        }

    def start(self, timeout=15):
        """Start the registry and its gate, and wait until the registry answers; raises
        RegistryError with the reason."""
        if not self.binary:
            raise RegistryError("no registry binary: install Debian's docker-registry package (apt-get install docker-registry)")
        address = network.registry_listen_address()
        try:
            self.gate = Gate(self.port, self.socket, self.root, address)
        except OSError as exc:
            raise RegistryError(f"port {self.port} on {address} is taken ({exc.strerror}): "
                                f"{_holder(self.port, self.root)}") from None
        try:
            self._start_registry(timeout)
        except BaseException:
            self.gate.server_close()
            self.gate = None
            raise
        self.gate.start()
        log.info("registry serving on %s (storage %s)", self.url, self.root)

    def _start_registry(self, timeout):
        self.root.mkdir(parents=True, exist_ok=True)
        self.socket.parent.mkdir(parents=True, exist_ok=True)
        self.socket.unlink(missing_ok=True)  # left by a registry that was killed: the gate's port was free
        _move_legacy_repositories(self.root)
        config = self.root / f"config-{self.port}.yml"
        config.write_text(json.dumps(self.config(), indent=2))
        config.chmod(0o600)
        log_file = open(self.root / f"registry-{self.port}.log", "ab")
        self.process = subprocess.Popen([self.binary, "serve", str(config)], stdout=log_file, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        log_file.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = (self.root / f"registry-{self.port}.log").read_text(errors="replace")[-500:]
                raise RegistryError(f"the registry exited with {self.process.returncode}: {tail.strip()}")
            if _upstream_answers(self.socket):
                self.socket.chmod(0o600)  # only the lab's user reaches the registry without the gate
                return
            time.sleep(0.05)  # the child needs a moment to bind; polled against a deadline
        self.stop()
        raise RegistryError(f"the registry did not answer on {self.socket} within {timeout} s")

    def ensure_running(self, timeout=15):
        """Start the lab's registry; True if started, False if this lab's own registry (run by
        another of its processes, e.g. ``manage.py controlplane``) already serves the port.
        Anything else on the port is never used: RegistryError says what holds it."""
        if _gate_identity(self.port) == identity(self.root):
            log.info("this lab's registry already serves %s", self.url)
            return False
        self.start(timeout)
        return True

    def stop(self):
        """Stop the gate and the registry (SIGTERM, then SIGKILL after 10 s)."""
        if self.gate is not None:
            self.gate.stop()
            self.gate = None
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None
        self.socket.unlink(missing_ok=True)


def start_lab_registry():
    """Start (or find, when another process of this lab runs it) the lab's registry; None, with
    a warning, when it cannot run: the rest of the lab runs without ECR."""
    process = RegistryProcess()
    try:
        process.ensure_running()
    except RegistryError as exc:
        log.warning("ECR is not available (%s); the rest of the lab runs without it", exc)
        return None
    return process


def start_problem():
    """Why the lab's registry could not start now (no binary, its port held by another
    program), or None when nothing stands in its way."""
    process = RegistryProcess()
    if not process.binary:
        return "no registry binary: install Debian's docker-registry package (apt-get install docker-registry)"
    held = socket.socket()
    try:
        held.settimeout(1)
        taken = held.connect_ex(("127.0.0.1", process.port)) == 0
    finally:
        held.close()
    if taken and _gate_identity(process.port) != identity(process.root):
        return f"port {process.port} on 127.0.0.1 is taken: {_holder(process.port, process.root)}"
    return None


def _gate_identity(port):
    """The IDENTITY_HEADER of whatever answers GET /v2/ on 127.0.0.1:port ("" if none does, or
    if it is not a Fargate Lab gate)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        connection.request("GET", "/v2/")
        return connection.getresponse().getheader(IDENTITY_HEADER) or ""
    except (OSError, http.client.HTTPException):
        return ""
    finally:
        connection.close()


def _holder(port, root):
    """Words for what holds the registry's port."""
    held = _gate_identity(port)
    if held:
        return "another Fargate Lab's registry (another checkout or FARGATE_LAB_ID) serves it; set FARGATE_LAB_REGISTRY_PORT"
    hint = (" (on a systemd Debian, installing docker-registry also starts a system registry on :5000: "
            "systemctl disable --now docker-registry)") if port == 5000 else ""
    return f"another program holds it{hint}; the lab never uses a registry it did not start: set FARGATE_LAB_REGISTRY_PORT"


def _upstream_answers(path):
    """True if the registry answers GET /v2/ on its socket."""
    connection = UnixConnection(path, timeout=1)
    try:
        connection.request("GET", "/v2/")
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def _move_legacy_repositories(root):
    """Move repositories stored before names were per account (``<name>``) to their account's
    path (``<account id>/<name>``); a no-op once moved, or on fresh storage."""
    base = root / "data/docker/registry/v2/repositories"
    if not base.is_dir() or all(_ACCOUNT_DIR.fullmatch(entry.name) for entry in base.iterdir()):
        return
    for repository in Repository.objects.select_related("account"):
        legacy, moved = base / repository.name, base / repository_path(repository)
        if (legacy / "_manifests").is_dir() and not moved.exists():
            moved.parent.mkdir(parents=True, exist_ok=True)
            legacy.rename(moved)
            log.info("moved repository %s to %s", repository.name, repository_path(repository))


# --- pushes, as the registry tells them -----------------------------------------------------


def notifications_url():
    """Where the registry posts its events: this lab's web server."""
    return f"http://127.0.0.1:{settings.LAB_PORT}/registry/notifications/"


def notifications_token():
    """The bearer token the registry's events carry (derived from the lab's secret key)."""
    return hmac.new(settings.SECRET_KEY.encode(), b"fargate-lab registry notifications", hashlib.sha256).hexdigest()


@csrf_exempt
@require_POST
def notifications(request):
    """The registry's event envelope: each push of a manifest publishes its repository on the
    bus (the pages showing its images re-render) and records a step of the registry."""
    given = request.headers.get("Authorization", "").removeprefix("Bearer ")
    if not hmac.compare_digest(given.encode(), notifications_token().encode()):
        return JsonResponse({"message": "not the lab's registry"}, status=403)
    try:
        events = json.loads(request.body or b"{}").get("events") or []
    except (ValueError, AttributeError):
        return JsonResponse({"message": "not an event envelope"}, status=400)
    for event in events[:100] if isinstance(events, list) else ():
        target = (event.get("target") if isinstance(event, dict) else None) or {}
        if not isinstance(target, dict) or event.get("action") not in ("push", "delete") or not isinstance(target.get("repository"), str):
            continue
        for repo in _repositories_at(target["repository"]):
            bus.publish("repository", repo.pk)
            what = f"{repository_uri(repo)}:{target.get('tag') or target.get('digest', '')}"
            activity.record("registry", event["action"], repo.arn, f"{event['action']} of {what[:400]}")
    return JsonResponse({})


def _repositories_at(path):
    """The repository at registry path ``<account id>/[<region>/]<name>`` (none for any other path)."""
    account_id, _, path_name = path.partition("/")
    where, name = repository_of_path_name(path_name)
    return list(Repository.objects.filter(account__account_id=account_id, region=where, name=name)
                .select_related("account"))


# --- the registry's HTTP API, as the ECR operations need it -------------------------------


def _registry_get(path, accept=None, method="GET"):
    """(status, headers, parsed JSON body or None) of one call to the registry, on its socket.

    The path is percent-encoded: a name stored before validation was strict (or written to the
    database by hand) must give that repository a 404, not break the page listing everyone's."""
    connection = UnixConnection(upstream_socket(), timeout=10)
    try:
        connection.request(method, urllib.parse.quote(path, safe="/:@"), headers={"Accept": accept} if accept else {})
        response = connection.getresponse()
        body = response.read()
        if response.status >= 300:
            return response.status, response.headers, None
        return response.status, response.headers, (json.loads(body) if body else None)
    except (http.client.HTTPException, OSError, ValueError) as exc:
        raise EcrError("ServerException", f"the lab's registry at {registry_host()} does not answer: {exc}", 500) from None
    finally:
        connection.close()


def _image(repository, tag):
    """{digest, tags, size, media type, pushed at} of one tag, or None if it is gone."""
    status, headers, manifest = _registry_get(f"/v2/{repository_path(repository)}/manifests/{tag}", MANIFEST_TYPES)
    if status != 200 or not manifest:
        return None
    digest = headers.get("Docker-Content-Digest", "")
    size = sum(layer.get("size", 0) for layer in manifest.get("layers", []))
    size += (manifest.get("config") or {}).get("size", 0)
    link = storage_root() / "data/docker/registry/v2/repositories" / repository_path(repository) / "_manifests/revisions/sha256" / digest.removeprefix("sha256:") / "link"
    pushed = link.stat().st_mtime if link.exists() else time.time()
    return {"digest": digest, "size": size, "pushed": pushed,
            "media_type": manifest.get("mediaType") or headers.get("Content-Type", "")}


def tags(repository):
    """The repository's tags (one call to the registry); None when the registry does not answer."""
    try:
        status, _, body = _registry_get(f"/v2/{repository_path(repository)}/tags/list")
    except EcrError:
        return None
    return sorted((body or {}).get("tags") or []) if status == 200 else []


def images(repository):
    """The repository's images, one dict per digest with all its tags."""
    status, _, body = _registry_get(f"/v2/{repository_path(repository)}/tags/list")
    if status != 200 or not body:
        return []
    by_digest = {}
    for tag in sorted(body.get("tags") or []):
        image = _image(repository, tag)
        if image is not None:
            by_digest.setdefault(image["digest"], {**image, "tags": []})["tags"].append(tag)
    return list(by_digest.values())


# --- ECR operations -----------------------------------------------------------------------


def _repository_shape(repo):
    return {
        "repositoryArn": repo.arn,
        "registryId": repo.account.account_id,
        "repositoryName": repo.name,
        "repositoryUri": repository_uri(repo),
        "createdAt": repo.created_at.timestamp(),
        "imageTagMutability": repo.image_tag_mutability,
        "imageScanningConfiguration": {"scanOnPush": repo.scan_on_push},
        "encryptionConfiguration": {"encryptionType": repo.encryption_type},
    }


def _get_repository(account, params):
    name = params.get("repositoryName")
    if not isinstance(name, str) or not name:
        raise EcrError("InvalidParameterException", "repositoryName is required")
    repo = Repository.objects.filter(account=account, region=region(), name=name).first()
    if repo is None:
        raise EcrError(
            "RepositoryNotFoundException",
            f"The repository with name '{name[:256]}' does not exist in the registry with id '{account.account_id}'",
        )
    return repo


def _page(rows, params):
    size = params.get("maxResults", 1000)
    if not isinstance(size, int) or not 1 <= size <= 1000:
        raise EcrError("InvalidParameterException", "maxResults must be between 1 and 1000")
    start = wire.ascii_int(params.get("nextToken") or "0")
    if start is None:
        raise EcrError("InvalidParameterException", "Invalid parameter at 'nextToken'")
    return rows[start:start + size], (str(start + size) if start + size < len(rows) else None)


def create_repository(account, params):
    name = params.get("repositoryName")
    if not isinstance(name, str) or not 2 <= len(name) <= 256 or not _NAME_RE.fullmatch(name):
        raise EcrError(
            "InvalidParameterException",
            f"Invalid parameter at 'repositoryName' failed to satisfy constraint: 'must satisfy regular expression "
            f"'{_NAME_RE.pattern}'' (got '{str(name)[:256]}')",
        )
    mutability = params.get("imageTagMutability", "MUTABLE")
    if mutability not in ("MUTABLE", "IMMUTABLE"):
        raise EcrError("InvalidParameterException", "imageTagMutability must be MUTABLE or IMMUTABLE")
    if repository_of_path_name(name)[0] != default_region():
        # Its registry path would be another region's repository's (``Repository.path_name``).
        raise EcrError("InvalidParameterException",
                       f"Invalid parameter at 'repositoryName': in this lab a name may not begin with a region the lab "
                       f"serves ('{name.partition('/')[0]}/'): that path holds that region's repositories")
    try:
        with transaction.atomic():
            repo = Repository.objects.create(
                account=account, name=name, image_tag_mutability=mutability, tags=params.get("tags") or [],
                scan_on_push=bool((params.get("imageScanningConfiguration") or {}).get("scanOnPush")),
            )
    except IntegrityError:
        raise EcrError(
            "RepositoryAlreadyExistsException",
            f"The repository with name '{name}' already exists in the registry with id '{account.account_id}'",
        ) from None
    bus.publish("repository", repo.pk)
    activity.record("registry", "CreateRepository", repo.arn, repository_uri(repo))
    return {"repository": _repository_shape(repo)}


def describe_repositories(account, params):
    rows = list(Repository.objects.filter(account=account, region=region()).select_related("account"))
    names = params.get("repositoryNames")
    if names:
        missing = [n for n in names if n not in {r.name for r in rows}]
        if missing:
            raise EcrError(
                "RepositoryNotFoundException",
                f"The repository with name '{str(missing[0])[:256]}' does not exist in the registry with id '{account.account_id}'",
            )
        rows = [r for r in rows if r.name in names]
    chunk, token = _page(rows, params)
    return {"repositories": [_repository_shape(r) for r in chunk], **({"nextToken": token} if token else {})}


def delete_repository(account, params):
    repo = _get_repository(account, params)
    if not params.get("force") and images(repo):
        raise EcrError(
            "RepositoryNotEmptyException",
            f"The repository with name '{repo.name}' in registry with id '{account.account_id}' cannot be deleted "
            "because it still contains images",
        )
    shape = _repository_shape(repo)
    for image in images(repo):
        _registry_get(f"/v2/{repository_path(repo)}/manifests/{image['digest']}", method="DELETE")
    # The registry's API deletes manifests, not repositories; when its storage is the lab's the
    # repository's directory goes too (unreferenced blobs stay until a garbage collection).
    shutil.rmtree(storage_root() / "data/docker/registry/v2/repositories" / repository_path(repo), ignore_errors=True)
    pk = repo.pk
    repo.delete()
    bus.publish("repository", pk)
    activity.record("registry", "DeleteRepository", shape["repositoryArn"])
    return {"repository": shape}


def remove_account_repositories(account):
    """Delete every repository of ``account`` with its images, and nothing of another account's
    (a teacher's reset of a student); how many repositories went."""
    removed = 0
    for repo in Repository.objects.filter(account=account).select_related("account"):
        try:
            with acting_in(repo.region):
                delete_repository(account, {"repositoryName": repo.name, "force": True})
        except EcrError:  # the registry does not answer: its storage and the row go all the same
            shutil.rmtree(storage_root() / "data/docker/registry/v2/repositories" / repository_path(repo), ignore_errors=True)
            repo.delete()
        removed += 1
    shutil.rmtree(storage_root() / "data/docker/registry/v2/repositories" / account.account_id, ignore_errors=True)
    return removed


def _selected(repo, params):
    """The repository's images narrowed by imageIds (and ImageNotFound for ids not found)."""
    found = images(repo)
    wanted = params.get("imageIds")
    if not wanted:
        return found
    result = []
    for image_id in wanted:
        match = [i for i in found if image_id.get("imageDigest") in (None, i["digest"])
                 and (image_id.get("imageTag") is None or image_id["imageTag"] in i["tags"])]
        if not match:
            raise EcrError(
                "ImageNotFoundException",
                f"The image with imageId {json.dumps(image_id)} does not exist within the repository with name "
                f"'{repo.name}' in the registry with id '{repo.account.account_id}'",
            )
        result += [m for m in match if m not in result]
    return result


def _tag_filter(found, params):
    status = (params.get("filter") or {}).get("tagStatus", "ANY")
    if status == "UNTAGGED":
        return [i for i in found if not i["tags"]]
    if status == "TAGGED":
        return [i for i in found if i["tags"]]
    return found


def list_images(account, params):
    repo = _get_repository(account, params)
    ids = []
    for image in _tag_filter(images(repo), params):
        ids += [{"imageDigest": image["digest"], "imageTag": tag} for tag in image["tags"]] or [{"imageDigest": image["digest"]}]
    chunk, token = _page(ids, params)
    return {"imageIds": chunk, **({"nextToken": token} if token else {})}


def describe_images(account, params):
    repo = _get_repository(account, params)
    details = [
        {
            "registryId": account.account_id, "repositoryName": repo.name, "imageDigest": image["digest"],
            "imageTags": image["tags"], "imageSizeInBytes": image["size"], "imagePushedAt": image["pushed"],
            "imageManifestMediaType": image["media_type"],
        }
        for image in _tag_filter(_selected(repo, params), params)
    ]
    chunk, token = _page(details, params)
    return {"imageDetails": chunk, **({"nextToken": token} if token else {})}


def get_authorization_token(account, params, caller=""):
    """A ``docker login`` token for the caller's own registry (12 hours, as ECR's), tied to the
    access key that asked for it."""
    others = [i for i in params.get("registryIds") or [] if i != account.account_id]
    if others:
        raise _not_your_registry(account, "GetAuthorizationToken", others[0])
    token = base64.b64encode(f"AWS:{authorization_token(account.account_id, caller)}".encode()).decode()
    expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=12)
    return {"authorizationData": [{
        "authorizationToken": token, "expiresAt": expires.timestamp(), "proxyEndpoint": f"http://{registry_host()}",
    }]}


def _in_own_registry(operation, handler):
    """``handler`` as JsonService calls it, refusing first a registryId of another account."""
    @functools.wraps(handler)
    def checked(account, params, caller=""):
        registry_id = params.get("registryId")
        if registry_id not in (None, account.account_id):
            raise _not_your_registry(account, operation, registry_id)
        if handler is get_authorization_token:
            return handler(account, params, caller)
        return handler(account, params)
    return checked


OPERATIONS = {name: _in_own_registry(name, handler) for name, handler in {
    "CreateRepository": create_repository,
    "DescribeRepositories": describe_repositories,
    "DeleteRepository": delete_repository,
    "ListImages": list_images,
    "DescribeImages": describe_images,
    "GetAuthorizationToken": get_authorization_token,
}.items()}
# What the activity log keeps of a call (ECR's requests hold no secrets; tags stay out all the same).
SAFE_PARAMS = ("repositoryName", "registryId", "imageTagMutability", "force", "maxResults")
# ECR words a name that breaks its pattern its own way ("Invalid parameter at 'repositoryName'
# failed to satisfy constraint: 'must satisfy regular expression …'"): create_repository says it.
SERVICE = JsonService("ecr", OPERATIONS, invalid="InvalidParameterException", safe_params=SAFE_PARAMS,
                      server_error="ServerException", component="registry", error=EcrError, patterns=False)
TARGET_PREFIX = SERVICE.target_prefix


def call(account, operation, params, caller=""):
    """Run one ECR operation for ``account`` (``caller``: the access key id that signed it);
    returns the response dict or raises EcrError."""
    return SERVICE.call(account, operation, params, caller)


def api(request):
    """HTTP face of ECR: POST / with X-Amz-Target: AmazonEC2ContainerRegistry_V20150921.<Op>."""
    return SERVICE.api(request)


def _not_your_registry(account, operation, registry_id):
    """The refusal of a call naming another account's registry."""
    return EcrError("AccessDeniedException",
                    f"User: arn:aws:iam::{account.account_id}:user/AWS is not authorized to perform: ecr:{operation} "
                    f"on resource: arn:aws:ecr:{region()}:{str(registry_id)[:64]}:repository/* "
                    "(an account of this lab reaches only its own registry)")
