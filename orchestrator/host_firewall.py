"""The host firewall: what a task may reach on the lab's own machine through its network's gateway.

A task's packets to the host (its bridge's gateway, docker0, any address of the machine)
arrive on the host's INPUT chain from the bridge of its cluster network. Everything the host
serves on 0.0.0.0 answers them: a classroom lab's API and dashboard (HOST=0.0.0.0), task ports
published on 0.0.0.0 (other students' tasks, past their network's isolation), any other
service of the machine. Services on 127.0.0.1 (the defaults) are out of a task's reach anyway.

So, for each of this lab's bridges, one iptables chain of its own lets through only:
1. replies to connections the host opened (health checks, the proxy, docker-proxy);
2. the load balancers' listener ports (students' tasks call each other through them);
and rejects every other packet from a task to the host (a service the lab offers tasks on the
host opens its port with ``allow(port)``). Traffic from tasks to the outside world is forwarded,
not input, and is not touched.

The task endpoint (``orchestrator/task_metadata.py``: the task metadata endpoint, task role
credentials and the lab's APIs) is reached as on ECS: 169.254.170.2:80, which a NAT chain of the
lab's own (``FLABN-<digest>``, jumped to from PREROUTING) sends from each bridge to the endpoint's
listener on 127.0.0.1, as the ECS agent's iptables rules send it to its own. The bridges get
``route_localnet`` so that the kernel routes those packets to loopback, and the filter chain lets
only them through to 127.0.0.0/8: nothing else on the host's loopback becomes reachable.

The rules live in one chain, ``FLAB-<digest of the lab id>``, jumped to from INPUT by one
rule commented with the lab id; rewriting the chain is atomic (iptables-restore) and
idempotent, and ``remove()`` takes both away when the control plane stops. Without iptables
or root it logs once that tasks can reach the host, and the lab runs unguarded.
"""
import hashlib
import logging
import os
import shutil
import subprocess
import threading

log = logging.getLogger(__name__)

MULTIPORT_MAX = 15  # ports one iptables multiport match takes


def chain_name(lab):
    """The lab's chain (iptables chain names are at most 28 characters)."""
    return "FLAB-" + hashlib.sha256(lab.encode()).hexdigest()[:10]


# Where a task reaches the task endpoint, as on ECS.
TASK_ENDPOINT_ADDRESS, TASK_ENDPOINT_PORT = "169.254.170.2", 80


def nat_chain_name(lab):
    """The lab's NAT chain (the task endpoint's DNAT)."""
    return "FLABN-" + hashlib.sha256(lab.encode()).hexdigest()[:10]


def rules(chain, bridges, open_ports, endpoint_port=None):
    """The chain's rules (``iptables-restore`` lines) for these bridges and allowed ports: pure.
    With ``endpoint_port``, connections DNAT'd to the task endpoint on loopback pass, and nothing
    else to loopback does (the bridges route to it for the DNAT)."""
    lines = []
    ports = sorted(set(open_ports))
    for bridge in sorted(set(bridges)):
        lines.append(f"-A {chain} -i {bridge} -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN")
        if endpoint_port:
            lines.append(f"-A {chain} -i {bridge} -d 127.0.0.1/32 -p tcp --dport {endpoint_port} "
                         "-m conntrack --ctstate DNAT -j RETURN")
            lines.append(f"-A {chain} -i {bridge} -d 127.0.0.0/8 -j DROP")
        for start in range(0, len(ports), MULTIPORT_MAX):
            chunk = ",".join(str(p) for p in ports[start:start + MULTIPORT_MAX])
            lines.append(f"-A {chain} -i {bridge} -p tcp -m multiport --dports {chunk} -j RETURN")
        lines.append(f"-A {chain} -i {bridge} -p tcp -j REJECT --reject-with tcp-reset")
        lines.append(f"-A {chain} -i {bridge} -j REJECT --reject-with icmp-port-unreachable")
    return lines


