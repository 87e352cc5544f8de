"""AWS Cloud Map through boto3 against the live lab: namespaces, services, instances and their
operations, DiscoverInstances at the data-plane host and without it, Cloud Map's own error
types (never a 500), and one account never seeing another's."""
import socket

import boto3
import pytest
from botocore.config import Config

from orchestrator.models import AccessKey, Account
from tests.support.api import error_of as api_error_of
from tests.support.api import lab_client


@pytest.fixture
def resolved(monkeypatch):
    """The host names looked up; ``data-localhost`` resolves here, as a user's hosts file or
    DNS would make it (botocore sends DiscoverInstances to data-<endpoint host>)."""
    hosts, real = [], socket.getaddrinfo

    def resolve(host, *args, **kwargs):
        hosts.append(host)
        return real("localhost" if host == "data-localhost" else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    return hosts


@pytest.fixture
def sd(live_server, default_account, resolved):
    assert live_server.url.startswith("http://localhost:")
    return lab_client(live_server, "servicediscovery")


def error_of(call, **params):
    return api_error_of(call, **params)[:2]


def dns_namespace(sd, name="lab.local"):
    operation = sd.create_private_dns_namespace(Name=name, Vpc="vpc-fargatelab")["OperationId"]
    done = sd.get_operation(OperationId=operation)["Operation"]
    assert (done["Status"], done["Type"]) == ("SUCCESS", "CREATE_NAMESPACE")
    return done["Targets"]["NAMESPACE"]


def test_it_creates_a_private_dns_namespace_and_a_service_in_it(sd):
    namespace_id = dns_namespace(sd)
    namespace = sd.get_namespace(Id=namespace_id)["Namespace"]
    assert (namespace["Name"], namespace["Type"], namespace["ServiceCount"]) == ("lab.local", "DNS_PRIVATE", 0)
    assert namespace["Arn"] == f"arn:aws:servicediscovery:us-east-1:000000000000:namespace/{namespace_id}"
    service = sd.create_service(Name="web", NamespaceId=namespace_id,
                                DnsConfig={"DnsRecords": [{"Type": "A", "TTL": 10}]})["Service"]
    assert service["Id"].startswith("srv-") and service["Type"] == "DNS_HTTP"
    assert sd.get_service(Id=service["Arn"])["Service"]["Name"] == "web"
    assert [s["Name"] for s in sd.list_services(
        Filters=[{"Name": "NAMESPACE_ID", "Values": [namespace_id]}])["Services"]] == ["web"]
    assert sd.get_namespace(Id=namespace_id)["Namespace"]["ServiceCount"] == 1
    assert error_of(sd.create_service, Name="web", NamespaceId=namespace_id)[0] == "ServiceAlreadyExists"
    assert error_of(sd.delete_namespace, Id=namespace_id)[0] == "ResourceInUse"
    sd.delete_service(Id=service["Id"])
    sd.delete_namespace(Id=namespace_id)
    assert error_of(sd.get_namespace, Id=namespace_id)[0] == "NamespaceNotFound"


def test_it_registers_lists_and_discovers_instances(sd):
    namespace_id = sd.get_operation(OperationId=sd.create_http_namespace(Name="shop")["OperationId"]
                                    )["Operation"]["Targets"]["NAMESPACE"]
    service_id = sd.create_service(Name="cart", NamespaceId=namespace_id)["Service"]["Id"]
    for number, zone in ((1, "a"), (2, "b")):
        operation = sd.register_instance(ServiceId=service_id, InstanceId=f"i-{number}",
                                         Attributes={"AWS_INSTANCE_IPV4": f"10.0.0.{number}", "zone": zone})
        assert sd.get_operation(OperationId=operation["OperationId"])["Operation"]["Status"] == "SUCCESS"
    listed = sd.list_instances(ServiceId=service_id)["Instances"]
    assert [i["Id"] for i in listed] == ["i-1", "i-2"]
    assert sd.get_instance(ServiceId=service_id, InstanceId="i-2")["Instance"]["Attributes"]["zone"] == "b"
    found = sd.discover_instances(NamespaceName="shop", ServiceName="cart", QueryParameters={"zone": "a"})
    assert [(i["InstanceId"], i["HealthStatus"]) for i in found["Instances"]] == [("i-1", "HEALTHY")]
    assert error_of(sd.delete_service, Id=service_id)[0] == "ResourceInUse"
    sd.deregister_instance(ServiceId=service_id, InstanceId="i-1")
    assert error_of(sd.get_instance, ServiceId=service_id, InstanceId="i-1")[0] == "InstanceNotFound"
    types = [sd.get_operation(OperationId=o["Id"])["Operation"]["Type"]
             for o in sd.list_operations(Filters=[{"Name": "SERVICE_ID", "Values": [service_id]}])["Operations"]]
    assert sorted(types) == ["DEREGISTER_INSTANCE", "REGISTER_INSTANCE", "REGISTER_INSTANCE"]


def test_discover_instances_answers_at_the_data_plane_host_and_without_it(live_server, sd, resolved):
    namespace_id = dns_namespace(sd)
    service_id = sd.create_service(Name="web", NamespaceId=namespace_id)["Service"]["Id"]
    sd.register_instance(ServiceId=service_id, InstanceId="one", Attributes={"AWS_INSTANCE_IPV4": "10.0.0.9"})
    plain = boto3.client("servicediscovery", endpoint_url=live_server.url, region_name="us-east-1",
                         aws_access_key_id="test", aws_secret_access_key="test",
                         config=Config(inject_host_prefix=False))
    del resolved[:]
    assert [i["InstanceId"] for i in plain.discover_instances(NamespaceName="lab.local", ServiceName="web")[
        "Instances"]] == ["one"]
    assert "data-localhost" not in resolved
    del resolved[:]
    found = sd.discover_instances(NamespaceName="lab.local", ServiceName="web")["Instances"]
    assert [i["InstanceId"] for i in found] == ["one"] and resolved == ["data-localhost"]


@pytest.mark.parametrize("operation, params, code", [
    ("create_private_dns_namespace", {"Name": "bad name", "Vpc": "vpc-fargatelab"}, "InvalidInput"),
    ("create_private_dns_namespace", {"Name": "lab.local", "Vpc": "subnet-1"}, "InvalidInput"),
    ("create_private_dns_namespace", {"Name": "a" * 300, "Vpc": "vpc-fargatelab"}, "InvalidInput"),
    ("create_http_namespace", {"Name": "arn:aws:x"}, "InvalidInput"),
    ("get_namespace", {"Id": "ns-nothere"}, "NamespaceNotFound"),
    ("delete_namespace", {"Id": "ns-nothere"}, "NamespaceNotFound"),
    ("create_service", {"Name": "web", "NamespaceId": "ns-nothere"}, "NamespaceNotFound"),
    ("create_service", {"Name": "web"}, "InvalidInput"),
    ("create_service", {"Name": "-bad-", "NamespaceId": "ns-nothere"}, "InvalidInput"),
    ("get_service", {"Id": "srv-nothere"}, "ServiceNotFound"),
    ("delete_service", {"Id": "srv-nothere"}, "ServiceNotFound"),
    ("register_instance", {"ServiceId": "srv-nothere", "InstanceId": "i", "Attributes": {}}, "ServiceNotFound"),
    ("register_instance", {"ServiceId": "srv-nothere", "InstanceId": "a b", "Attributes": {}}, "InvalidInput"),
    ("list_instances", {"ServiceId": "srv-nothere"}, "ServiceNotFound"),
    ("get_operation", {"OperationId": "nothere"}, "OperationNotFound"),
    ("discover_instances", {"NamespaceName": "nothere", "ServiceName": "web"}, "NamespaceNotFound"),
    ("list_namespaces", {"Filters": [{"Name": "TYPE", "Values": ["HTTP"], "Condition": "BETWEEN"}]}, "InvalidInput"),
    ("list_namespaces", {"NextToken": "garbage"}, "InvalidInput"),
    ("list_operations", {"Filters": [{"Name": "UPDATE_DATE", "Values": ["x", "y"], "Condition": "BETWEEN"}]},
     "InvalidInput"),
])
def test_bad_requests_get_cloud_maps_own_errors(sd, operation, params, code):
    assert error_of(getattr(sd, operation), **params)[0] == code


def test_what_the_lab_dns_cannot_answer_is_refused(sd):
    namespace_id = dns_namespace(sd)
    http_id = sd.get_operation(OperationId=sd.create_http_namespace(Name="api")["OperationId"]
                               )["Operation"]["Targets"]["NAMESPACE"]
    code, message = error_of(sd.create_service, Name="web", NamespaceId=namespace_id,
                             DnsConfig={"DnsRecords": [{"Type": "SRV", "TTL": 10}]})
    assert code == "InvalidInput" and "A records only" in message
    assert error_of(sd.create_service, Name="web", NamespaceId=http_id,
                    DnsConfig={"DnsRecords": [{"Type": "A", "TTL": 10}]})[0] == "InvalidInput"
    assert error_of(sd.create_service, Name="web", NamespaceId=namespace_id,
                    HealthCheckConfig={"Type": "HTTP"})[0] == "InvalidInput"
    dns_service = sd.create_service(Name="web", NamespaceId=namespace_id,
                                    DnsConfig={"DnsRecords": [{"Type": "A", "TTL": 10}]})["Service"]["Id"]
    assert error_of(sd.register_instance, ServiceId=dns_service, InstanceId="i",
                    Attributes={"port": "80"})[0] == "InvalidInput"
    assert sd.list_services()["Services"][0]["Name"] == "web"


def test_a_namespace_is_created_once_and_names_are_unique(sd):
    first = sd.create_http_namespace(Name="one", CreatorRequestId="req-1")["OperationId"]
    assert sd.create_http_namespace(Name="one", CreatorRequestId="req-1")["OperationId"] == first
    code, _ = error_of(sd.create_http_namespace, Name="one")
    assert code == "NamespaceAlreadyExists"
    assert [n["Name"] for n in sd.list_namespaces(Filters=[{"Name": "TYPE", "Values": ["HTTP"]}])["Namespaces"]] == [
        "one"]


def test_another_account_sees_nothing_of_it(live_server, sd):
    namespace_id = dns_namespace(sd)
    service_id = sd.create_service(Name="web", NamespaceId=namespace_id)["Service"]["Id"]
    other = Account.objects.create(account_id="111111111111", name="bob")
    AccessKey.objects.create(account=other, access_key_id="bob", secret_access_key="bobsecret")
    bob = lab_client(live_server, "servicediscovery", key="bob", secret="bobsecret")
    assert bob.list_namespaces()["Namespaces"] == [] and bob.list_services()["Services"] == []
    assert error_of(bob.get_namespace, Id=namespace_id)[0] == "NamespaceNotFound"
    assert error_of(bob.list_instances, ServiceId=service_id)[0] == "ServiceNotFound"
    assert error_of(bob.discover_instances, NamespaceName="lab.local", ServiceName="web")[0] == "NamespaceNotFound"
    bob.create_private_dns_namespace(Name="lab.local", Vpc="vpc-fargatelab")  # its own, of the same name
    assert len(sd.list_namespaces()["Namespaces"]) == 1


def test_custom_health_is_set_by_the_caller_and_read_back(sd):
    namespace_id = sd.get_operation(OperationId=sd.create_http_namespace(Name="shop")["OperationId"]
                                    )["Operation"]["Targets"]["NAMESPACE"]
    custom = sd.create_service(Name="cart", NamespaceId=namespace_id,
                               HealthCheckCustomConfig={"FailureThreshold": 1})["Service"]["Id"]
    plain = sd.create_service(Name="plain", NamespaceId=namespace_id)["Service"]["Id"]
    for service_id in (custom, plain):
        sd.register_instance(ServiceId=service_id, InstanceId="i-1", Attributes={"AWS_INSTANCE_IPV4": "10.0.0.1"})
    before = sd.discover_instances_revision(NamespaceName="shop", ServiceName="cart")["InstancesRevision"]
    sd.update_instance_custom_health_status(ServiceId=custom, InstanceId="i-1", Status="UNHEALTHY")
    assert sd.get_instances_health_status(ServiceId=custom)["Status"] == {"i-1": "UNHEALTHY"}
    assert sd.discover_instances(NamespaceName="shop", ServiceName="cart")["Instances"] == []
    assert [i["HealthStatus"] for i in sd.discover_instances(
        NamespaceName="shop", ServiceName="cart", HealthStatus="ALL")["Instances"]] == ["UNHEALTHY"]
    assert error_of(sd.update_instance_custom_health_status, ServiceId=plain, InstanceId="i-1",
                    Status="HEALTHY")[0] == "CustomHealthNotFound"
    assert error_of(sd.get_instances_health_status, ServiceId=custom, Instances=["i-9"])[0] == "InstanceNotFound"
    sd.register_instance(ServiceId=custom, InstanceId="i-2", Attributes={"AWS_INSTANCE_IPV4": "10.0.0.2"})
    assert sd.discover_instances_revision(NamespaceName="shop", ServiceName="cart")["InstancesRevision"] != before
