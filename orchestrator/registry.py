"""ECR: the lab's image registry (any OCI registry, in Kubernetes terms) and its API.

Images live in a real CNCF distribution registry (Debian's ``docker-registry``) that the lab
starts on 127.0.0.1:<REGISTRY_PORT> (5000 by default); Docker talks plain HTTP to registries
on 127.0.0.0/8, so ``docker push 127.0.0.1:5000/<repo>`` works without TLS and the agent pulls
task images from it. The registry runs without authentication: ``docker login`` with the
token from GetAuthorizationToken succeeds, as does any other login.

The ECR API subset boto3 and the AWS CLI need (AWS JSON 1.1, target prefix
``AmazonEC2ContainerRegistry_V20150921.``) keeps repositories in the state database and asks
the registry's HTTP API for images.
"""
import base64
import datetime
import functools
import http.client
import json
import logging
import re
import secrets
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import botocore.session
from botocore.validate import ParamValidator
from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import JsonResponse
from django.utils import timezone

from orchestrator import activity, bus, traces
from orchestrator.aws_auth import AuthError, authenticate
from orchestrator.frontend import wire
from orchestrator.models import Repository

log = logging.getLogger(__name__)

TARGET_PREFIX = "AmazonEC2ContainerRegistry_V20150921."
MANIFEST_TYPES = ", ".join([
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
])
_NAME_RE = re.compile(r"(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*")
# The password GetAuthorizationToken hands out; the registry accepts any (it runs without auth).
PASSWORD = "fargate-lab"


class EcrError(Exception):
    """An ECR error: its ``__type`` and message (HTTP 400 unless said otherwise)."""

    def __init__(self, error_type, message, status=400):
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.status = status


class RegistryError(Exception):
    """The registry process could not be started (no binary, port taken, did not answer)."""


def registry_port():
    return int(settings.FARGATE_LAB.get("REGISTRY_PORT", 5000))


def registry_host():
    """host:port of the registry, the first part of every repositoryUri."""
    return f"127.0.0.1:{registry_port()}"


def storage_root():
    """Where the registry keeps its blobs and manifests."""
    return Path(settings.FARGATE_LAB.get("REGISTRY_ROOT") or settings.VAR_DIR / "registry")


# --- the registry process -----------------------------------------------------------------


def _die_with_parent():
    """In the registry's process before exec: ask Linux to end it when the lab's process dies,
    so a lab that crashes (or is killed) leaves no registry behind on its port. (Linux ties this
    to the thread that started it: the lab starts it from a thread that lives as long as the
    server, the lifespan's executor thread or the main thread.)"""
    try:
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:  # not Linux: the registry is stopped by stop() only
        pass


