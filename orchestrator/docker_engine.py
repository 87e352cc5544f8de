"""The Docker runtime of an instance: the only module that imports ``docker``.

``DockerEngine`` wraps the low-level Docker API with per-operation timeouts and named errors
(``EngineUnavailable``, ``ImageNotFound``, ``InvalidReference``, ``ContainerNotFound``, ``Conflict``, ``NotOwned``),
so no Docker SDK exception leaks out. Ownership is by label: every container the lab creates
carries ``fargatelab.lab=<LAB_ID>``, listings are always filtered by it, and every operation
on a container refuses one that lacks it. No container is ever given privileges, the host
network, bind mounts or extra capabilities (beyond SYS_PTRACE, the one Fargate allows); the only
volumes it mounts are named volumes carrying the lab's label (an account's EFS file systems, a
task's bind mounts).
"""
import hashlib
import ipaddress
import logging
import os
import posixpath
import re
import threading
from urllib.parse import parse_qs, urlsplit, urlunsplit

import docker
import requests
from django.conf import settings

log = logging.getLogger(__name__)

# Every label of the lab's own starts so; a task definition's dockerLabels may not.
LABEL_PREFIX = "fargatelab."
LABEL_LAB = "fargatelab.lab"
LABEL_TASK_ARN = "fargatelab.task-arn"
LABEL_TASK_ID = "fargatelab.task-id"
LABEL_CLUSTER = "fargatelab.cluster"
# A cluster network's account: networks without it were named by cluster alone (shared by
# every account with a cluster of that name) and are migrated away from.
LABEL_ACCOUNT = "fargatelab.account"
LABEL_INSTANCE = "fargatelab.instance"
LABEL_CONTAINER_NAME = "fargatelab.container-name"
# A volume's region and EFS file system (an account's EFS file system is a Docker volume).
LABEL_REGION = "fargatelab.region"
LABEL_EFS_FILE_SYSTEM = "fargatelab.efs-file-system"
LABEL_EFS_ROOT_DIRECTORY = "fargatelab.efs-root-directory"
# The only capability a task may add (as on Fargate): it reaches no further than the container.
ADDABLE_CAPABILITIES = frozenset({"SYS_PTRACE"})

# Seconds a quick call (inspect, list, create, start, remove) may take before the engine is
# called unavailable; pulls and followed log streams are allowed to run as long as they need.
QUICK_TIMEOUT = 30
PULL_TIMEOUT = 1800


class EngineError(Exception):
    """Something the Docker engine refused or could not do."""


class EngineUnavailable(EngineError):
    """No Docker engine answers at the URL (down, restarting, or the call timed out)."""


class ImageNotFound(EngineError):
    """The image is not on the engine, or the registry does not have it."""


class InvalidReference(ImageNotFound):
    """Docker refuses the image reference itself (e.g. upper case in a repository name)."""


class ContainerNotFound(EngineError):
    """No such container (it may have been removed meanwhile)."""


class Conflict(EngineError):
    """A container of that name already exists (or the container is in the wrong state)."""


class NotOwned(EngineError):
    """The container does not carry this lab's label: the lab never touches it."""


# Docker keeps a volume in a directory of its name: well under a file name's 255 bytes.
VOLUME_NAME_MAX = 200


def volume_name_of(text):
    """``text`` as a name Docker accepts for a volume: its other characters become '-', and a
    name too long ends in a digest of the whole instead."""
    name = re.sub(r"[^a-zA-Z0-9_.-]+", "-", text)
    if len(name) > VOLUME_NAME_MAX:
        name = f"{name[:VOLUME_NAME_MAX - 17]}-{hashlib.sha256(name.encode()).hexdigest()[:16]}"
    return name


def lab_id():
    """The id of this lab, the value of the fargatelab.lab label."""
    return settings.FARGATE_LAB["LAB_ID"]


def _translate(exc, what=""):
    """Turn a Docker SDK or transport exception into one of ours."""
    if isinstance(exc, EngineError):
        return exc
    if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
        return EngineUnavailable(f"the Docker engine does not answer ({what}): {exc}")
    if isinstance(exc, docker.errors.ImageNotFound):
        return ImageNotFound(str(exc.explanation or exc))
    if isinstance(exc, docker.errors.NotFound):
        return ContainerNotFound(str(exc.explanation or exc))
    if isinstance(exc, docker.errors.APIError):
        if exc.status_code == 400 and "invalid reference format" in str(exc.explanation or ""):
            return InvalidReference(str(exc.explanation))
        if exc.status_code == 409:
            return Conflict(str(exc.explanation or exc))
        return EngineError(str(exc.explanation or exc))
    if isinstance(exc, docker.errors.DockerException):
        return EngineUnavailable(str(exc))
    return EngineError(f"{type(exc).__name__}: {exc}")


