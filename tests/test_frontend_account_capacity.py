"""Account settings, capacity providers and cluster updates through boto3, checked against
botocore's model and ECS's error types."""
import pytest

from orchestrator.frontend.account_settings import SETTINGS
from orchestrator.models import Account, AccountSetting, Cluster
from tests.support.api import FARGATE, NETWORK, assert_model_shape, error_of

ROOT = "arn:aws:iam::000000000000:root"
ROLE = "arn:aws:iam::000000000000:role/deployer"
CP_ARN = "arn:aws:ecs:us-east-1:000000000000:capacity-provider/"


# --- account settings --------------------------------------------------------------------------


def test_put_account_setting_is_stored_per_principal(ecs):
    response = ecs.put_account_setting(name="containerInsights", value="enhanced")
    assert_model_shape("PutAccountSetting", response)
    assert response["setting"] == {"name": "containerInsights", "value": "enhanced", "principalArn": ROOT, "type": "user"}
    ecs.put_account_setting(name="containerInsights", value="disabled", principalArn=ROLE)
    assert dict(AccountSetting.objects.values_list("principal_arn", "value")) == {ROOT: "enhanced", ROLE: "disabled"}


def test_list_account_settings_own_and_effective(ecs):
    assert ecs.list_account_settings()["settings"] == []
    ecs.put_account_setting_default(name="awsvpcTrunking", value="enabled")
    own = ecs.list_account_settings()
    assert_model_shape("ListAccountSettings", own)
    assert own["settings"] == [{"name": "awsvpcTrunking", "value": "enabled", "principalArn": ROOT, "type": "user"}]
    effective = [s for page in ecs.get_paginator("list_account_settings").paginate(effectiveSettings=True)
                 for s in page["settings"]]
    values = {s["name"]: s["value"] for s in effective}
    assert set(values) == set(SETTINGS)
    assert values["awsvpcTrunking"] == "enabled"
    assert values["containerInsights"] == "disabled"
    assert values["fargateTaskRetirementWaitPeriod"] == "7"
    # A role with no setting of its own sees the root user's value; with one, its own.
    ecs.put_account_setting(name="awsvpcTrunking", value="disabled", principalArn=ROLE)
    role = ecs.list_account_settings(effectiveSettings=True, principalArn=ROLE, name="awsvpcTrunking")["settings"]
    assert role == [{"name": "awsvpcTrunking", "value": "disabled", "principalArn": ROLE, "type": "user"}]
    assert ecs.list_account_settings(effectiveSettings=True, value="enabled")["settings"][0]["name"] == "serviceLongArnFormat"


def test_list_account_settings_pages_by_ten_at_most(ecs):
    first = ecs.list_account_settings(effectiveSettings=True, maxResults=4)
    assert len(first["settings"]) == 4 and first["nextToken"]
    assert error_of(ecs.list_account_settings, maxResults=11)[0] == "InvalidParameterException"
    assert error_of(ecs.list_account_settings, nextToken="nope!")[0] == "InvalidParameterException"


def test_delete_account_setting_falls_back_to_the_root_value(ecs):
    ecs.put_account_setting_default(name="tagResourceAuthorization", value="off")
    ecs.put_account_setting(name="tagResourceAuthorization", value="on", principalArn=ROLE)
    response = ecs.delete_account_setting(name="tagResourceAuthorization", principalArn=ROLE)
    assert_model_shape("DeleteAccountSetting", response)
    assert response["setting"]["value"] == "on"
    role = ecs.list_account_settings(effectiveSettings=True, principalArn=ROLE, name="tagResourceAuthorization")
    assert role["settings"][0]["value"] == "off"
    code, message, _ = error_of(ecs.delete_account_setting, name="tagResourceAuthorization", principalArn=ROLE)
    assert code == "InvalidParameterException" and "not set" in message


