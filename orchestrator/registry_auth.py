"""ECR's front door: Docker reaches the lab's registry only through this gate, which checks each
request's token (GetAuthorizationToken's) and the account in the repository's path.

The CNCF distribution registry listens on a Unix socket only the lab's user can open; this gate
listens on <REGISTRY_LISTEN_ADDRESS>:<REGISTRY_PORT> (the lab's HOST by default, so students on
other machines push to it; always on 127.0.0.1 as well) and forwards a request only when

1. it carries ``Basic AWS:<token>``, a token the lab signed for one account (12 hours, as ECR's),
   whose access key is still active;
2. its repository is ``<that account>/<name>``, a repository the account created (ECR refuses
   pushes to a repository that does not exist);
3. a cross-repository blob mount names a repository of the same account (otherwise the mount is
   dropped and the blob is uploaded: another account's layers are never linked in by digest);
4. it does not overwrite a tag of an IMMUTABLE repository, nor delete (ECR deletes through
   BatchDeleteImage, not the registry API).

Blobs are read through a repository (distribution answers 404 for a digest the repository does
not link), so an account reads only the layers it pushed or pulled through its own repositories.
"""
import base64
import dataclasses
import hashlib
import http.client
import json
import logging
import re
import socket
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from django.conf import settings
from django.core import signing
from django.db import connections

log = logging.getLogger(__name__)

TOKEN_SALT = "fargate-lab.ecr.authorization-token"
TOKEN_SECONDS = 12 * 3600
USERNAME = "AWS"
IDENTITY_HEADER = "X-Fargate-Lab-Registry"
CHUNK = 65536
UPSTREAM_TIMEOUT = 300
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authorization",
               "proxy-authenticate", "authorization", "content-length"}
_REPO_PATH = re.compile(r"^/v2/(?P<name>[a-z0-9._/-]+?)/(?P<kind>manifests|blobs|tags)/(?P<rest>.*)$")
_ACCOUNT_ID = re.compile(r"[0-9]{12}")
_DIGEST = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")


# --- tokens -----------------------------------------------------------------------------------


def authorization_token(account_id, access_key_id=""):
    """The password ``docker login -u AWS`` takes for ``account_id``: signed by the lab, valid
    12 hours; tied to ``access_key_id`` (when given) so that disabling the key revokes it."""
    return signing.dumps({"a": account_id, "k": access_key_id}, salt=TOKEN_SALT, compress=True)


def account_of(password):
    """The account id a token was issued for, or None when it is forged, expired, or its access
    key is disabled or gone."""
    from orchestrator.models import AccessKey

    try:
        claims = signing.loads(password, salt=TOKEN_SALT, max_age=TOKEN_SECONDS)
    except signing.BadSignature:  # includes SignatureExpired
        return None
    account_id, key = claims.get("a"), claims.get("k")
    if not isinstance(account_id, str):
        return None
    if key and not AccessKey.objects.filter(access_key_id=key, account__account_id=account_id, active=True).exists():
        return None
    return account_id