def client_kwargs(url):
    """The Docker SDK client arguments for an engine URL.

    "" is DOCKER_HOST (or the local socket); ``unix:///path`` a socket; ``tcp://host:2376`` or
    ``https://…`` a TCP engine, with TLS from ``?tlscacert=…&tlscert=…&tlskey=…`` (``tlsverify=0``
    skips checking the server's certificate); ``ssh://user@host`` goes through the ssh command.
    """
    if not url:
        return docker.utils.kwargs_from_env()
    parts = urlsplit(url)
    if parts.scheme == "ssh":
        return {"base_url": url, "use_ssh_client": True}
    if parts.scheme in ("tcp", "https", "http") and parts.query:
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        base = urlunsplit(("https" if parts.scheme != "http" else "http", parts.netloc, parts.path, "", ""))
        cert = (query["tlscert"], query["tlskey"]) if query.get("tlscert") and query.get("tlskey") else None
        verify = query.get("tlsverify", "1") not in ("0", "false")
        ca = query.get("tlscacert")
        tls = docker.tls.TLSConfig(client_cert=cert, ca_cert=ca if verify else None, verify=(ca or True) if verify else False)
        return {"base_url": base, "tls": tls}
    return {"base_url": url}


class EventStream:
    """An iterator of Docker events (dicts) that another thread may ``close()``."""

    def __init__(self, stream):
        self._stream = stream

    def __iter__(self):
        try:
            yield from self._stream
        except Exception as exc:  # a daemon going away ends the stream; callers reopen it
            raise _translate(exc, "events") from exc

    def close(self):
        """End the stream (from any thread); the iteration then stops."""
        try:
            self._stream.close()
        except Exception:  # closing a dead socket is fine
            pass