class RegistryProcess:
    """The CNCF distribution registry as a child process of the lab, on 127.0.0.1 only."""

    def __init__(self, port=None, root=None, binary=None):
        self.port = port or registry_port()
        self.root = Path(root or storage_root())
        self.binary = binary or settings.FARGATE_LAB.get("REGISTRY_BIN") or shutil.which("docker-registry") or shutil.which("registry")
        self.process = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def config(self):
        """The registry's configuration (YAML is a superset of JSON, so JSON is written)."""
        return {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}, "fields": {"service": "registry"}},
            "storage": {"filesystem": {"rootdirectory": str(self.root / "data")}, "delete": {"enabled": True}},
            "http": {"addr": f"127.0.0.1:{self.port}", "secret": secrets.token_hex(16)},
        }

    def start(self, timeout=15):
        """Start the registry and wait until it answers /v2/; raises RegistryError with the reason."""
        if not self.binary:
            raise RegistryError("no registry binary: install Debian's docker-registry package (apt-get install docker-registry)")
        if _answers(self.url):
            raise RegistryError(f"port {self.port} on 127.0.0.1 already answers: another registry or server holds it")
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / f"config-{self.port}.yml"
        config.write_text(json.dumps(self.config(), indent=2))
        log_file = open(self.root / f"registry-{self.port}.log", "ab")
        self.process = subprocess.Popen([self.binary, "serve", str(config)], stdout=log_file, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        log_file.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = (self.root / f"registry-{self.port}.log").read_text(errors="replace")[-500:]
                raise RegistryError(f"the registry exited with {self.process.returncode}: {tail.strip()}")
            if _answers(self.url):
                log.info("registry serving on %s", self.url)
                return
            time.sleep(0.05)  # the child needs a moment to bind; polled against a deadline
        self.stop()
        raise RegistryError(f"the registry did not answer on {self.url} within {timeout} s")

    def ensure_running(self, timeout=15):
        """Start the registry unless one already answers on the port (e.g. the Debian package's
        own service on :5000), which is then used as it is; True if we started one."""
        if _answers(self.url):
            log.warning("a registry already answers on %s: using it (its storage is not the lab's)", self.url)
            return False
        self.start(timeout)
        return True

    def stop(self):
        """Stop the registry (SIGTERM, then SIGKILL after 10 s)."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


def start_lab_registry():
    """Start (or reuse) the lab's registry; None, with a warning, when it cannot run: the rest
    of the lab runs without ECR."""
    process = RegistryProcess()
    try:
        process.ensure_running()
    except RegistryError as exc:
        log.warning("ECR is not available (%s); the rest of the lab runs without it", exc)
        return None
    return process


def _answers(url):
    """True if a registry answers GET /v2/ at ``url``."""
    try:
        with urllib.request.urlopen(url + "/v2/", timeout=1) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


# --- the registry's HTTP API, as the ECR operations need it -------------------------------


def _registry_get(path, accept=None, method="GET"):
    """(status, headers, parsed JSON body or None) of one call to the registry.

    The path is percent-encoded: a name stored before validation was strict (or written to the
    database by hand) must give that repository a 404, not break the page listing everyone's."""
    request = urllib.request.Request(f"http://{registry_host()}{urllib.parse.quote(path, safe='/:@')}", method=method)
    if accept:
        request.add_header("Accept", accept)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
            return response.status, response.headers, (json.loads(body) if body else None)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, None
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        raise EcrError("ServerException", f"the lab's registry at {registry_host()} does not answer: {exc}", 500) from None


def _image(repository, tag):
    """{digest, tags, size, media type, pushed at} of one tag, or None if it is gone."""
    status, headers, manifest = _registry_get(f"/v2/{repository.name}/manifests/{tag}", MANIFEST_TYPES)
    if status != 200 or not manifest:
        return None
    digest = headers.get("Docker-Content-Digest", "")
    size = sum(layer.get("size", 0) for layer in manifest.get("layers", []))
    size += (manifest.get("config") or {}).get("size", 0)
    link = storage_root() / "data/docker/registry/v2/repositories" / repository.name / "_manifests/revisions/sha256" / digest.removeprefix("sha256:") / "link"
    pushed = link.stat().st_mtime if link.exists() else time.time()
    return {"digest": digest, "size": size, "pushed": pushed,
            "media_type": manifest.get("mediaType") or headers.get("Content-Type", "")}


def tags(repository):
    """The repository's tags (one call to the registry); None when the registry does not answer."""
    try:
        status, _, body = _registry_get(f"/v2/{repository.name}/tags/list")
    except EcrError:
        return None
    return sorted((body or {}).get("tags") or []) if status == 200 else []


def images(repository):
    """The repository's images, one dict per digest with all its tags."""
    status, _, body = _registry_get(f"/v2/{repository.name}/tags/list")
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
        "repositoryUri": f"{registry_host()}/{repo.name}",
        "createdAt": repo.created_at.timestamp(),
        "imageTagMutability": repo.image_tag_mutability,
        "imageScanningConfiguration": {"scanOnPush": repo.scan_on_push},
        "encryptionConfiguration": {"encryptionType": repo.encryption_type},
    }


def _get_repository(account, params):
    name = params.get("repositoryName")
    if not isinstance(name, str) or not name:
        raise EcrError("InvalidParameterException", "repositoryName is required")
    repo = Repository.objects.filter(account=account, name=name).first()
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
    try:
        with transaction.atomic():
            repo = Repository.objects.create(
                account=account, name=name, image_tag_mutability=mutability, tags=params.get("tags") or [],
                scan_on_push=bool((params.get("imageScanningConfiguration") or {}).get("scanOnPush")),
            )
    except IntegrityError:
        owner = Repository.objects.filter(name=name).values_list("account__account_id", flat=True).first()
        if owner is not None and owner != account.account_id:
            # One registry serves every account of the lab, so names are shared (ECR's are not).
            raise EcrError(
                "RepositoryAlreadyExistsException",
                f"The repository with name '{name}' already exists in the lab's registry, owned by another "
                "account: Fargate Lab's accounts share one registry, so choose another name "
                "(for example with a prefix of your own, as in 'you/" + name[:200] + "').",
            ) from None
        raise EcrError(
            "RepositoryAlreadyExistsException",
            f"The repository with name '{name}' already exists in the registry with id '{account.account_id}'",
        ) from None
    bus.publish("repository", repo.pk)
    activity.record("registry", "CreateRepository", repo.arn, f"{registry_host()}/{name}")
    return {"repository": _repository_shape(repo)}


