"""Attributes through boto3: a Fargate cluster has no container instance of the caller's to label."""
from orchestrator.models import ContainerInstance
from tests.support.api import assert_model_shape, error_of


def test_a_fargate_cluster_lists_no_attributes(ecs):
    ecs.create_cluster(clusterName="demo")
    response = ecs.list_attributes(cluster="demo", targetType="container-instance")
    assert_model_shape("ListAttributes", response)
    assert response["attributes"] == []
    named = ecs.list_attributes(cluster="demo", targetType="container-instance", attributeName="stack",
                                attributeValue="prod")
    assert named["attributes"] == []


def test_putting_or_deleting_an_attribute_finds_no_target_even_on_the_lab_fleet(ecs):
    ecs.create_cluster(clusterName="demo")
    fleet = ContainerInstance.objects.create(name="i-1", instance_id="a" * 32, cpu_registered=1024, memory_registered=2048)
    for call in (ecs.put_attributes, ecs.delete_attributes):
        code, message, status = error_of(call, cluster="demo", attributes=[
            {"name": "stack", "value": "prod", "targetType": "container-instance", "targetId": fleet.instance_id}])
        assert (code, status) == ("TargetNotFoundException", 400)
        assert "container instances are Fargate's" in message
    assert ecs.list_attributes(cluster="demo", targetType="container-instance")["attributes"] == []


def test_attributes_need_a_target_and_a_cluster(ecs):
    ecs.create_cluster(clusterName="demo")
    code, message, _ = error_of(ecs.put_attributes, cluster="demo", attributes=[{"name": "stack"}])
    assert code == "InvalidParameterException" and "targetId" in message
    code, _, _ = error_of(ecs.put_attributes, cluster="demo", attributes=[
        {"name": f"a{i}", "targetId": "x"} for i in range(11)])
    assert code == "InvalidParameterException"
    code, _, _ = error_of(ecs.list_attributes, cluster="nope", targetType="container-instance")
    assert code == "ClusterNotFoundException"
    code, _, _ = error_of(ecs.list_attributes, cluster="demo", targetType="container-instance", attributeValue="x")
    assert code == "InvalidParameterException"