def nat_rules(chain, bridges, endpoint_port):
    """The NAT chain's rules: 169.254.170.2:80 from each bridge to the task endpoint on loopback: pure."""
    if not endpoint_port:
        return []
    return [f"-A {chain} -i {bridge} -d {TASK_ENDPOINT_ADDRESS}/32 -p tcp --dport {TASK_ENDPOINT_PORT} "
            f"-j DNAT --to-destination 127.0.0.1:{endpoint_port}" for bridge in sorted(set(bridges))]


class HostFirewall:
    """The iptables chain that guards the host from this lab's tasks."""

    def __init__(self, lab):
        self.lab = lab
        self.chain = chain_name(lab)
        self.nat_chain = nat_chain_name(lab)
        self.comment = f"fargatelab {lab}: tasks reach the host only on listener ports"
        self._lock = threading.Lock()
        self._applied = None
        self._warned = False
        self._localnet = set()  # the bridges this lab gave route_localnet (taken back when unneeded)
        self.engines = set()  # the local engines whose bridges are guarded; empty while stopped

    def available(self):
        """Whether iptables can be changed here (root and the iptables command); says why not, once."""
        why = None
        if shutil.which("iptables") is None or shutil.which("iptables-restore") is None:
            why = "the iptables command is not installed"
        elif os.geteuid() != 0:
            why = "the lab does not run as root"
        if why and not self._warned:
            self._warned = True
            log.warning("host firewall off (%s): tasks can reach every port this machine serves on 0.0.0.0 "
                        "through their network's gateway; see the README, 'What a classroom lab protects'.", why)
        return why is None

    def sync(self, bridges, open_ports, endpoint_port=None):
        """Make the chains hold exactly the rules for ``bridges``; a no-op when they are already in place."""
        if not self.available():
            return False
        filtering = rules(self.chain, bridges, open_ports, endpoint_port)
        nat = nat_rules(self.nat_chain, bridges, endpoint_port)
        wanted = (filtering, nat)
        with self._lock:
            if wanted == self._applied and self._jump_exists() and self._jump_exists("nat"):
                return True  # (another process may have removed them)
            restore = "\n".join(["*filter", f":{self.chain} - [0:0]", *filtering, "COMMIT",
                                 "*nat", f":{self.nat_chain} - [0:0]", *nat, "COMMIT", ""])
            try:
                self._run(["iptables-restore", "--noflush"], restore)
                if not self._jump_exists():
                    self._run(["iptables", "-I", "INPUT", "1", *self._jump()])
                if not self._jump_exists("nat"):
                    self._run(["iptables", "-t", "nat", "-I", "PREROUTING", "1", *self._jump("nat")])
                wanted_localnet = set(bridges) if endpoint_port else set()
                for bridge in sorted(self._localnet - wanted_localnet):
                    _route_localnet(bridge, False)
                for bridge in sorted(wanted_localnet):
                    _route_localnet(bridge, True)
                self._localnet = wanted_localnet
            except (OSError, subprocess.CalledProcessError) as exc:
                log.warning("host firewall: could not write the rules of %s: %s", self.chain, _stderr(exc))
                self._applied = None
                return False
            if self._applied is None:
                log.info("host firewall on: tasks on %d network(s) reach this host only on listener ports "
                         "(iptables chain %s)", len(set(bridges)), self.chain)
            self._applied = wanted
            return True

    def remove(self):
        """Take the jump rule and the chain away (nothing of another lab or of Docker's is touched)."""
        if not self.available():
            return
        with self._lock:
            try:
                # First: with the filter chain gone, a bridge routing to loopback would let tasks there.
                for bridge in sorted(self._localnet):
                    _route_localnet(bridge, False)
                self._localnet = set()
                while self._jump_exists():
                    self._run(["iptables", "-D", "INPUT", *self._jump()])
                while self._jump_exists("nat"):
                    self._run(["iptables", "-t", "nat", "-D", "PREROUTING", *self._jump("nat")])
                for table, chain in (("filter", self.chain), ("nat", self.nat_chain)):
                    if subprocess.run(["iptables", "-t", table, "-n", "-L", chain], capture_output=True).returncode == 0:
                        self._run(["iptables", "-t", table, "-F", chain])
                        self._run(["iptables", "-t", table, "-X", chain])
            except (OSError, subprocess.CalledProcessError) as exc:
                log.warning("host firewall: could not remove %s: %s", self.chain, _stderr(exc))
            self._applied = None

    def _jump(self, table="filter"):
        if table == "nat":
            return ["-m", "comment", "--comment", f"fargatelab {self.lab}: the task endpoint", "-j", self.nat_chain]
        return ["-m", "comment", "--comment", self.comment, "-j", self.chain]

    def _jump_exists(self, table="filter"):
        builtin = "PREROUTING" if table == "nat" else "INPUT"
        return subprocess.run(["iptables", "-t", table, "-C", builtin, *self._jump(table)],
                              capture_output=True).returncode == 0

    @staticmethod
    def _run(args, stdin=None):
        subprocess.run(args, input=stdin, capture_output=True, text=True, check=True, timeout=30)