class DockerEngine:
    """One Docker engine (the runtime of one or more instances), addressed by URL."""

    _shared = {}
    _shared_lock = threading.Lock()
    # Called with the engine when this process first uses one of its networks, before any
    # container joins it: the host firewall (orchestrator/host_firewall.py) guards its bridge.
    network_hooks = []

    def __init__(self, url="", lab=None):
        self.url = url
        self.lab = lab or lab_id()
        self._clients = {}
        self._lock = threading.Lock()
        self._network_lock = threading.Lock()
        self._volume_lock = threading.Lock()
        # Container ids known to carry our label, so that acting on them needs no inspect first.
        self._owned = set()
        self._networks = {}
        # Images seen on the engine: a create that finds one gone again says ImageNotFound.
        self._images = set()
        # Subnets of the lab's pool the engine refused as overlapping though no network lists them.
        self._refused_subnets = set()
        self._resources = None

    @classmethod
    def for_url(cls, url="", lab=None):
        """The shared engine object for ``url`` ("" = DOCKER_HOST or the local socket)."""
        key = (url, lab or lab_id())
        with cls._shared_lock:
            if key not in cls._shared:
                if (url or "").startswith("sim://"):  # a simulated runtime: instances without Docker
                    from orchestrator.simulated_engine import SimulatedEngine

                    cls._shared[key] = SimulatedEngine(url, lab=key[1])
                else:
                    cls._shared[key] = cls(url, lab=key[1])
            return cls._shared[key]

    @classmethod
    def from_settings(cls):
        """The engine named by settings.FARGATE_LAB["DOCKER_URL"]."""
        return cls.for_url(settings.FARGATE_LAB["DOCKER_URL"])

    def describe(self):
        """Where the engine is, in words (for messages): its URL without TLS file paths."""
        if not self.url:
            return "the local Docker socket (DOCKER_HOST or /var/run/docker.sock)"
        return self.url.split("?", 1)[0]

    # --- clients --------------------------------------------------------------------------

    def _client(self, timeout=QUICK_TIMEOUT):
        """A low-level API client with this read timeout (None = no timeout), made on first use."""
        with self._lock:
            client = self._clients.get(timeout)
            if client is None:
                try:
                    kwargs = client_kwargs(self.url)
                    client = docker.APIClient(version="auto", timeout=timeout, max_pool_size=32, **kwargs)
                    if client.base_url.startswith("http+docker://"):
                        # A local socket: no proxy applies, so requests need not read the
                        # environment's proxy settings on every call (a tenth of a call's time).
                        client.trust_env = False
                except Exception as exc:
                    raise _translate(exc, "connect") from exc
                self._clients[timeout] = client
            return client

    def _call(self, what, fn, *args, timeout=QUICK_TIMEOUT, **kwargs):
        """Call ``fn(client, …)`` and translate every failure into a named error."""
        try:
            return fn(self._client(timeout), *args, **kwargs)
        except Exception as exc:
            raise _translate(exc, what) from exc

    # --- engine ---------------------------------------------------------------------------

    def ping(self):
        """True if the engine answers; raises EngineUnavailable with a clear message if not."""
        try:
            self._call("ping", lambda c: c.ping(), timeout=5)
        except EngineError as exc:
            raise EngineUnavailable(
                f"No Docker engine answers at {self.describe()}: start Docker "
                f"(e.g. `sudo systemctl start docker`) and try again. ({exc})"
            ) from exc
        return True

    def resources(self):
        """The engine's CPUs and memory as ``docker info`` reports them: (CPU units, MiB).

        Asked once per engine object: a daemon's CPU count and memory do not change while it runs."""
        if self._resources is None:
            info = self._call("info", lambda c: c.info())
            self._resources = (int(info.get("NCPU") or 0) * 1024, int(info.get("MemTotal") or 0) // (1024 * 1024))
        return self._resources

    def events(self, since=None, filters=None):
        """The engine's container events for this lab, as an ``EventStream`` (blocks while quiet)."""
        merged = {"type": "container", "label": [f"{LABEL_LAB}={self.lab}"]}
        for key, value in (filters or {}).items():
            if key == "label":
                merged["label"] = merged["label"] + list(value if isinstance(value, list) else [value])
            else:
                merged[key] = value
        stream = self._call("events", lambda c: c.events(since=since, filters=merged, decode=True))
        return EventStream(stream)

    # --- images ---------------------------------------------------------------------------

    def image_present(self, image):
        """True if the image is on the engine (remembered once seen; see ``forget_image``).

        Raises InvalidReference if Docker refuses the reference: no pull could ever find it."""
        if image in self._images:
            return True
        try:
            self._call("inspect image", lambda c: c.inspect_image(image))
        except InvalidReference:
            raise
        except (ImageNotFound, ContainerNotFound):
            return False
        self._images.add(image)
        return True

    def image_volumes(self, image):
        """The paths the image declares as VOLUMEs (an empty set for an image not on the engine)."""
        try:
            data = self._call("inspect image", lambda c: c.inspect_image(image))
        except (ImageNotFound, ContainerNotFound):
            return set()
        return {posixpath.normpath(path) for path in (data.get("Config") or {}).get("Volumes") or {}}

    def local_image_tags(self):
        """The engine's image tags that name no registry host (``fargate-lab/demo:latest``, not
        ``127.0.0.1:5000/…``): images built or loaded here, which any account may use. Those
        pulled from a registry are left out: they would name other accounts' repositories."""
        tags = set()
        for image in self._call("images", lambda c: c.images()):
            for tag in image.get("RepoTags") or ():
                first = tag.split("/", 1)[0]
                if tag == "<none>:<none>" or ("/" in tag and ("." in first or ":" in first or first == "localhost")):
                    continue
                tags.add(tag)
        return sorted(tags)

    def forget_image(self, image):
        """Stop assuming ``image`` is present (a create said it is not)."""
        self._images.discard(image)

    def pull(self, image, progress=None, auth=None, as_name=None):
        """Pull ``image`` (with the registry credentials ``auth``, a {username, password} dict,
        when given), calling ``progress(dict)`` for each progress message; raises ImageNotFound.
        ``as_name``: tag what was pulled with this name too (the same registry named by another
        address, as a task's image names it)."""
        repository, tag = _split_image(image)

        def run(client):
            for message in client.pull(repository, tag=tag, stream=True, decode=True, auth_config=auth):
                if "error" in message:
                    raise ImageNotFound(message.get("error", "pull failed"))
                if progress:
                    progress(message)
            if as_name and as_name != image:
                client.tag(image, *_split_image(as_name))

        try:
            self._call("pull", run, timeout=PULL_TIMEOUT)
        except EngineUnavailable:
            raise
        except EngineError as exc:
            raise ImageNotFound(str(exc)) from exc

    # --- networks -------------------------------------------------------------------------

    def ensure_network(self, name, labels=None):
        """The id of bridge network ``name``, created (labelled with the lab) if missing."""
        with self._lock:
            if name in self._networks:
                return self._networks[name]
        labels = {LABEL_LAB: self.lab, **(labels or {})}

        def run(client):
            found = [n for n in client.networks(names=[name]) if n["Name"] == name]
            if found:
                return found[0]["Id"]
            for attempt in range(16):
                subnet = self._free_subnet(client)
                ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=subnet)]) if subnet else None
                try:
                    return client.create_network(name, driver="bridge", labels=labels, check_duplicate=True,
                                                 ipam=ipam)["Id"]
                except docker.errors.APIError as exc:
                    # Another process took that /24 meanwhile, or the engine still holds it for a
                    # network it lost (a daemon restart can leave a pool allocated): choose another.
                    if "overlaps" not in str(exc) or not subnet or attempt == 15:
                        raise
                    self._refused_subnets.add(ipaddress.ip_network(subnet))

        with self._network_lock:  # one creator at a time: Docker 20.10 allows duplicate network names
            network_id = self._call("network", run)
            with self._lock:
                self._networks[name] = network_id
        for hook in DockerEngine.network_hooks:
            hook(self)
        return network_id

    def _free_subnet(self, client):
        """A /24 of NETWORK_POOL that no network of the engine (and, for a local engine, no route
        of this host) overlaps, or None to let Docker choose. Docker's own default pools hold
        about 30 bridge networks: a class of 30 students, a network each, would exhaust them."""
        pool = settings.FARGATE_LAB.get("NETWORK_POOL")
        if not pool:
            return None
        taken = []
        for network in client.networks():
            for config in (network.get("IPAM") or {}).get("Config") or []:
                try:
                    taken.append(ipaddress.ip_network(config.get("Subnet") or "", strict=False))
                except ValueError:
                    continue
        if self.is_local:
            taken += _host_routes()
        taken += self._refused_subnets
        for subnet in ipaddress.ip_network(pool).subnets(new_prefix=24):
            if not any(subnet.overlaps(other) for other in taken if other.version == 4):
                return str(subnet)
        raise EngineError(f"every /24 of the lab's network pool {pool} is in use (FARGATE_LAB_NETWORK_POOL)")

    @property
    def is_local(self):
        """Whether the engine runs on this host (a unix socket): its bridges are this host's interfaces."""
        url = self.url or os.environ.get("DOCKER_HOST", "")
        return url == "" or url.startswith("unix://")

    def bridge_interfaces(self):
        """The host interface names of this lab's bridge networks (``br-<id12>`` unless named)."""
        def run(client):
            names = []
            for network in client.networks(filters={"label": [f"{LABEL_LAB}={self.lab}"], "driver": "bridge"}):
                options = network.get("Options") or {}
                names.append(options.get("com.docker.network.bridge.name") or f"br-{network['Id'][:12]}")
            return sorted(names)

        return self._call("networks", run)

    def forget_network(self, name):
        """Drop a cached network id (e.g. after an engine restart removed it)."""
        with self._lock:
            self._networks.pop(name, None)

    def remove_network(self, name):
        """Remove one of this lab's networks (no-op if missing or not ours)."""
        def run(client):
            for network in client.networks(names=[name]):
                if network["Name"] == name and (network.get("Labels") or {}).get(LABEL_LAB) == self.lab:
                    client.remove_network(network["Id"])

        self.forget_network(name)
        try:
            self._call("remove network", run)
        except (ContainerNotFound, Conflict):
            pass

    def remove_network_if_unused(self, name):
        """Remove one of this lab's networks if no container is attached to it; True if removed."""
        def run(client):
            for network in client.networks(names=[name]):
                detail = client.inspect_network(network["Id"])
                if (detail["Name"] == name and (detail.get("Labels") or {}).get(LABEL_LAB) == self.lab
                        and not detail.get("Containers")):
                    client.remove_network(network["Id"])
                    return True
            return False

        self.forget_network(name)
        try:
            with self._network_lock:
                return self._call("remove network", run)
        except (ContainerNotFound, Conflict):
            return False
        except EngineUnavailable:
            raise
        except EngineError as exc:  # a container joined it meanwhile: it stays, in use
            log.info("network %s stays: %s", name, exc)
            return False

    def remove_unused_networks(self, legacy_only=False, labels=None):
        """Remove this lab's networks that no container uses any more; returns their names.

        ``legacy_only``: only those of the older naming, without an account label; ``labels``:
        only those carrying these labels too (an account's: ``{LABEL_ACCOUNT: id}``)."""
        wanted = [f"{LABEL_LAB}={self.lab}"] + [f"{k}={v}" for k, v in (labels or {}).items()]

        def run(client):
            removed = []
            for network in client.networks(filters={"label": wanted}):
                if legacy_only and LABEL_ACCOUNT in (network.get("Labels") or {}):
                    continue
                detail = client.inspect_network(network["Id"])
                if (detail.get("Labels") or {}).get(LABEL_LAB) == self.lab and not detail.get("Containers"):
                    client.remove_network(network["Id"])
                    removed.append(network["Name"])
            return removed

        with self._lock:
            self._networks.clear()
        try:
            with self._network_lock:
                return self._call("prune networks", run)
        except (ContainerNotFound, Conflict):
            return []

    # --- volumes --------------------------------------------------------------------------

    def ensure_volume(self, name, labels):
        """Create named volume ``name`` (local driver, labelled with the lab) if missing; returns
        True if this call created it. A volume of that name without our label is NotOwned."""
        labels = {LABEL_LAB: self.lab, **labels}

        def run(client):
            try:
                found = client.inspect_volume(name)
            except docker.errors.NotFound:
                client.create_volume(name, driver="local", labels=labels)
                return True
            if (found.get("Labels") or {}).get(LABEL_LAB) != self.lab:
                raise NotOwned(f"volume {name} does not carry {LABEL_LAB}={self.lab}; not using it")
            return False

        with self._volume_lock:  # one creator at a time, so that "created" is said once
            return self._call("volume", run)

    def list_volumes(self, labels=None):
        """This lab's named volumes carrying these labels too: [{"name", "labels"}]."""
        wanted = [f"{LABEL_LAB}={self.lab}"] + [f"{k}={v}" for k, v in (labels or {}).items()]
        found = self._call("volumes", lambda c: c.volumes(filters={"label": wanted}).get("Volumes") or [])
        return [{"name": v["Name"], "labels": v.get("Labels") or {}} for v in found
                if (v.get("Labels") or {}).get(LABEL_LAB) == self.lab]

    def remove_volumes(self, labels=None):
        """Remove this lab's volumes carrying these labels too that no container uses; returns
        the names removed (one in use stays, and is removed by a later call)."""
        removed = []
        for volume in self.list_volumes(labels):
            try:
                self._call("remove volume", lambda c: c.remove_volume(volume["name"]))
                removed.append(volume["name"])
            except (Conflict, ContainerNotFound):  # in use, or gone meanwhile
                continue
        return removed

    def run_helper(self, spec, timeout=60):
        """Run a short-lived container of the lab (a ``create_container`` spec, with ``mounts``)
        to completion and remove it; returns (exit code, output), -1 if it outlived ``timeout``
        seconds. It has no network."""
        container = self.create_container({**spec, "network": "none"})
        try:
            self._call("start", lambda c: c.start(container))
            try:
                status = self._call("wait", lambda c: c.wait(container, timeout=timeout), timeout=timeout + 5)
            except EngineUnavailable:  # the wait's own timeout, unless the engine is gone: ping says
                self.ping()
                return -1, f"the helper container did not finish within {timeout} s"
            output = self._call("logs", lambda c: c.logs(container, stdout=True, stderr=True, tail=20))
            return status.get("StatusCode", -1), output.decode("utf-8", "replace").strip()
        finally:
            self.remove(container)

    def move_to_network(self, container, network, aliases=None):
        """Attach one of our containers to ``network`` (with its DNS ``aliases`` there) and detach
        it from every other network; returns the names of the networks it left."""
        self._check_owned(container)

        def run(client):
            attached = client.inspect_container(container)["NetworkSettings"]["Networks"] or {}
            if network not in attached:
                client.connect_container_to_network(container, network, aliases=aliases or None)
            left = [name for name in attached if name != network]
            for name in left:
                client.disconnect_container_from_network(container, name)
            return left

        return self._call("move network", run)

    # --- containers -----------------------------------------------------------------------

    def list_containers(self, labels=None, all=True):
        """Summaries of this lab's containers, optionally filtered by more labels.

        Each is a dict: id, name, labels, state (created, running, exited, …), status, networks.
        """
        wanted = [f"{LABEL_LAB}={self.lab}"] + [f"{k}={v}" for k, v in (labels or {}).items()]
        rows = self._call("list", lambda c: c.containers(all=all, filters={"label": wanted}))
        result = []
        for row in rows:
            row_labels = row.get("Labels") or {}
            if row_labels.get(LABEL_LAB) != self.lab:
                continue
            self._owned.add(row["Id"])
            result.append({
                "id": row["Id"],
                "name": (row.get("Names") or ["/"])[0].lstrip("/"),
                "labels": row_labels,
                "state": row.get("State", ""),
                "status": row.get("Status", ""),
                "health": _health_of_status(row.get("Status", "")),
                "exit_code": _exit_code_of_status(row.get("Status", "")),
                "networks": sorted((row.get("NetworkSettings") or {}).get("Networks") or {}),
            })
        return result

    def create_container(self, spec):
        """Create a container from a ``spec`` dict; returns its id. Raises Conflict if the name exists.

        spec keys: name, image, labels, env (dict), entrypoint, command, working_dir, user,
        nano_cpus, memory (bytes), memory_reservation (bytes), ports [(port, "tcp"|"udp")],
        publish_address, network, aliases (DNS names on that network), hostname, stop_timeout; read_only, cap_add, cap_drop, init,
        ulimits [(name, soft, hard)], sysctls (dict), interactive, tty, docker_labels (dict: the
        task definition's own labels; never one of the lab's fargatelab.* labels); pids_limit,
        log_max_size (e.g. "10m") and log_max_file (the output's rotation on disk), log_address (the
        paced log reader's ``unix://`` address, or None for json-file); healthcheck
        (a container definition's healthCheck: command, interval, timeout, retries, startPeriod);
        mounts [(volume name, container path, read only[, copy])]: named volumes of this lab only
        (never a host path); only with ``copy`` does Docker copy the image's files at the path into
        an empty volume.
        """
        extra = sorted(set(spec.get("cap_add") or []) - ADDABLE_CAPABILITIES)
        if extra:
            raise EngineError(f"adding capabilities {', '.join(extra)} is not allowed")
        labels = {k: str(v) for k, v in (spec.get("docker_labels") or {}).items()
                  if not k.lower().startswith(LABEL_PREFIX)}
        labels.update(spec.get("labels") or {})
        labels[LABEL_LAB] = self.lab
        ports = [(int(p), (proto or "tcp").lower()) for p, proto in spec.get("ports") or []]
        address = spec.get("publish_address") or "127.0.0.1"
        # "container:<id>": the container joins another's network namespace (a Pod sandbox), where
        # Docker can neither publish ports nor give it an endpoint (aliases) of its own.
        joins = (spec.get("network") or "").startswith("container:")
        if joins and (ports or spec.get("aliases")):
            raise EngineError("a container that joins another's network has no ports or aliases of its own")

        def run(client):
            host_config = client.create_host_config(
                nano_cpus=spec.get("nano_cpus") or None,
                mem_limit=spec.get("memory") or None,
                mem_reservation=spec.get("memory_reservation") or None,
                port_bindings={f"{p}/{proto}": (address,) for p, proto in ports} or None,
                network_mode=spec.get("network") or None,
                init=bool(spec.get("init")),
                read_only=bool(spec.get("read_only")) or None,
                cap_add=list(spec.get("cap_add") or []) or None,
                cap_drop=list(spec.get("cap_drop") or []) or None,
                ulimits=[docker.types.Ulimit(name=n, soft=soft, hard=hard)
                         for n, soft, hard in spec.get("ulimits") or []] or None,
                sysctls=dict(spec.get("sysctls") or {}) or None,
                pids_limit=spec.get("pids_limit") or None,
                log_config=_log_config(spec),
                mounts=[docker.types.Mount(target, source, type="volume", read_only=bool(read_only),
                                           no_copy=not (copy and copy[0]))
                        for source, target, read_only, *copy in spec.get("mounts") or []] or None,
            )
            networking = None
            if spec.get("network") and not joins:
                networking = client.create_networking_config(
                    {spec["network"]: client.create_endpoint_config(aliases=spec.get("aliases") or None)}
                )
            created = client.create_container(
                image=spec["image"],
                name=spec["name"],
                labels=labels,
                environment=spec.get("env") or None,
                entrypoint=spec.get("entrypoint") or None,
                command=spec.get("command") or None,
                working_dir=spec.get("working_dir") or None,
                user=spec.get("user") or None,
                hostname=spec.get("hostname") or None,
                ports=[(p, proto) for p, proto in ports] or None,
                stop_timeout=spec.get("stop_timeout"),
                healthcheck=_healthcheck(spec.get("healthcheck")),
                stdin_open=bool(spec.get("interactive")),
                tty=bool(spec.get("tty")),
                host_config=host_config,
                networking_config=networking,
                detach=True,
            )
            return created["Id"]

        container_id = self._call("create", run)
        self._owned.add(container_id)
        return container_id

    def import_image(self, data, reference, changes=()):
        """Import a root file system (a tar archive's bytes) as image ``reference`` ("repo:tag"),
        with Dockerfile ``changes`` such as ``CMD [...]`` (``docker import``: no registry needed)."""
        repository, tag = _split_image(reference)
        self._call("import", lambda c: c.import_image_from_data(data, repository=repository, tag=tag,
                                                                 changes=list(changes) or None),
                   timeout=PULL_TIMEOUT)
        with self._lock:
            self._images.discard(reference)

    def inspect(self, container):
        """The engine's full description of one of our containers (raises NotOwned for others)."""
        data = self._call("inspect", lambda c: c.inspect_container(container))
        if (data.get("Config", {}).get("Labels") or {}).get(LABEL_LAB) != self.lab:
            raise NotOwned(f"container {container} does not carry {LABEL_LAB}={self.lab}; not touching it")
        self._owned.add(data["Id"])
        return data

    def _check_owned(self, container):
        """Refuse containers without our label (inspects those not seen before)."""
        if container not in self._owned:
            self.inspect(container)

    def start(self, container):
        """Start one of our containers (no-op if it already runs)."""
        self._check_owned(container)
        self._call("start", lambda c: c.start(container))

    def stop(self, container, timeout=30):
        """Stop one of our containers: SIGTERM, then SIGKILL after ``timeout`` seconds."""
        self._check_owned(container)
        self._call("stop", lambda c: c.stop(container, timeout=timeout), timeout=QUICK_TIMEOUT)

    def signal_stop(self, container):
        """Send one of our containers its stop signal (the image's STOPSIGNAL, else SIGTERM),
        without waiting for it to exit; returns the signal sent."""
        signal = (self.inspect(container).get("Config") or {}).get("StopSignal") or "SIGTERM"
        self._call("kill", lambda c: c.kill(container, signal=signal))
        return signal

    def kill(self, container, signal="SIGKILL"):
        """Send a signal to one of our containers (SIGKILL by default)."""
        self._check_owned(container)
        self._call("kill", lambda c: c.kill(container, signal=signal))

    def remove(self, container, force=True):
        """Remove one of our containers (force: even if it runs) and its anonymous volumes (those
        Docker made for an image's VOLUME no mount covers; named volumes stay); no-op if it is
        already gone."""
        try:
            self._check_owned(container)
            self._call("remove", lambda c: c.remove_container(container, force=force, v=True))
        except ContainerNotFound:
            pass
        except EngineError as exc:
            # "removal already in progress" is a 409: someone else got there first.
            if "already in progress" not in str(exc):
                raise
        self._owned.discard(container)

    def stats(self, container):
        """One sample of one of our containers' resource use, in Docker's stats shape (``cpu_stats``,
        ``memory_stats``, ``read``…), read at once: ``one-shot`` skips the second sample that makes a
        plain ``docker stats --no-stream`` wait a second or two, so ``precpu_stats`` is empty and the
        caller derives rates from two samples of its own."""
        self._check_owned(container)
        return self._call("stats", lambda c: c.stats(container, stream=False, one_shot=True), timeout=10)

    def logs(self, container, follow=False, tail=200, timestamps=False, since=None):
        """The container's output as an iterator of text lines (follows new output if asked);
        with ``timestamps`` each line starts with Docker's RFC 3339 time of it, and ``since``
        (epoch seconds) skips what came before."""
        self._check_owned(container)
        tail_arg = "all" if tail is None else int(tail)
        extra = {"timestamps": timestamps, **({"since": float(since)} if since else {})}
        if not follow:
            raw = self._call("logs", lambda c: c.logs(container, stdout=True, stderr=True, tail=tail_arg, **extra))
            return iter(raw.decode("utf-8", "replace").splitlines())
        stream = self._call(
            "logs", lambda c: c.logs(container, stdout=True, stderr=True, stream=True, follow=True, tail=tail_arg,
                                     **extra),
            timeout=None,
        )
        return LogStream(stream)

    def exec_session(self, container, command, rows=24, cols=80):
        """An interactive ``docker exec -it`` of ``command`` in one of our containers: an
        ExecSession to read its terminal output from and write keystrokes to."""
        self._check_owned(container)
        exec_id = self._call("exec", lambda c: c.exec_create(container, command, stdin=True, tty=True,
                                                              environment={"TERM": "xterm-256color"}))["Id"]
        sock = self._call("exec", lambda c: c.exec_start(exec_id, tty=True, socket=True), timeout=None)
        session = ExecSession(self, exec_id, getattr(sock, "_sock", sock))
        session.resize(rows, cols)
        return session