def describe_repositories(account, params):
    rows = list(Repository.objects.filter(account=account).select_related("account"))
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
        _registry_get(f"/v2/{repo.name}/manifests/{image['digest']}", method="DELETE")
    # The registry's API deletes manifests, not repositories; when its storage is the lab's the
    # repository's directory goes too (unreferenced blobs stay until a garbage collection).
    shutil.rmtree(storage_root() / "data/docker/registry/v2/repositories" / repo.name, ignore_errors=True)
    pk = repo.pk
    repo.delete()
    bus.publish("repository", pk)
    activity.record("registry", "DeleteRepository", shape["repositoryArn"])
    return {"repository": shape}


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


def get_authorization_token(account, params):
    token = base64.b64encode(f"AWS:{PASSWORD}".encode()).decode()
    expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=12)
    return {"authorizationData": [{
        "authorizationToken": token, "expiresAt": expires.timestamp(), "proxyEndpoint": f"http://{registry_host()}",
    }]}


OPERATIONS = {
    "CreateRepository": create_repository,
    "DescribeRepositories": describe_repositories,
    "DeleteRepository": delete_repository,
    "ListImages": list_images,
    "DescribeImages": describe_images,
    "GetAuthorizationToken": get_authorization_token,
}


def call(account, operation, params):
    """Run one ECR operation for ``account``; returns the response dict or raises EcrError."""
    handler = OPERATIONS.get(operation)
    if handler is None:
        raise EcrError("UnknownOperationException", f"Unknown operation {operation[:64]}")
    if not isinstance(params, dict):
        raise EcrError("SerializationException", "The request body must be a JSON object")
    report = ParamValidator().validate(params, _service_model().operation_model(operation).input_shape)
    if report.has_errors():
        raise EcrError("InvalidParameterException", report.generate_report())
    return handler(account, params)


@functools.lru_cache(maxsize=1)
def _service_model():
    """botocore's ECR model, the shapes boto3 and the AWS CLI send."""
    return botocore.session.get_session().get_service_model("ecr")


def api(request):
    """HTTP face of ECR: POST / with X-Amz-Target: AmazonEC2ContainerRegistry_V20150921.<Op>."""
    operation = request.META.get("HTTP_X_AMZ_TARGET", "").removeprefix(TARGET_PREFIX)
    try:
        raw = wire.body(request)
    except wire.Malformed as exc:
        return _answer({"__type": "InvalidParameterException", "message": str(exc)}, 400)
    try:
        key = authenticate(request, "ecr")
    except AuthError as exc:
        return _answer({"__type": exc.code, "message": exc.message}, 403)
    started, started_at, trace_id = time.monotonic(), timezone.now(), traces.new_trace_id()
    try:
        with traces.continuing(trace_id):
            result, status = call(key.account, operation, wire.json_object(raw)), 200
    except wire.Malformed as exc:
        kind = "InvalidParameterException" if isinstance(exc, wire.BadText) else "SerializationException"
        result, status = {"__type": kind, "message": str(exc)}, 400
    except EcrError as exc:
        result, status = {"__type": exc.error_type, "message": exc.message}, exc.status
    except Exception:  # a bug must still answer in ECR's shape, never as a Django error page
        log.exception("ECR %s failed", operation)
        result, status = {"__type": "ServerException", "message": "internal error"}, 500
    traces.record_call("registry", f"api.{operation[:48] or 'unknown'}", trace_id, key.account, started_at,
                       (time.monotonic() - started) * 1000, message=f"ecr {operation} → {status}",
                       caller=key.access_key_id, status_code=status)
    return _answer(result, status)


def _answer(data, status):
    """An AWS JSON 1.1 answer (errors carry their type in ``__type``)."""
    return JsonResponse(data, status=status, content_type="application/x-amz-json-1.1")
