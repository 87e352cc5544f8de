"""The map as a diagram: where each component sits, the arrows between them, and which arrow
each activity travels.

One layout table (``NODES``) gives every box its place in a 1200 × 600 drawing; the page lays
the HTML boxes out with it and draws the SVG arrows from the same numbers, so the two never
disagree. One mapping table (``FLOW``) says, for an activity's component and action, which
arrow its pulse runs along; the live events and the replay of a trace both go through it
(the replay in the browser, from the same table sent as JSON).
"""
import re
from dataclasses import dataclass

WIDTH, HEIGHT = 1200, 600


@dataclass(frozen=True)
class Node:
    """A box of the diagram: the Fargate component, its Kubernetes counterpart, its place."""

    id: str
    fargate: str
    kubernetes: str
    x: int
    y: int
    w: int
    h: int

    @property
    def style(self):
        """The CSS custom properties that place the box (in drawing units)."""
        return f"--x:{self.x};--y:{self.y};--w:{self.w};--h:{self.h}"


# The article's architecture: the control plane left to right along the top, the data plane
# (instances with their agent, Docker below them) along the bottom, traffic and images beside.
NODES = {node.id: node for node in (
    Node("clients", "Console, CLI, SDK", "kubectl, client-go", 0, 10, 165, 190),
    Node("frontend", "Frontend service", "kube-apiserver", 200, 10, 220, 190),
    Node("statedb", "State database", "etcd", 455, 10, 225, 190),
    Node("cluster_manager", "Cluster manager", "kube-controller-manager", 715, 10, 225, 190),
    Node("capacity_manager", "Capacity manager", "kube-scheduler (+ cluster autoscaler)", 975, 10, 225, 190),
    Node("load_balancer", "Load balancer", "Service / Ingress", 0, 250, 165, 160),
    Node("registry", "ECR", "OCI registry", 0, 430, 165, 160),
    Node("agent", "Fargate agent on each instance", "kubelet on each node", 200, 250, 1000, 215),
    Node("docker", "Docker on each instance", "container runtime (containerd via CRI)", 200, 515, 1000, 75),
)}


@dataclass(frozen=True)
class Arrow:
    """A line between two boxes; a pulse may run along it either way."""

    a: str
    b: str
    x1: float
    y1: float
    x2: float
    y2: float
    label: str = ""
    both: bool = False  # pulses run both ways (a head at each end)

    @property
    def id(self):
        return arrow_id(self.a, self.b)


def arrow_id(a, b):
    """The DOM id of the arrow between ``a`` and ``b`` (the same both ways)."""
    return "arrow-" + "--".join(sorted((a, b)))


def _across(a, b, y=None, label="", both=False):
    """A horizontal arrow from the right edge of ``a`` to the left edge of ``b``."""
    left, right = NODES[a], NODES[b]
    y = y if y is not None else left.y + left.h / 2
    return Arrow(a, b, left.x + left.w, y, right.x, y, label, both)


def _down(a, b, x, label="", both=False):
    """A vertical arrow from the bottom edge of ``a`` to the top edge of ``b`` at ``x``."""
    top, bottom = NODES[a], NODES[b]
    return Arrow(a, b, x, top.y + top.h, x, bottom.y, label, both)


def _up(a, b, x, label="", both=False):
    """A vertical arrow from the top edge of ``a`` up to the bottom edge of ``b`` at ``x``."""
    bottom, top = NODES[a], NODES[b]
    return Arrow(a, b, x, bottom.y, x, top.y + top.h, label, both)


ARROWS = (
    _across("clients", "frontend", label="API calls"),
    _across("frontend", "statedb", label="writes"),
    _across("statedb", "cluster_manager", label="watch / write", both=True),
    _across("cluster_manager", "capacity_manager", label="placement"),
    _down("capacity_manager", "agent", 1088, label="task → instance"),
    _up("agent", "statedb", 568, label="status reports"),
    _down("clients", "load_balancer", 82, label="traffic"),
    _across("load_balancer", "agent", y=330, label="to tasks", both=True),
    _across("registry", "agent", y=445, label="image pulls"),
    _down("agent", "docker", 700, label="Docker API / events", both=True),
)
ARROW_IDS = {arrow.id for arrow in ARROWS}