class ExecSession:
    """One interactive exec's terminal: ``recv`` blocks for output ("" once it ended), ``send``
    writes input, ``resize`` sets the terminal size, ``close`` (from any thread) ends it."""

    def __init__(self, engine, exec_id, sock):
        self.engine, self.exec_id, self._sock = engine, exec_id, sock

    def recv(self, size=4096):
        """Up to ``size`` bytes of terminal output; b"" when the command ended."""
        try:
            return self._sock.recv(size)
        except OSError:
            return b""

    def send(self, data):
        """Write keystrokes (bytes) to the command's terminal."""
        self._sock.sendall(data)

    def resize(self, rows, cols):
        """Set the terminal's size (the command may not have started yet: then it is ignored)."""
        try:
            self.engine._call("exec", lambda c: c.exec_resize(self.exec_id, height=int(rows), width=int(cols)))
        except EngineError:
            pass

    def close(self):
        """End the session: the socket closes, and a waiting ``recv`` returns b""."""
        try:
            self._sock.shutdown(2)
        except OSError:
            pass
        try:
            self._sock.close()
        except OSError:
            pass


class LogStream:
    """A followed container log as text lines, which another thread may ``close()``.

    A follow holds a thread and an engine connection until the container exits; a reader
    that is no longer wanted (the page closed) closes the stream to free both at once.
    """

    def __init__(self, stream):
        self._stream = stream

    def __iter__(self):
        return _lines(self._stream)

    def close(self):
        """End the stream (from any thread): its connection closes and the iteration stops."""
        try:
            self._stream.close()
        except Exception:  # closing a dead socket is fine
            pass


