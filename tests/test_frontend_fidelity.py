"""Fidelity points of issue 11 through boto3: what ECS answers that scripts read."""
import re

from orchestrator.models import Service, Task
from tests.support.api import FARGATE, NETWORK, assert_model_shape, awsvpc, error_of, fargate_task_definition

ASKED = {"awsvpcConfiguration": {"subnets": ["subnet-0abc", "subnet-0def"], "securityGroups": ["sg-0123"],
                                   "assignPublicIp": "DISABLED"}}


def _details(task):
    (attachment,) = task["attachments"]
    assert attachment["type"] == "ElasticNetworkInterface"
    return {d["name"]: d["value"] for d in attachment["details"]}


def test_the_eni_attachment_carries_the_subnet_an_eni_id_a_mac_and_the_private_ip(ecs):
    ecs.create_cluster(clusterName="demo")
    ecs.register_task_definition(**fargate_task_definition())
    arn = ecs.run_task(cluster="demo", taskDefinition="web", launchType="FARGATE",
                       networkConfiguration=ASKED)["tasks"][0]["taskArn"]
    Task.objects.update(private_ip="10.0.3.7", last_status="RUNNING")
    response = ecs.describe_tasks(cluster="demo", tasks=[arn])
    assert_model_shape("DescribeTasks", response)
    details = _details(response["tasks"][0])
    assert details["subnetId"] == "subnet-0abc"
    assert re.fullmatch(r"eni-[0-9a-f]{17}", details["networkInterfaceId"])
    assert re.fullmatch(r"02(:[0-9a-f]{2}){5}", details["macAddress"])
    assert details["privateIPv4Address"] == "10.0.3.7"
    assert details["privateDnsName"] == "ip-10-0-3-7.ec2.internal"
    # ECS's attachment details name no security groups (EC2's DescribeNetworkInterfaces does): the
    # ones asked for are kept with the task, as its networkConfiguration.
    assert set(details) == {"subnetId", "networkInterfaceId", "macAddress", "privateDnsName", "privateIPv4Address"}
    assert Task.objects.get().network_configuration["awsvpcConfiguration"]["securityGroups"] == ["sg-0123"]
    # Stable across calls, and one interface per task.
    assert _details(ecs.describe_tasks(cluster="demo", tasks=[arn])["tasks"][0]) == details
    other = ecs.run_task(cluster="demo", taskDefinition="web", launchType="FARGATE",
                         networkConfiguration=ASKED)["tasks"][0]
    assert _details(other)["networkInterfaceId"] != details["networkInterfaceId"]
    assert "privateIPv4Address" not in _details(other)  # not attached yet


def test_a_services_tasks_take_the_services_subnet(ecs):
    from orchestrator.cluster_manager import ClusterManager

    ecs.create_cluster(clusterName="demo")
    ecs.register_task_definition(**fargate_task_definition())
    ecs.create_service(cluster="demo", serviceName="s", taskDefinition="web", desiredCount=1,
                       launchType="FARGATE", networkConfiguration=ASKED)
    ClusterManager(lambda key, delay=0: None).sync_service(Service.objects.get().pk)
    arns = ecs.list_tasks(cluster="demo", serviceName="s")["taskArns"]
    assert len(arns) == 1
    assert _details(ecs.describe_tasks(cluster="demo", tasks=arns)["tasks"][0])["subnetId"] == "subnet-0abc"


def test_describe_clusters_honours_statistics_and_attachments(ecs):
    ecs.create_cluster(clusterName="demo", capacityProviders=["FARGATE"])
    ecs.register_task_definition(**fargate_task_definition())
    ecs.run_task(cluster="demo", taskDefinition="web", count=2, **FARGATE)
    Task.objects.filter(pk=Task.objects.order_by("pk").first().pk).update(last_status="RUNNING")
    plain = ecs.describe_clusters(clusters=["demo"])
    assert_model_shape("DescribeClusters", plain)
    assert "statistics" not in plain["clusters"][0] and "attachments" not in plain["clusters"][0]
    response = ecs.describe_clusters(clusters=["demo"], include=["STATISTICS", "ATTACHMENTS"])
    assert_model_shape("DescribeClusters", response)
    cluster = response["clusters"][0]
    statistics = {s["name"]: s["value"] for s in cluster["statistics"]}
    assert statistics["runningFargateTasksCount"] == "1" and statistics["pendingFargateTasksCount"] == "1"
    assert statistics["runningEC2TasksCount"] == "0" and statistics["activeFargateServiceCount"] == "0"
    assert cluster["attachments"] == [] and cluster["attachmentsStatus"] == "UPDATE_COMPLETE"


