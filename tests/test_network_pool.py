"""The lab's networks take a /24 each from its own pool (FARGATE_LAB_NETWORK_POOL), not from
Docker's default pools, which hold about 30 bridge networks: fewer than a class's students."""
import ipaddress

import pytest

from orchestrator.docker_engine import DockerEngine, EngineError


class FakeClient:
    def __init__(self, subnets):
        self._subnets = subnets

    def networks(self):
        return [{"IPAM": {"Config": [{"Subnet": s}]}} for s in self._subnets] + [{"IPAM": {"Config": None}}]


def test_the_first_free_slash_24_of_the_pool_is_chosen(settings):
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "NETWORK_POOL": "10.224.0.0/22"}
    engine = DockerEngine("tcp://remote:2376", lab="unit")  # a remote engine: this host's routes do not matter
    assert engine._free_subnet(FakeClient(["172.17.0.0/16", "10.224.0.0/24", "10.224.1.0/25"])) == "10.224.2.0/24"
    with pytest.raises(EngineError, match="every /24 of the lab's network pool 10.224.0.0/22 is in use"):
        engine._free_subnet(FakeClient(["10.224.0.0/22"]))
    engine._refused_subnets.add(ipaddress.ip_network("10.224.2.0/24"))  # the engine said it overlaps
    assert engine._free_subnet(FakeClient(["172.17.0.0/16", "10.224.0.0/24", "10.224.1.0/25"])) == "10.224.3.0/24"
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "NETWORK_POOL": ""}
    assert engine._free_subnet(FakeClient([])) is None  # Docker's own pools


@pytest.mark.docker
def test_a_class_worth_of_networks_fits_on_one_engine(docker_engine, settings):
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "NETWORK_POOL": "10.224.0.0/12"}
    names = [f"fargatelab-{docker_engine.lab}-pool-{n}" for n in range(40)]
    subnets = set()
    try:
        for name in names:
            docker_engine.ensure_network(name)
        client = docker_engine._client()
        for name in names:
            (network,) = [n for n in client.networks(names=[name]) if n["Name"] == name]
            subnets.add(ipaddress.ip_network(network["IPAM"]["Config"][0]["Subnet"]))
    finally:
        for name in names:
            docker_engine.remove_network(name)
    assert len(subnets) == 40  # forty students' networks, more than Docker's ~30 default pools hold
    assert all(s.prefixlen == 24 and s.subnet_of(ipaddress.ip_network("10.224.0.0/12")) for s in subnets)