def _host_routes():
    """The IPv4 networks this host routes to (not its default route), from /proc/net/route."""
    routes = []
    try:
        with open("/proc/net/route") as table:
            next(table)
            for line in table:
                fields = line.split()
                destination, mask = (ipaddress.IPv4Address(int(value, 16).to_bytes(4, "little")) for value in
                                     (fields[1], fields[7]))
                if int(mask):
                    routes.append(ipaddress.ip_network(f"{destination}/{mask}", strict=False))
    except (OSError, StopIteration, ValueError, IndexError):
        pass
    return routes


def _log_config(spec):
    """Where the container's output goes (None: the engine's default driver). With a
    ``log_address``, Docker's syslog driver to the lab's paced reader (``paced_logs``), the output
    kept for ``docker logs`` by Docker's dual-logging cache, which Docker bounds itself (5 files
    of 20 MB, the older ones compressed: Docker 20.10 accepts cache-max-size and cache-max-file
    but does not apply them, measured); else json-file, rotated at log_max_size × log_max_file."""
    if not spec.get("log_max_size"):
        return None
    if spec.get("log_address"):
        # cache-disabled: a daemon default that turns the cache off would leave no docker logs.
        return docker.types.LogConfig(type="syslog", config={
            "syslog-address": spec["log_address"], "cache-disabled": "false"})
    return docker.types.LogConfig(type="json-file", config={
        "max-size": str(spec["log_max_size"]), "max-file": str(spec.get("log_max_file") or 1)})