def test_an_ec2_definition_is_held_to_ec2s_rules_not_fargates_sizes(ecs):
    from tests.support.api import error_of

    ec2 = {"family": "old", "requiresCompatibilities": ["EC2"], "cpu": "128", "memory": "300",
           "containerDefinitions": [{"name": "a", "image": "busybox"}]}
    td = ecs.register_task_definition(**ec2)["taskDefinition"]  # no Fargate size has 128 CPU units
    assert_model_shape("RegisterTaskDefinition", {"taskDefinition": td})
    assert (td["cpu"], td["memory"], td["compatibilities"]) == ("128", "300", ["EC2"])
    bare = {"family": "old", "requiresCompatibilities": ["EC2"],
            "containerDefinitions": [{"name": "a", "image": "busybox", "memoryReservation": 64}, {"name": "b", "image": "x"}]}
    code, message, _ = error_of(ecs.register_task_definition, **bare)
    assert (code, message) == ("ClientException", "Invalid setting for container 'b'. "
                               "At least one of 'memory' or 'memoryReservation' must be specified.")
    bare["containerDefinitions"][1]["memory"] = 128
    assert ecs.register_task_definition(**bare)["taskDefinition"]["revision"] == 2
    # A definition that Fargate could run is also FARGATE-compatible, as ECS computes it.
    both = {"family": "both", "networkMode": "awsvpc", "cpu": "256", "memory": "512",
            "containerDefinitions": [{"name": "a", "image": "busybox"}]}
    assert ecs.register_task_definition(**both)["taskDefinition"]["compatibilities"] == ["EC2", "FARGATE"]


def test_pid_mode_host_on_fargate_gets_ecss_message(ecs):
    from orchestrator.models import TaskDefinition
    from tests.support.api import error_of

    code, message, _ = error_of(ecs.register_task_definition, **fargate_task_definition(pidMode="host"))
    assert (code, message) == ("ClientException", "Tasks using the Fargate launch type do not support pidMode 'host'. "
                               "The supported value for pidMode is 'task'.")
    assert not TaskDefinition.objects.exists()


def test_tags_are_an_empty_list_where_ecs_returns_one(ecs):
    assert ecs.create_cluster(clusterName="demo")["cluster"]["tags"] == []
    assert ecs.describe_clusters(clusters=["demo"], include=["TAGS"])["clusters"][0]["tags"] == []
    ecs.register_task_definition(**fargate_task_definition())
    assert ecs.describe_task_definition(taskDefinition="web", include=["TAGS"])["tags"] == []
    task = ecs.run_task(cluster="demo", taskDefinition="web", **FARGATE)["tasks"][0]
    assert task["tags"] == []
    assert ecs.describe_tasks(cluster="demo", tasks=[task["taskArn"]], include=["TAGS"])["tasks"][0]["tags"] == []
    ecs.create_service(cluster="demo", serviceName="s", taskDefinition="web", desiredCount=0, **FARGATE)
    assert ecs.describe_services(cluster="demo", services=["s"], include=["TAGS"])["services"][0]["tags"] == []
    assert ecs.list_tags_for_resource(resourceArn=task["taskArn"])["tags"] == []