@pytest.mark.parametrize("name,value,why", [
    ("containerInsights", "maybe", "use enhanced, enabled, disabled"),
    ("fargateTaskRetirementWaitPeriod", "3", "use 0, 7, 14"),
    ("tagResourceAuthorization", "enabled", "use on, off"),
    ("guardDutyActivate", "enabled", "read-only"),
    ("serviceLongArnFormat", "disabled", "long ARN format"),
    ("fargateFIPSMode", "enabled", "FIPS"),
])
def test_it_refuses_values_ecs_or_the_lab_refuse(ecs, name, value, why):
    code, message, status = error_of(ecs.put_account_setting, name=name, value=value)
    assert (code, status) == ("InvalidParameterException", 400)
    assert why in message
    assert not AccountSetting.objects.exists()


def test_it_refuses_unknown_names_and_foreign_principals(ecs):
    assert error_of(ecs.put_account_setting_default, name="noSuchSetting", value="on")[0] == "InvalidParameterException"
    code, message, _ = error_of(ecs.put_account_setting, name="awsvpcTrunking", value="enabled",
                                principalArn="arn:aws:iam::111111111111:root")
    assert code == "InvalidParameterException" and "of this account" in message
    assert error_of(ecs.put_account_setting, name="fargateTaskRetirementWaitPeriod", value="0",
                    principalArn=ROLE)[0] == "InvalidParameterException"
    assert error_of(ecs.list_account_settings, principalArn="not-an-arn")[0] == "InvalidParameterException"


def test_settings_are_per_account(ecs, default_account):
    other = Account.objects.create(account_id="111111111111", name="other")
    ecs.put_account_setting_default(name="containerInsights", value="enabled")
    assert not AccountSetting.objects.filter(account=other).exists()


def test_the_container_insights_setting_is_the_default_of_new_clusters(ecs):
    ecs.put_account_setting_default(name="containerInsights", value="enhanced")
    cluster = ecs.create_cluster(clusterName="watched")["cluster"]
    assert cluster["settings"] == [{"name": "containerInsights", "value": "enhanced"}]
    explicit = ecs.create_cluster(clusterName="quiet", settings=[{"name": "containerInsights", "value": "disabled"}])
    assert explicit["cluster"]["settings"] == [{"name": "containerInsights", "value": "disabled"}]


# --- capacity providers ------------------------------------------------------------------------


def test_describe_capacity_providers_lists_fargates_two(ecs):
    response = ecs.describe_capacity_providers()
    assert_model_shape("DescribeCapacityProviders", response)
    assert [(p["name"], p["status"], p["capacityProviderArn"]) for p in response["capacityProviders"]] == [
        ("FARGATE", "ACTIVE", CP_ARN + "FARGATE"), ("FARGATE_SPOT", "ACTIVE", CP_ARN + "FARGATE_SPOT")]
    assert all("autoScalingGroupProvider" not in p for p in response["capacityProviders"])
    named = ecs.describe_capacity_providers(capacityProviders=[CP_ARN + "FARGATE_SPOT", "mine"], include=["TAGS"])
    assert [p["name"] for p in named["capacityProviders"]] == ["FARGATE_SPOT"]
    assert named["capacityProviders"][0]["tags"] == []
    assert named["failures"] == [{"arn": CP_ARN + "mine", "reason": "MISSING"}]
    page = ecs.describe_capacity_providers(maxResults=1)
    assert len(page["capacityProviders"]) == 1
    assert [p["name"] for p in ecs.describe_capacity_providers(nextToken=page["nextToken"])["capacityProviders"]] == ["FARGATE_SPOT"]