def _healthcheck(check):
    """Docker's health check for an ECS healthCheck (seconds become nanoseconds), or None."""
    if not check:
        return None
    second = 1_000_000_000
    return {
        "test": list(check["command"]),
        "interval": int(check.get("interval", 30) * second),
        "timeout": int(check.get("timeout", 5) * second),
        "retries": int(check.get("retries", 3)),
        "start_period": int((check.get("startPeriod") or 0) * second),
    }


def _health_of_status(status):
    """The health ("starting", "healthy", "unhealthy") a container list's status line ends with, or ""."""
    found = re.search(r"\((health: starting|healthy|unhealthy)\)$", status or "")
    return found.group(1).replace("health: ", "") if found else ""


def _exit_code_of_status(status):
    """The exit code a container list's status line gives ("Exited (3) 2 seconds ago"), or None."""
    found = re.match(r"Exited \((-?[0-9]+)\)", status or "")
    return int(found.group(1)) if found else None


def _lines(chunks):
    """Split a stream of byte chunks into text lines."""
    buffer = b""
    try:
        for chunk in chunks:
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                yield line.decode("utf-8", "replace")
    except Exception as exc:  # the container or the engine went away: the stream just ends
        log.debug("log stream ended: %s", exc)
    if buffer:
        yield buffer.decode("utf-8", "replace")