def test_fargate_hides_its_fleet_in_the_api_but_the_admin_shows_it(ecs, client):
    from django.urls import reverse

    from dashboard.bootstrap import ensure_admin
    from orchestrator.models import ContainerInstance

    ecs.create_cluster(clusterName="demo")
    instance = ContainerInstance.objects.create(name="fleet-1", cpu_registered=4096, memory_registered=8192)
    ecs.register_task_definition(**fargate_task_definition())
    arn = ecs.run_task(cluster="demo", taskDefinition="web", **FARGATE)["tasks"][0]["taskArn"]
    Task.objects.update(container_instance=instance, last_status="RUNNING")
    described = ecs.describe_tasks(cluster="demo", tasks=[arn])
    assert_model_shape("DescribeTasks", described)
    assert "containerInstanceArn" not in described["tasks"][0]
    listed = ecs.list_container_instances(cluster="demo")
    assert_model_shape("ListContainerInstances", listed)
    assert listed["containerInstanceArns"] == []
    fleet_arn = f"arn:aws:ecs:us-east-1:000000000000:container-instance/demo/{instance.instance_id}"
    response = ecs.describe_container_instances(cluster="demo", containerInstances=[fleet_arn, instance.instance_id])
    assert response["containerInstances"] == []
    assert [f["reason"] for f in response["failures"]] == ["MISSING", "MISSING"]
    assert ecs.list_tasks(cluster="demo", containerInstance=instance.instance_id)["taskArns"] == []
    assert ecs.describe_clusters(clusters=["demo"])["clusters"][0]["registeredContainerInstancesCount"] == 0
    # The lab's operators still see where each task runs: that contrast is the lesson.
    ensure_admin()
    assert client.login(username="admin", password="admin")
    page = client.get(reverse("admin:orchestrator_containerinstance_changelist"))
    assert page.status_code == 200 and b"fleet-1" in page.content


def test_an_awsvpc_task_or_service_without_network_configuration_is_refused_in_ecss_words(ecs):
    ecs.create_cluster(clusterName="demo")
    ecs.register_task_definition(**fargate_task_definition())
    missing = "Network Configuration must be provided when networkMode 'awsvpc' is specified."
    assert error_of(ecs.run_task, cluster="demo", taskDefinition="web") == ("InvalidParameterException", missing, 400)
    assert error_of(ecs.create_service, cluster="demo", serviceName="s", taskDefinition="web",
                    desiredCount=1) == ("InvalidParameterException", missing, 400)
    assert error_of(ecs.run_task, cluster="demo", taskDefinition="web", launchType="FARGATE", networkConfiguration={}) == (
        "InvalidParameterException", missing, 400)
    assert error_of(ecs.run_task, cluster="demo", taskDefinition="web",
                    launchType="FARGATE", networkConfiguration={"awsvpcConfiguration": {"subnets": []}}) == (
        "InvalidParameterException", "subnets can not be empty.", 400)
    assert error_of(ecs.run_task, cluster="demo", taskDefinition="web", launchType="FARGATE", networkConfiguration=awsvpc(
        security_groups=[f"sg-{n}" for n in range(6)])) == (
        "InvalidParameterException", "securityGroups can have at most 5 items.", 400)
    assert not Task.objects.exists() and not Service.objects.exists()
    # With the account's default subnet (what tests.support.api.NETWORK holds) both go through.
    task = ecs.run_task(cluster="demo", taskDefinition="web", **FARGATE)["tasks"][0]
    assert _details(task)["subnetId"] == "subnet-a"
    service = ecs.create_service(cluster="demo", serviceName="s", taskDefinition="web", desiredCount=0, **FARGATE)
    assert service["service"]["networkConfiguration"] == NETWORK["networkConfiguration"]
    # UpdateService checks a new one as CreateService does, and keeps the old one when refused.
    assert error_of(ecs.update_service, cluster="demo", service="s",
                    networkConfiguration={"awsvpcConfiguration": {"subnets": []}}) == (
        "InvalidParameterException", "subnets can not be empty.", 400)
    moved = ecs.update_service(cluster="demo", service="s", networkConfiguration=awsvpc(["subnet-b"]))["service"]
    assert moved["networkConfiguration"]["awsvpcConfiguration"]["subnets"] == ["subnet-b"]