def test_a_cluster_echoes_its_capacity_providers(ecs):
    plain = ecs.create_cluster(clusterName="plain")["cluster"]
    assert_model_shape("CreateCluster", {"cluster": plain})
    assert plain["capacityProviders"] == [] and plain["defaultCapacityProviderStrategy"] == []
    strategy = [{"capacityProvider": "FARGATE", "weight": 1, "base": 2}, {"capacityProvider": "FARGATE_SPOT", "weight": 3}]
    made = ecs.create_cluster(clusterName="mixed", capacityProviders=["FARGATE", "FARGATE_SPOT"],
                              defaultCapacityProviderStrategy=strategy)["cluster"]
    assert made["capacityProviders"] == ["FARGATE", "FARGATE_SPOT"]
    assert made["defaultCapacityProviderStrategy"] == [
        {"capacityProvider": "FARGATE", "weight": 1, "base": 2}, {"capacityProvider": "FARGATE_SPOT", "weight": 3, "base": 0}]
    response = ecs.put_cluster_capacity_providers(
        cluster="plain", capacityProviders=["FARGATE_SPOT"],
        defaultCapacityProviderStrategy=[{"capacityProvider": "FARGATE_SPOT", "weight": 1}])
    assert_model_shape("PutClusterCapacityProviders", response)
    described = ecs.describe_clusters(clusters=["plain"])["clusters"][0]
    assert described["capacityProviders"] == ["FARGATE_SPOT"]
    assert described["defaultCapacityProviderStrategy"] == [{"capacityProvider": "FARGATE_SPOT", "weight": 1, "base": 0}]


@pytest.mark.parametrize("providers,strategy,why", [
    (["my-asg"], [], "does not exist"),
    (["FARGATE"], [{"capacityProvider": "FARGATE_SPOT", "weight": 1}], "not associated with the cluster"),
    (["FARGATE", "FARGATE_SPOT"], [{"capacityProvider": "FARGATE", "weight": 1, "base": 1},
                                   {"capacityProvider": "FARGATE_SPOT", "weight": 1, "base": 1}], "Only one"),
    (["FARGATE"], [{"capacityProvider": "FARGATE", "weight": 0}], "weight greater than zero"),
    (["FARGATE"], [{"capacityProvider": "FARGATE", "weight": 1001}], "between 0 and 1000"),
    (["FARGATE"], [{"capacityProvider": "FARGATE", "weight": 1, "base": 100001}], "between 0 and 100000"),
    (["FARGATE", "FARGATE"], [], "once"),
])
def test_put_cluster_capacity_providers_refuses_what_ecs_refuses(ecs, providers, strategy, why):
    ecs.create_cluster(clusterName="c")
    code, message, _ = error_of(ecs.put_cluster_capacity_providers, cluster="c", capacityProviders=providers,
                                defaultCapacityProviderStrategy=strategy)
    assert code == "InvalidParameterException" and why in message
    cluster = Cluster.objects.get(name="c")
    assert cluster.capacity_providers == [] and cluster.default_capacity_provider_strategy == []


def test_put_cluster_capacity_providers_needs_a_cluster(ecs):
    assert error_of(ecs.put_cluster_capacity_providers, cluster="nope", capacityProviders=[],
                    defaultCapacityProviderStrategy=[])[0] == "ClusterNotFoundException"


def test_auto_scaling_capacity_providers_are_refused_saying_why(ecs):
    asg = {"autoScalingGroupArn": "arn:aws:autoscaling:us-east-1:000000000000:autoScalingGroup:x"}
    code, message, _ = error_of(ecs.create_capacity_provider, name="mine", autoScalingGroupProvider=asg)
    assert code == "ClientException" and "no Auto Scaling groups" in message
    assert error_of(ecs.create_capacity_provider, name="FARGATE_X")[0] == "InvalidParameterException"
    code, message, _ = error_of(ecs.delete_capacity_provider, capacityProvider="FARGATE")
    assert code == "ClientException" and "built into Fargate" in message
    assert error_of(ecs.update_capacity_provider, name="mine", autoScalingGroupProvider={})[0] == "ClientException"


# --- clusters ----------------------------------------------------------------------------------


def test_update_cluster_echoes_settings_configuration_and_service_connect(ecs):
    ecs.create_cluster(clusterName="c")
    configuration = {"executeCommandConfiguration": {"logging": "DEFAULT"}}
    response = ecs.update_cluster(cluster="c", settings=[{"name": "containerInsights", "value": "enabled"}],
                                  configuration=configuration, serviceConnectDefaults={"namespace": "lab"})
    assert_model_shape("UpdateCluster", response)
    cluster = response["cluster"]
    assert cluster["settings"] == [{"name": "containerInsights", "value": "enabled"}]
    assert cluster["configuration"] == configuration
    assert cluster["serviceConnectDefaults"] == {"namespace": "lab"}
    described = ecs.describe_clusters(clusters=["c"], include=["SETTINGS", "CONFIGURATIONS"])["clusters"][0]
    assert described["configuration"] == configuration and described["settings"] == cluster["settings"]
    created = ecs.create_cluster(clusterName="d", configuration=configuration,
                                 serviceConnectDefaults={"namespace": "lab"})["cluster"]
    assert created["configuration"] == configuration and created["serviceConnectDefaults"] == {"namespace": "lab"}


