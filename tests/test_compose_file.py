"""compose.yaml (the README's lab with PostgreSQL and Redis) is consistent with itself and the
lab: the URLs the lab is given name the services' published ports and credentials, the lab
drives the host's engine on the host's network, and its image holds what `make run` needs."""
from urllib.parse import urlsplit

import yaml

from tests.support.common import ROOT


def compose():
    return yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]


def published(service):
    """The host port a service publishes on 127.0.0.1."""
    (mapping,) = service["ports"]
    address, port, _ = mapping.split(":")
    assert address == "127.0.0.1", "PostgreSQL and Redis publish on loopback only"
    return int(port)


def test_the_lab_reaches_postgresql_with_its_credentials():
    services = compose()
    url = urlsplit(services["lab"]["environment"]["DATABASE_URL"])
    postgres = services["postgres"]["environment"]
    assert url.scheme == "postgres" and url.hostname == "127.0.0.1"
    assert url.port == published(services["postgres"])
    assert (url.username, url.password, url.path) == (postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"],
                                                      "/" + postgres["POSTGRES_DB"])


def test_the_lab_reaches_redis():
    services = compose()
    url = urlsplit(services["lab"]["environment"]["REDIS_URL"])
    assert (url.scheme, url.hostname, url.port) == ("redis", "127.0.0.1", published(services["redis"]))


def test_the_lab_drives_the_hosts_engine_on_the_hosts_network_after_its_servers_are_ready():
    lab = compose()["lab"]
    assert "/var/run/docker.sock:/var/run/docker.sock" in lab["volumes"]
    assert lab["network_mode"] == "host"  # task ports, listeners and the registry on the host's addresses
    assert {name: when["condition"] for name, when in lab["depends_on"].items()} == {
        "postgres": "service_healthy", "redis": "service_healthy"}


def test_the_labs_image_holds_what_make_run_needs():
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in ("docker.io", "busybox-static", "docker-registry", "iptables"):
        assert package in dockerfile
    copied = {line.split()[1] for line in dockerfile.splitlines() if line.startswith("COPY ")}
    for needed in ("orchestrator", "dashboard", "classroom", "config", "templates", "static", "labs", "demo"):
        assert needed in copied, f"the image lacks {needed}/"
