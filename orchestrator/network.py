"""Where the lab is reached: the addresses task ports and listeners are published on, and the
host name students put in their URLs.

A lab on 127.0.0.1 (the default) publishes everything on 127.0.0.1 and names load balancers
``<name>-<n>.<region>.elb.localhost``, which browsers and curl resolve to this machine. A
classroom lab (``HOST=0.0.0.0``, or one address of this machine) publishes task ports and
listeners on that address too, and gives load balancers a DNS name that a student's machine
can open: the address the lab advertises (``FARGATE_LAB_ADVERTISE_ADDRESS``, by default this
machine's address on its default route), since ``localhost`` names on a student's machine
would point at the student's own.
"""
import ipaddress
import socket

from django.conf import settings

WILDCARDS = ("0.0.0.0", "::", "")
LOOPBACK_NAMES = ("localhost", "localhost.localdomain")


def _address(host):
    """``host`` as an address Docker and sockets can bind ("localhost" is 127.0.0.1)."""
    host = (host or "").strip().strip("[]")
    return "127.0.0.1" if host.lower() in LOOPBACK_NAMES else host


def is_loopback(host):
    """Whether ``host`` is reachable from this machine only."""
    try:
        return ipaddress.ip_address(_address(host)).is_loopback
    except ValueError:
        return False


def lab_host():
    """The address the lab's web server listens on (HOST)."""
    return _address(settings.LAB_HOST) or "0.0.0.0"


def publish_address():
    """Where task ports are published: FARGATE_LAB_PUBLISH_ADDRESS, else the lab's HOST."""
    return _address(settings.FARGATE_LAB.get("PUBLISH_ADDRESS") or lab_host())


def listen_address():
    """Where load balancer listeners bind: FARGATE_LAB_ELB_LISTEN_ADDRESS, else the lab's HOST."""
    return _address(settings.FARGATE_LAB.get("ELB_LISTEN_ADDRESS") or lab_host())


def registry_listen_address():
    """Where ECR's gate listens: FARGATE_LAB_REGISTRY_LISTEN_ADDRESS, else the lab's HOST."""
    return _address(settings.FARGATE_LAB.get("REGISTRY_LISTEN_ADDRESS") or lab_host())


def default_route_address():
    """This machine's address on its default route (no packet is sent), else 127.0.0.1."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # TEST-NET-1: only picks the outgoing interface
        return probe.getsockname()[0]
    except OSError:
        return "127.0.0.1"
    finally:
        probe.close()


def advertised_host(bound=None):
    """The host name students use to reach something bound on ``bound`` (default: HOST):
    FARGATE_LAB_ADVERTISE_ADDRESS if set, else the bound address itself, else (bound to every
    address) this machine's address on its default route."""
    given = settings.FARGATE_LAB.get("ADVERTISE_ADDRESS")
    if given:
        return given
    bound = _address(lab_host() if bound is None else bound)
    if bound in WILDCARDS:
        return default_route_address()
    return bound


def url_host(host):
    """``host`` as it goes in a URL (an IPv6 address in brackets)."""
    return f"[{host}]" if ":" in host else host


def load_balancer_domain():
    """What a load balancer's DNS name ends in: ``elb.localhost`` on a lab that listens on
    loopback, else the address students reach the listeners at (their URL must open there)."""
    address = listen_address()
    if is_loopback(address):
        return "elb.localhost"
    return advertised_host(address)


def load_balancer_dns_name(name, number, region):
    """A load balancer's DNSName: ``<name>-<n>.<region>.elb.localhost`` on loopback; on a
    classroom lab the advertised address itself, which resolves everywhere (all the lab's load
    balancers share it and are told apart by their listeners' ports)."""
    domain = load_balancer_domain()
    if domain != "elb.localhost":
        return domain
    return f"{name}-{number}.{region}.{domain}".lower()