def test_update_cluster_settings_sets_container_insights(ecs):
    ecs.create_cluster(clusterName="c")
    response = ecs.update_cluster_settings(cluster="c", settings=[{"name": "containerInsights", "value": "enhanced"}])
    assert_model_shape("UpdateClusterSettings", response)
    assert Cluster.objects.get(name="c").settings == [{"name": "containerInsights", "value": "enhanced"}]
    code, _, _ = error_of(ecs.update_cluster_settings, cluster="c",
                          settings=[{"name": "containerInsights", "value": "loud"}])
    assert code == "InvalidParameterException"
    assert error_of(ecs.update_cluster_settings, cluster="c", settings=[{"name": "other", "value": "x"}])[0] == \
        "InvalidParameterException"
    assert error_of(ecs.update_cluster, cluster="nope")[0] == "ClusterNotFoundException"
    assert Cluster.objects.get(name="c").settings == [{"name": "containerInsights", "value": "enhanced"}]


# --- task definitions --------------------------------------------------------------------------


def test_delete_task_definitions_deletes_inactive_revisions_only(ecs):
    from tests.support.api import fargate_task_definition

    ecs.register_task_definition(**fargate_task_definition("gone"))
    response = ecs.delete_task_definitions(taskDefinitions=["gone:1", "gone", "gone:9"])
    assert_model_shape("DeleteTaskDefinitions", response)
    assert response["taskDefinitions"] == []
    assert [f["reason"].split(".")[0] for f in response["failures"]] == [
        "The specified task definition is still in ACTIVE status",
        "The specified task definition identifier is invalid",
        "The specified task definition does not exist",
    ]
    ecs.deregister_task_definition(taskDefinition="gone:1")
    deleted = ecs.delete_task_definitions(taskDefinitions=["gone:1"])["taskDefinitions"]
    assert [(d["family"], d["revision"], d["status"]) for d in deleted] == [("gone", 1, "DELETE_IN_PROGRESS")]
    # Nothing uses it: it is gone from the API, and the family's revisions go on counting.
    code, _, _ = error_of(ecs.describe_task_definition, taskDefinition="gone:1")
    assert code == "ClientException"
    assert ecs.list_task_definitions(status="DELETE_IN_PROGRESS")["taskDefinitionArns"] == []
    assert "gone" not in ecs.list_task_definition_families(status="ALL")["families"]
    assert ecs.register_task_definition(**fargate_task_definition("gone"))["taskDefinition"]["revision"] == 2
    assert error_of(ecs.delete_task_definitions, taskDefinitions=[f"gone:{i}" for i in range(1, 12)])[0] == \
        "InvalidParameterException"


def test_a_revision_a_task_uses_stays_delete_in_progress_until_it_stops(ecs):
    from orchestrator.models import Task
    from tests.support.api import fargate_task_definition

    ecs.create_cluster()
    ecs.register_task_definition(**fargate_task_definition("busy"))
    ecs.run_task(taskDefinition="busy:1", **FARGATE)
    ecs.deregister_task_definition(taskDefinition="busy:1")
    ecs.delete_task_definitions(taskDefinitions=["busy:1"])
    assert ecs.describe_task_definition(taskDefinition="busy:1")["taskDefinition"]["status"] == "DELETE_IN_PROGRESS"
    arn = "arn:aws:ecs:us-east-1:000000000000:task-definition/busy:1"
    assert ecs.list_task_definitions(status="DELETE_IN_PROGRESS")["taskDefinitionArns"] == [arn]
    code, message, _ = error_of(ecs.run_task, taskDefinition="busy:1", **FARGATE)
    assert code == "ClientException"
    Task.objects.update(last_status=Task.STOPPED, desired_status=Task.STOPPED)
    assert error_of(ecs.describe_task_definition, taskDefinition="busy:1")[0] == "ClientException"
    assert ecs.list_task_definitions(status="DELETE_IN_PROGRESS")["taskDefinitionArns"] == []