def account_of_header(value):
    """The account id of an ``Authorization: Basic`` header's AWS token, or None."""
    scheme, _, encoded = (value or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return account_of(password) if user == USERNAME and password else None


def pull_credentials(account_id):
    """The credentials the agent hands Docker to pull a task's image: its account's, so a task
    pulls only what its account may."""
    return {"username": USERNAME, "password": authorization_token(account_id)}


# --- what one request may do (pure) -----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Refuse:
    """Answer the client with a registry error (``{"errors": [{code, message}]}``)."""

    status: int
    code: str
    message: str


@dataclasses.dataclass(frozen=True)
class Forward:
    """Forward to the registry as ``target`` (path and query); ``immutable_tag``: refuse if that
    tag already exists (a PUT to an IMMUTABLE repository)."""

    target: str
    immutable_tag: str = ""


@dataclasses.dataclass(frozen=True)
class Catalog:
    """Answer /v2/_catalog with these repository paths (the caller's only)."""

    repositories: list


def _action(method, kind, rest):
    """The ECR permission a registry request needs (for the words of a refusal)."""
    if kind == "tags":
        return "ecr:ListImages"
    if kind == "manifests":
        return {"PUT": "ecr:PutImage", "DELETE": "ecr:BatchDeleteImage"}.get(method, "ecr:BatchGetImage")
    if rest.startswith("uploads"):
        return {"POST": "ecr:InitiateLayerUpload", "PATCH": "ecr:UploadLayerPart"}.get(method, "ecr:CompleteLayerUpload")
    return "ecr:BatchCheckLayerAvailability" if method == "HEAD" else "ecr:GetDownloadUrlForLayer"


def decide(method, path, query, account_id, repositories, region="us-east-1"):
    """What to do with one request: Refuse, Forward or Catalog.

    ``account_id`` is the token's account (None: no valid token); ``repositories`` maps the
    account's repository names to their imageTagMutability."""
    if any(bad in path for bad in ("%", "//", "/./", "/../", "\\")) or path.endswith("/.."):
        return Refuse(400, "NAME_INVALID", "invalid repository path")
    if account_id is None:
        return Refuse(401, "UNAUTHORIZED", "authentication required: docker login -u AWS with the password "
                                           "that aws ecr get-login-password prints")
    if path in ("/v2", "/v2/"):
        return Forward("/v2/")
    if path == "/v2/_catalog":
        return Catalog(sorted(f"{account_id}/{name}" for name in repositories))
    match = _REPO_PATH.match(path)
    if match is None:
        return Refuse(404, "UNSUPPORTED", "the operation is unsupported")
    full, kind, rest = match["name"], match["kind"], match["rest"]
    owner, _, name = full.partition("/")
    action = _action(method, kind, rest)
    if owner != account_id:
        if _ACCOUNT_ID.fullmatch(owner) and name:
            return Refuse(403, "DENIED", f"User: arn:aws:iam::{account_id}:user/AWS is not authorized to perform: "
                                         f"{action} on resource: arn:aws:ecr:{region}:{owner}:repository/{name} "
                                         "(an account reaches only its own repositories)")
        return Refuse(404, "NAME_UNKNOWN", f"The repository with name '{full}' does not exist in the registry with id "
                                           f"'{account_id}': this lab's repository URIs are "
                                           f"<registry>/{account_id}/<name>")
    if name not in repositories:
        return Refuse(404, "NAME_UNKNOWN", f"The repository with name '{name}' does not exist in the registry with id "
                                           f"'{account_id}'")
    if method == "DELETE":
        return Refuse(405, "UNSUPPORTED", f"{action} goes through the ECR API (aws ecr batch-delete-image), "
                                          "not the registry's")
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    if method == "POST" and kind == "blobs" and any(k in ("mount", "from") for k, _ in pairs):
        source = dict(pairs).get("from", "")
        source_owner, _, source_name = source.partition("/")
        if source_owner != account_id or source_name not in repositories:
            # Mounting from another account's repository would hand over its layer by digest:
            # start a plain upload instead (Docker then uploads the blob itself).
            pairs = [(k, v) for k, v in pairs if k not in ("mount", "from")]
    target = path + ("?" + urllib.parse.urlencode(pairs) if pairs else "")
    if method == "PUT" and kind == "manifests" and repositories[name] == "IMMUTABLE" and not _DIGEST.fullmatch(rest):
        return Forward(target, immutable_tag=rest)
    return Forward(target)


# --- the gate's HTTP server ---------------------------------------------------------------------


class UnixConnection(http.client.HTTPConnection):
    """An HTTP connection to the registry's Unix socket."""

    def __init__(self, path, timeout=UPSTREAM_TIMEOUT):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = str(path)

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


def identity(root):
    """What the gate says in IDENTITY_HEADER: the lab and the storage it serves, so a second
    process of the same lab recognises its own registry (and no other) on the port."""
    return hashlib.sha256(f"{settings.FARGATE_LAB['LAB_ID']}:{root}".encode()).hexdigest()[:16]


def _repositories_of(account_id):
    """{path name: imageTagMutability} of the account's repositories, of every region (a region's
    own are named ``<region>/<name>`` in the path, see ``Repository.path_name``)."""
    from orchestrator.models import Repository, repository_path_name

    rows = Repository.objects.filter(account__account_id=account_id).values_list("region", "name", "image_tag_mutability")
    return {repository_path_name(where, name): mutability for where, name, mutability in rows}


class GateHandler(BaseHTTPRequestHandler):
    """One client connection to the gate (keep-alive, HTTP/1.1)."""

    protocol_version = "HTTP/1.1"
    server_version = "FargateLabECR"

    def log_message(self, format, *args):  # the registry's traffic is not the lab's log
        pass

    def handle(self):
        try:
            super().handle()
        finally:
            connections.close_all()  # this thread's database connection ends with it

    def do_request(self):
        split = urllib.parse.urlsplit(self.path)
        account_id = account_of_header(self.headers.get("Authorization"))
        repositories = _repositories_of(account_id) if account_id else {}
        decision = decide(self.command, split.path, split.query, account_id, repositories,
                          settings.FARGATE_LAB.get("REGION", "us-east-1"))
        if isinstance(decision, Refuse):
            return self.refuse(decision)
        if isinstance(decision, Catalog):
            return self.answer(200, json.dumps({"repositories": decision.repositories}).encode())
        if decision.immutable_tag and self.tag_exists(split.path):
            name = split.path.split("/", 3)[3].rsplit("/manifests/", 1)[0]
            return self.refuse(Refuse(400, "TAG_INVALID", f"The image tag '{decision.immutable_tag}' already exists in "
                                                          f"the '{name}' repository and cannot be overwritten because "
                                                          "the repository is immutable."))
        status = self.forward(decision.target)
        if self.command == "PUT" and status == 201:
            self.pushed(account_id, split.path)

    def pushed(self, account_id, path):
        """An image landed: say so on the bus, so the pages and the labs' checks look again."""
        from orchestrator import bus
        from orchestrator.models import Repository

        match = _REPO_PATH.match(path)
        if match is None or match["kind"] != "manifests":
            return
        from orchestrator.models import repository_of_path_name

        where, name = repository_of_path_name(match["name"].partition("/")[2])
        pk = (Repository.objects.filter(account__account_id=account_id, region=where, name=name)
              .values_list("pk", flat=True).first())
        if pk is not None:
            bus.publish_now("repository", pk)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_request

    def refuse(self, refusal):
        """A registry error; the connection closes (any request body is left unread)."""
        self.close_connection = True
        body = json.dumps({"errors": [{"code": refusal.code, "message": refusal.message, "detail": None}]}).encode()
        extra = {"WWW-Authenticate": 'Basic realm="Fargate Lab ECR"'} if refusal.status == 401 else {}
        self.answer(refusal.status, body, {**extra, "Connection": "close"})

    def answer(self, status, body, headers=None):
        self.send_response(status)
        for key, value in {"Content-Type": "application/json; charset=utf-8",
                           "Docker-Distribution-Api-Version": "registry/2.0", IDENTITY_HEADER: self.server.identity,
                           "Content-Length": str(len(body)), **(headers or {})}.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def tag_exists(self, path):
        connection = UnixConnection(self.server.upstream, timeout=30)
        try:
            connection.request("HEAD", path, headers={"Accept": "*/*"})
            return connection.getresponse().status == 200
        finally:
            connection.close()

    def body_chunks(self):
        """The request's body as it arrives (Content-Length or chunked)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                size = int(self.rfile.readline(1024).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):  # trailers
                        pass
                    return
                yield from self._read(size)
                self.rfile.readline(16)  # the CRLF after the chunk
        else:
            yield from self._read(int(self.headers.get("Content-Length") or 0))

    def _read(self, size):
        while size > 0:
            data = self.rfile.read(min(size, CHUNK))
            if not data:
                raise ConnectionError("the client closed the connection mid-body")
            size -= len(data)
            yield data

    def forward(self, target):
        """Send the request to the registry and stream its answer back; its status (None: none came)."""
        upstream = UnixConnection(self.server.upstream)
        relaying = False
        try:
            upstream.putrequest(self.command, target, skip_host=True, skip_accept_encoding=True)
            for key, value in self.headers.items():
                if key.lower() not in _HOP_BY_HOP:
                    upstream.putheader(key, value)
            chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
            if chunked:
                upstream.putheader("Transfer-Encoding", "chunked")
            elif self.headers.get("Content-Length"):
                upstream.putheader("Content-Length", self.headers["Content-Length"])
            upstream.endheaders()
            for data in self.body_chunks():
                upstream.send(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
            if chunked:
                upstream.send(b"0\r\n\r\n")
            response = upstream.getresponse()
            relaying = True
            self.relay(response)
            return response.status
        except (OSError, http.client.HTTPException, ValueError) as exc:
            log.warning("registry request %s %s failed: %s", self.command, target[:200], exc)
            if relaying:  # part of the answer is out: only closing tells the client
                self.close_connection = True
            elif isinstance(exc, ValueError):  # a chunk size that is not hexadecimal
                self.refuse(Refuse(400, "UNSUPPORTED", "malformed chunked request body"))
            else:
                self.refuse(Refuse(503, "UNAVAILABLE", f"the lab's registry does not answer: {exc}"))
        finally:
            upstream.close()

    def relay(self, response):
        """Stream the registry's answer to the client, length-delimited or chunked."""
        self.send_response(response.status, response.reason)
        length = response.getheader("Content-Length")
        for key, value in response.getheaders():
            if key.lower() not in _HOP_BY_HOP:
                self.send_header(key, value)
        self.send_header(IDENTITY_HEADER, self.server.identity)
        bodiless = self.command == "HEAD" or response.status in (204, 304) or 100 <= response.status < 200
        if length is not None:
            self.send_header("Content-Length", length)
        elif not bodiless:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if bodiless:
            return
        while data := response.read(CHUNK):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if length is None else data)
        if length is None:
            self.wfile.write(b"0\r\n\r\n")