# Which arrow an activity travels: (component, action pattern, from, to, what travels).
# The first row that matches wins; ``*`` matches any run of characters; "refused" stands for a
# call answered with an error; ``to`` None lights the component without a pulse.
FLOW = (
    ("frontend", "refused", "clients", "frontend", "a refused call"),
    ("frontend", "Describe*", "clients", "frontend", "a read"),
    ("frontend", "List*", "clients", "frontend", "a read"),
    ("frontend", "Get*", "clients", "frontend", "a read"),
    ("frontend", "*", "frontend", "statedb", "a write"),
    ("state_database", "write", "frontend", "statedb", "a write"),
    ("state_database", "*", "statedb", None, "a state database step"),
    ("cluster_manager", "reconcile", "statedb", "cluster_manager", "a reconcile pass: desired against observed"),
    ("cluster_manager", "start-task", "cluster_manager", "capacity_manager", "a placement request"),
    ("cluster_manager", "leader", "cluster_manager", None, "the lease"),
    ("cluster_manager", "follower", "cluster_manager", None, "the lease"),
    ("cluster_manager", "*", "cluster_manager", "statedb", "a reconcile write"),
    ("capacity_manager", "place", "capacity_manager", "agent", "a placement"),
    ("capacity_manager", "no-capacity", "capacity_manager", None, "no room"),
    ("capacity_manager", "spot-interruption", "capacity_manager", "agent",
     "a Spot interruption: Fargate takes the capacity back (a preempted spot node)"),
    ("capacity_manager", "*", "capacity_manager", "agent", "a fleet change"),
    ("agent", "died", "docker", "agent", "a die event"),
    ("agent", "relist", "docker", "agent", "a relist that found a container gone"),
    ("agent", "sync", "agent", None, "a sync pass over a task"),
    ("agent", "pull*", "registry", "agent", "an image pull"),
    ("agent", "create", "agent", "docker", "a create"),
    ("agent", "start", "agent", "docker", "a start"),
    ("agent", "stop", "agent", "docker", "a stop"),
    ("agent", "kill", "agent", "docker", "a kill"),
    ("agent", "remove*", "agent", "docker", "a remove"),
    ("agent", "adopt", "docker", "agent", "an adoption"),
    ("agent", "register", "agent", "load_balancer", "a target registration"),
    ("agent", "deregister", "agent", "load_balancer", "a target deregistration"),
    ("agent", "*", "agent", "statedb", "a status report"),
    ("docker", "die", "docker", "agent", "a die event"),
    ("docker", "oom", "docker", "agent", "an out-of-memory kill"),
    ("docker", "*", "agent", "docker", "a Docker API call"),
    ("load_balancer", "register_task", "agent", "load_balancer", "a target registration"),
    ("load_balancer", "deregister_task", "agent", "load_balancer", "a target deregistration"),
    ("load_balancer", "api.*", "clients", "load_balancer", "an ELBv2 call"),
    ("load_balancer", "*", "load_balancer", None, "a load balancer step"),
    ("registry", "*", "registry", None, "an ECR call or a push"),
)


def _pattern(text):
    """A ``*`` pattern as an anchored regular expression (the browser compiles the same source)."""
    return "^" + ".*".join(re.escape(part) for part in text.split("*")) + "$"


_COMPILED = [(component, re.compile(_pattern(action)), source, target, what)
             for component, action, source, target, what in FLOW]


@dataclass(frozen=True)
class Travel:
    """What one activity does on the diagram: the arrow's two ends and what travels along it."""

    source: str | None
    target: str | None
    what: str

    @property
    def lit(self):
        """The components that light up, in order: the arrow's start, then its end."""
        if not self.source:
            return []
        return [self.source] + ([self.target] if self.target and self.target != self.source else [])


def travel(component, action, status_code=None):
    """The row of ``FLOW`` an activity matches (a component without a row lights itself)."""
    action = "refused" if component == "frontend" and status_code and status_code >= 400 else action
    for row_component, pattern, source, target, what in _COMPILED:
        if row_component == component and pattern.fullmatch(action or ""):
            return Travel(source, target, what)
    return Travel(component if component in NODES else None, None, action or "")


def flow_table():
    """``FLOW`` as plain data for the browser's replay: patterns as regular expression sources."""
    return {
        "rows": [[component, _pattern(action), source, target, what]
                 for component, action, source, target, what in FLOW],
        "nodes": {node.id: {"fargate": node.fargate, "kubernetes": node.kubernetes} for node in NODES.values()},
    }