# --- RunTask and services with a capacity provider strategy ------------------------------------


def test_spread_puts_the_base_first_then_follows_the_weights():
    from orchestrator.capacity_strategy import spread

    strategy = [{"capacityProvider": "FARGATE", "weight": 1, "base": 2},
                {"capacityProvider": "FARGATE_SPOT", "weight": 3, "base": 0}]
    chosen = spread(strategy, 10)
    assert chosen[:2] == ["FARGATE", "FARGATE"]
    assert chosen[2:].count("FARGATE_SPOT") == 6 and chosen[2:].count("FARGATE") == 2
    assert spread(strategy, 1) == ["FARGATE"]
    assert spread([], 2) == ["", ""]


def test_run_task_honours_a_strategy_and_names_the_provider(ecs):
    from tests.support.api import fargate_task_definition

    ecs.create_cluster(capacityProviders=["FARGATE", "FARGATE_SPOT"])
    ecs.register_task_definition(**fargate_task_definition())
    response = ecs.run_task(taskDefinition="web", count=5, capacityProviderStrategy=[
        {"capacityProvider": "FARGATE", "base": 1, "weight": 1}, {"capacityProvider": "FARGATE_SPOT", "weight": 1}], **NETWORK)
    assert_model_shape("RunTask", response)
    names = [t["capacityProviderName"] for t in response["tasks"]]
    assert sorted(names) == ["FARGATE"] * 3 + ["FARGATE_SPOT"] * 2  # the base, then half each
    assert {t["launchType"] for t in response["tasks"]} == {"FARGATE"}
    plain = ecs.run_task(taskDefinition="web", **FARGATE)["tasks"][0]
    assert "capacityProviderName" not in plain


def test_run_task_without_launch_type_or_strategy_uses_the_clusters_default_strategy(ecs):
    from tests.support.api import fargate_task_definition

    ecs.create_cluster(capacityProviders=["FARGATE", "FARGATE_SPOT"], defaultCapacityProviderStrategy=[
        {"capacityProvider": "FARGATE", "base": 1, "weight": 1}, {"capacityProvider": "FARGATE_SPOT", "weight": 3}])
    ecs.register_task_definition(**fargate_task_definition())
    response = ecs.run_task(taskDefinition="web", count=5, **NETWORK)
    assert_model_shape("RunTask", response)
    names = [t["capacityProviderName"] for t in response["tasks"]]
    assert sorted(names) == ["FARGATE"] * 2 + ["FARGATE_SPOT"] * 3  # the base, then one in four on FARGATE
    # A launch type or a strategy of the call's own replaces the default, as on ECS.
    assert "capacityProviderName" not in ecs.run_task(taskDefinition="web", launchType="FARGATE", **NETWORK)["tasks"][0]
    own = ecs.run_task(taskDefinition="web", capacityProviderStrategy=[{"capacityProvider": "FARGATE", "weight": 1}], **NETWORK)
    assert own["tasks"][0]["capacityProviderName"] == "FARGATE"


def test_run_task_refuses_a_strategy_ecs_refuses(ecs):
    from orchestrator.models import Task
    from tests.support.api import fargate_task_definition

    ecs.create_cluster(capacityProviders=["FARGATE"])
    ecs.register_task_definition(**fargate_task_definition())
    spot = [{"capacityProvider": "FARGATE_SPOT", "weight": 1}]
    code, message, _ = error_of(ecs.run_task, taskDefinition="web", capacityProviderStrategy=spot, **NETWORK)
    assert code == "InvalidParameterException" and "not associated with the cluster" in message
    code, message, _ = error_of(ecs.run_task, taskDefinition="web", launchType="FARGATE",
                                capacityProviderStrategy=[{"capacityProvider": "FARGATE", "weight": 1}], **NETWORK)
    assert code == "InvalidParameterException" and "both a launch type and capacity provider strategy" in message
    assert not Task.objects.exists()