def _route_localnet(bridge, on):
    """Let the kernel route a bridge's packets to loopback, or no longer (the DNAT to the task
    endpoint needs it); a bridge gone meanwhile needs nothing."""
    path = f"/proc/sys/net/ipv4/conf/{bridge}/route_localnet"
    if os.path.exists(path):
        with open(path, "w") as knob:
            knob.write("1" if on else "0")


def _stderr(exc):
    return (getattr(exc, "stderr", None) or str(exc)).strip()


_guards = {}
_guards_lock = threading.Lock()
# Host ports the lab serves to tasks besides the listeners.
_task_ports = set()
# The loopback port of the task endpoint this process serves (None: it serves none).
_endpoint = {"port": None}


def guard(lab):
    """The one HostFirewall of lab ``lab`` in this process."""
    with _guards_lock:
        if lab not in _guards:
            _guards[lab] = HostFirewall(lab)
        return _guards[lab]


def allow(port):
    """Let tasks reach ``port`` on the host (a service the lab offers them); applied at the next refresh."""
    _task_ports.add(int(port))


def serve_task_endpoint(port):
    """Send the tasks' 169.254.170.2:80 to the task endpoint on 127.0.0.1:``port`` (None: to nothing);
    applied at the next refresh."""
    _endpoint["port"] = int(port) if port else None


def start(engines):
    """Guard the host from this lab's tasks on the local engines among ``engines`` (the control plane starts it)."""
    local = [e for e in engines if e.is_local]
    if not local:
        return False
    firewall = guard(local[0].lab)
    firewall.engines = set(local)
    return refresh(local[0].lab)


def refresh(lab):
    """Rewrite the lab's rules for its bridges as they are now; whether the rules are in place."""
    from orchestrator.models import Listener

    firewall = guard(lab)
    if not firewall.engines:
        return False
    from orchestrator.docker_engine import EngineError

    bridges = []
    try:
        for engine in sorted(firewall.engines, key=lambda e: e.url):
            bridges.extend(engine.bridge_interfaces())
    except EngineError as exc:  # the engine is away: keep the rules as they are until it answers
        log.info("host firewall: cannot list the networks (%s); rules unchanged", exc)
        return False
    return firewall.sync(bridges, set(Listener.objects.values_list("port", flat=True)) | _task_ports,
                         _endpoint["port"])


def stop(lab):
    """Remove the lab's rules (the control plane stops)."""
    firewall = guard(lab)
    firewall.engines = set()
    firewall.remove()


def _on_network(engine):
    """A network is about to get its first container: guard its bridge first."""
    firewall = guard(engine.lab)
    if engine in firewall.engines:
        refresh(engine.lab)


def _register_hook():
    from orchestrator.docker_engine import DockerEngine

    if _on_network not in DockerEngine.network_hooks:
        DockerEngine.network_hooks.append(_on_network)


_register_hook()