def _split_image(image):
    """("repo", "tag") of an image reference; a digest stays with the repository."""
    if "@" in image:
        return image, None
    name, _, tag = image.rpartition(":")
    if name and "/" not in tag:
        return name, tag
    return image, "latest"


def summarize(data):
    """The parts of an inspect result the agent reports: state, exit code, start and finish times
    (Docker's RFC 3339 text), IP, port bindings."""
    state = data.get("State") or {}
    settings_ = data.get("NetworkSettings") or {}
    ips = [n.get("IPAddress") for n in (settings_.get("Networks") or {}).values() if n.get("IPAddress")]
    bindings = []
    for key, hosts in (settings_.get("Ports") or {}).items():
        port, _, protocol = key.partition("/")
        for host in hosts or []:
            bindings.append({
                "bindIP": host.get("HostIp", ""),
                "containerPort": int(port),
                "hostPort": int(host.get("HostPort") or 0),
                "protocol": protocol or "tcp",
            })
    bindings.sort(key=lambda b: (b["containerPort"], b["protocol"], b["bindIP"]))
    return {
        "id": data.get("Id", ""),
        "status": state.get("Status", ""),
        "running": bool(state.get("Running")),
        "exit_code": state.get("ExitCode"),
        "started_at": state.get("StartedAt", ""),
        "finished_at": state.get("FinishedAt", ""),
        "health": (state.get("Health") or {}).get("Status", ""),
        "oom_killed": bool(state.get("OOMKilled")),
        "error": state.get("Error", ""),
        "private_ip": ips[0] if ips else "",
        "network_bindings": bindings,
        "labels": (data.get("Config") or {}).get("Labels") or {},
    }