def test_a_service_takes_a_strategy_and_shows_it_instead_of_a_launch_type(ecs):
    from orchestrator.models import Deployment, Service
    from tests.support.api import fargate_task_definition

    ecs.create_cluster(capacityProviders=["FARGATE", "FARGATE_SPOT"])
    ecs.register_task_definition(**fargate_task_definition())
    strategy = [{"capacityProvider": "FARGATE", "base": 1, "weight": 1}, {"capacityProvider": "FARGATE_SPOT", "weight": 3}]
    created = ecs.create_service(serviceName="s", taskDefinition="web", desiredCount=0,
                                 capacityProviderStrategy=strategy, **NETWORK)
    assert_model_shape("CreateService", created)
    service = ecs.describe_services(services=["s"])["services"][0]
    assert service["capacityProviderStrategy"] == [dict(strategy[0]), {**strategy[1], "base": 0}]
    assert "launchType" not in service and "launchType" not in service["deployments"][0]
    assert service["deployments"][0]["capacityProviderStrategy"] == service["capacityProviderStrategy"]
    # A new strategy is a new deployment (its tasks are spread anew); the same one is not.
    ecs.update_service(service="s", capacityProviderStrategy=[{"capacityProvider": "FARGATE_SPOT", "weight": 1}])
    assert Service.objects.get().capacity_provider_strategy == [{"capacityProvider": "FARGATE_SPOT", "weight": 1, "base": 0}]
    assert Deployment.objects.count() == 2
    ecs.update_service(service="s", capacityProviderStrategy=[{"capacityProvider": "FARGATE_SPOT", "weight": 1}])
    assert Deployment.objects.count() == 2
    plain = ecs.create_service(serviceName="plain", taskDefinition="web", desiredCount=0, **FARGATE)["service"]
    assert plain["launchType"] == "FARGATE" and "capacityProviderStrategy" not in plain


def test_a_service_without_launch_type_or_strategy_takes_the_clusters_default(ecs):
    from tests.support.api import fargate_task_definition

    spot = [{"capacityProvider": "FARGATE_SPOT", "weight": 1, "base": 0}]
    ecs.create_cluster(capacityProviders=["FARGATE_SPOT"], defaultCapacityProviderStrategy=spot)
    ecs.register_task_definition(**fargate_task_definition())
    assert ecs.create_service(serviceName="s", taskDefinition="web", desiredCount=0, **NETWORK)["service"][
        "capacityProviderStrategy"] == spot
    assert ecs.create_service(serviceName="t", taskDefinition="web", desiredCount=0, launchType="FARGATE", **NETWORK)[
        "service"]["launchType"] == "FARGATE"


def test_run_task_with_neither_and_no_default_strategy_takes_ec2_and_finds_no_container_instances(ecs):
    from orchestrator.models import Task
    from tests.support.api import fargate_task_definition

    ecs.create_cluster(capacityProviders=["FARGATE", "FARGATE_SPOT"])  # providers, but no default strategy
    ecs.register_task_definition(**fargate_task_definition())
    code, message, status = error_of(ecs.run_task, taskDefinition="web", count=2, **NETWORK)
    assert (code, message, status) == (
        "InvalidParameterException", "No Container Instances were found in your cluster.", 400)
    assert not Task.objects.exists()
    # The awsvpc network configuration is checked first, as for any launch type.
    code, message, _ = error_of(ecs.run_task, taskDefinition="web")
    assert code == "InvalidParameterException" and "Network Configuration must be provided" in message
    assert ecs.run_task(taskDefinition="web", **FARGATE)["tasks"][0]["launchType"] == "FARGATE"