class _Listener(ThreadingHTTPServer):
    """The gate on one address."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, port, upstream, identity_):
        if ":" in address:
            self.address_family = socket.AF_INET6
        super().__init__((address, port), GateHandler)
        self.upstream = upstream
        self.identity = identity_


class Gate:
    """The gate on <address>:<port> (the lab's HOST by default), and on 127.0.0.1:<port> too when
    that address is another one (the lab's own engine and processes reach it there), forwarding
    to the registry's socket ``upstream``."""

    def __init__(self, port, upstream, root, address="127.0.0.1"):
        addresses = [address]
        if address not in ("0.0.0.0", "::", "127.0.0.1"):
            addresses.append("127.0.0.1")
        self.listeners = []
        try:
            for bound in addresses:
                self.listeners.append(_Listener(bound, port, str(upstream), identity(root)))
        except OSError:
            self.server_close()
            raise
        self.server_port = self.listeners[0].server_port
        self.threads = []

    def start(self):
        for listener in self.listeners:
            thread = threading.Thread(target=listener.serve_forever, daemon=True,
                                      name=f"ecr-gate-{listener.server_address[0]}-{self.server_port}")
            thread.start()
            self.threads.append(thread)

    def stop(self):
        for listener in self.listeners:
            if any(t.is_alive() for t in self.threads):
                listener.shutdown()
        self.server_close()

    def server_close(self):
        for listener in self.listeners:
            listener.server_close()