def test_a_service_with_neither_and_no_default_strategy_takes_ec2_and_places_no_task(ecs):
    from orchestrator.cluster_manager import ClusterManager
    from orchestrator.models import Deployment, Service, Task
    from tests.support.api import fargate_task_definition

    ecs.create_cluster(capacityProviders=["FARGATE"])
    ecs.register_task_definition(**fargate_task_definition())
    created = ecs.create_service(serviceName="s", taskDefinition="web", desiredCount=2, **NETWORK)
    assert_model_shape("CreateService", created)
    assert created["service"]["launchType"] == "EC2" and "capacityProviderStrategy" not in created["service"]
    assert created["service"]["deployments"][0]["launchType"] == "EC2"
    manager = ClusterManager(lambda key, delay=0: None)
    for _ in range(2):  # said once, however often the scheduler comes back
        manager.sync_service(Service.objects.get().pk)
    assert not Task.objects.exists()
    service = ecs.describe_services(services=["s"])["services"][0]
    assert (service["desiredCount"], service["runningCount"], service["pendingCount"]) == (2, 0, 0)
    assert [e["message"] for e in service["events"]] == [
        "(service s) was unable to place a task because no container instance met all of its requirements. "
        "Reason: No Container Instances were found in your cluster. For more information, see the "
        "Troubleshooting section of the Amazon ECS Developer Guide."]
    assert ecs.list_services(launchType="EC2")["serviceArns"] == [service["serviceArn"]]
    # A strategy of Fargate's providers moves it onto Fargate, in a new deployment that places its tasks.
    ecs.update_service(service="s", capacityProviderStrategy=[{"capacityProvider": "FARGATE", "weight": 1}])
    moved = ecs.describe_services(services=["s"])["services"][0]
    assert "launchType" not in moved and moved["capacityProviderStrategy"][0]["capacityProvider"] == "FARGATE"
    assert Deployment.objects.count() == 2
    manager.sync_service(Service.objects.get().pk)
    assert sorted(Task.objects.values_list("launch_type", "capacity_provider")) == [("FARGATE", "FARGATE")] * 2


def test_services_refuse_a_strategy_ecs_refuses(ecs):
    from orchestrator.models import Service
    from tests.support.api import fargate_task_definition

    ecs.create_cluster(capacityProviders=["FARGATE"])
    ecs.register_task_definition(**fargate_task_definition())
    code, message, _ = error_of(ecs.create_service, serviceName="s", taskDefinition="web", desiredCount=0,
                                capacityProviderStrategy=[{"capacityProvider": "FARGATE_SPOT", "weight": 1}], **NETWORK)
    assert code == "InvalidParameterException" and "not associated with the cluster" in message
    code, message, _ = error_of(ecs.create_service, serviceName="s", taskDefinition="web", desiredCount=0,
                                launchType="FARGATE", capacityProviderStrategy=[{"capacityProvider": "FARGATE", "weight": 1}], **NETWORK)
    assert code == "InvalidParameterException" and "both a launch type and capacity provider strategy" in message
    assert not Service.objects.exists()
    ecs.create_service(serviceName="s", taskDefinition="web", desiredCount=0, **FARGATE)
    code, _, _ = error_of(ecs.update_service, service="s", desiredCount=1,
                          capacityProviderStrategy=[{"capacityProvider": "FARGATE", "weight": 0}])
    assert code == "InvalidParameterException"
    assert Service.objects.get().desired_count == 0 and Service.objects.get().capacity_provider_strategy == []


def test_fill_places_a_services_new_tasks_where_its_strategy_is_short():
    from orchestrator.capacity_strategy import fill

    strategy = [{"capacityProvider": "FARGATE", "weight": 1, "base": 1},
                {"capacityProvider": "FARGATE_SPOT", "weight": 1, "base": 0}]
    assert fill(strategy, [], 3) == ["FARGATE", "FARGATE", "FARGATE_SPOT"]  # as RunTask spreads 3
    # A Spot task interrupted out of 1 + 2: its replacement goes back to FARGATE_SPOT.
    assert fill(strategy, ["FARGATE", "FARGATE"], 1) == ["FARGATE_SPOT"]
    assert fill(strategy, ["FARGATE", "FARGATE_SPOT", "FARGATE_SPOT"], 1) == ["FARGATE"]
    assert fill([{"capacityProvider": "FARGATE_SPOT", "weight": 1, "base": 0}], ["FARGATE"], 2) == ["FARGATE_SPOT"] * 2
    assert fill([], ["FARGATE"], 2) == []
