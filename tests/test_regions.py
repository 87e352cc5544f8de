"""Issue 11, item 3: regions. The region in the signature's credential scope is the region the call
acts in; ARNs carry it, and each region's objects are its own (an account's us-east-1 and
eu-west-1 clusters named alike are two). Through boto3, one client per region, on every API."""
import pytest

from orchestrator.models import Cluster, LoadBalancer, Repository, TaskDefinition
from tests.support.api import error_of, fargate_task_definition, lab_client
from tests.support.lab import lab_containers, poll
from tests.test_task_metadata_docker import http_get

HOME, AWAY = "us-east-1", "eu-west-1"


def clients(live_server, service):
    """(us-east-1 client, eu-west-1 client) of one API, with the default account's key."""
    return lab_client(live_server, service), lab_client(live_server, service, region=AWAY)


@pytest.fixture
def ecs2(live_server, default_account):
    return clients(live_server, "ecs")


def test_ecs_clusters_of_one_name_in_two_regions_are_two(ecs2):
    home, away = ecs2
    a = home.create_cluster(clusterName="demo")["cluster"]
    b = away.create_cluster(clusterName="demo", tags=[{"key": "where", "value": "away"}])["cluster"]
    assert a["clusterArn"] == "arn:aws:ecs:us-east-1:000000000000:cluster/demo"
    assert b["clusterArn"] == "arn:aws:ecs:eu-west-1:000000000000:cluster/demo"
    assert Cluster.objects.filter(name="demo").count() == 2
    assert home.list_clusters()["clusterArns"] == [a["clusterArn"]]
    assert away.list_clusters()["clusterArns"] == [b["clusterArn"]]
    assert home.describe_clusters(clusters=["demo"], include=["TAGS"])["clusters"][0]["tags"] == []
    # An ARN of the other region is not found here, as on AWS.
    described = home.describe_clusters(clusters=[b["clusterArn"]])
    assert described["clusters"] == [] and described["failures"][0]["reason"] == "MISSING"
    away.delete_cluster(cluster="demo")
    assert home.describe_clusters(clusters=["demo"])["clusters"][0]["status"] == "ACTIVE"


def test_task_definitions_services_and_tasks_are_per_region(ecs2):
    home, away = ecs2
    for client in (home, away):
        client.create_cluster(clusterName="demo")
    home.register_task_definition(**fargate_task_definition())
    home.register_task_definition(**fargate_task_definition())
    registered = away.register_task_definition(**fargate_task_definition())["taskDefinition"]
    # Revisions count per region: eu-west-1's first web is web:1.
    assert registered["taskDefinitionArn"] == "arn:aws:ecs:eu-west-1:000000000000:task-definition/web:1"
    assert TaskDefinition.objects.filter(family="web").count() == 3
    assert len(home.list_task_definitions()["taskDefinitionArns"]) == 2
    assert away.list_task_definitions()["taskDefinitionArns"] == [registered["taskDefinitionArn"]]
    assert error_of(away.describe_task_definition, taskDefinition="web:2")[0] == "ClientException"

    network = {"awsvpcConfiguration": {"subnets": ["subnet-a"]}}
    service = away.create_service(cluster="demo", serviceName="api", taskDefinition="web", desiredCount=0,
                                  launchType="FARGATE", networkConfiguration=network)["service"]
    assert service["serviceArn"] == "arn:aws:ecs:eu-west-1:000000000000:service/demo/api"
    assert service["clusterArn"].startswith("arn:aws:ecs:eu-west-1:")
    assert home.list_services(cluster="demo")["serviceArns"] == []
    assert home.describe_services(cluster="demo", services=["api"])["failures"][0]["reason"] == "MISSING"

    task = away.run_task(cluster="demo", taskDefinition="web", launchType="FARGATE",
                         networkConfiguration=network)["tasks"][0]
    assert task["taskArn"].startswith("arn:aws:ecs:eu-west-1:000000000000:task/demo/")
    assert task["availabilityZone"].startswith(AWAY)
    assert home.list_tasks(cluster="demo")["taskArns"] == []
    assert away.list_tasks(cluster="demo")["taskArns"] == [task["taskArn"]]
    missing = home.describe_tasks(cluster="demo", tasks=[task["taskArn"]])
    assert missing["tasks"] == [] and missing["failures"]
    assert error_of(home.tag_resource, resourceArn=task["taskArn"], tags=[{"key": "k", "value": "v"}])[0] \
        == "InvalidParameterException"


def test_elbv2_load_balancers_and_target_groups_are_per_region(live_server, default_account):
    home, away = clients(live_server, "elbv2")
    a = home.create_load_balancer(Name="front", Subnets=["subnet-a"])["LoadBalancers"][0]
    b = away.create_load_balancer(Name="front", Subnets=["subnet-a"])["LoadBalancers"][0]
    assert a["LoadBalancerArn"] != b["LoadBalancerArn"] and LoadBalancer.objects.count() == 2
    assert b["LoadBalancerArn"].startswith("arn:aws:elasticloadbalancing:eu-west-1:000000000000:loadbalancer/app/front/")
    assert ".eu-west-1." in b["DNSName"] and ".us-east-1." in a["DNSName"]
    assert b["AvailabilityZones"][0]["ZoneName"].startswith(AWAY)
    assert [lb["LoadBalancerArn"] for lb in home.describe_load_balancers()["LoadBalancers"]] == [a["LoadBalancerArn"]]
    assert error_of(home.describe_load_balancers, LoadBalancerArns=[b["LoadBalancerArn"]])[0] \
        == "LoadBalancerNotFound"
    tg = away.create_target_group(Name="web", Protocol="HTTP", Port=80, VpcId="vpc-1",
                                  TargetType="ip")["TargetGroups"][0]
    assert tg["TargetGroupArn"].startswith("arn:aws:elasticloadbalancing:eu-west-1:")
    assert home.describe_target_groups()["TargetGroups"] == []
    home_tg = home.create_target_group(Name="web", Protocol="HTTP", Port=8080, VpcId="vpc-1",
                                       TargetType="ip")["TargetGroups"][0]  # other settings: no clash
    assert home_tg["TargetGroupArn"] != tg["TargetGroupArn"]


def test_ecr_repositories_are_per_region(live_server, default_account, lab_registry):
    home, away = clients(live_server, "ecr")
    a = home.create_repository(repositoryName="web")["repository"]
    b = away.create_repository(repositoryName="web")["repository"]
    assert a["repositoryArn"] == "arn:aws:ecr:us-east-1:000000000000:repository/web"
    assert b["repositoryArn"] == "arn:aws:ecr:eu-west-1:000000000000:repository/web"
    assert b["repositoryUri"].endswith("/000000000000/eu-west-1/web") and a["repositoryUri"].endswith("/000000000000/web")
    assert Repository.objects.filter(name="web").count() == 2
    assert [r["repositoryArn"] for r in away.describe_repositories()["repositories"]] == [b["repositoryArn"]]
    away.delete_repository(repositoryName="web")
    assert [r["repositoryArn"] for r in home.describe_repositories()["repositories"]] == [a["repositoryArn"]]
    # A default-region name that would be another region's registry path is refused.
    assert error_of(home.create_repository, repositoryName="eu-west-1/web")[0] == "InvalidParameterException"


@pytest.mark.parametrize("service, create, listing, arn_of", [
    ("logs", lambda c: c.create_log_group(logGroupName="/ecs/web"),
     lambda c: [g["logGroupName"] for g in c.describe_log_groups()["logGroups"]],
     lambda c: c.describe_log_groups()["logGroups"][0]["arn"]),
    ("ssm", lambda c: c.put_parameter(Name="/app/db", Value="v", Type="String"),
     lambda c: [p["Name"] for p in c.describe_parameters()["Parameters"]],
     lambda c: c.get_parameter(Name="/app/db")["Parameter"]["ARN"]),
    ("secretsmanager", lambda c: c.create_secret(Name="db", SecretString="v"),
     lambda c: [s["Name"] for s in c.list_secrets()["SecretList"]],
     lambda c: c.describe_secret(SecretId="db")["ARN"]),
    ("servicediscovery", lambda c: c.create_http_namespace(Name="shop"),
     lambda c: [n["Name"] for n in c.list_namespaces()["Namespaces"]],
     lambda c: c.list_namespaces()["Namespaces"][0]["Arn"]),
])
def test_the_other_apis_keep_each_region_apart(live_server, default_account, service, create, listing, arn_of):
    home, away = clients(live_server, service)
    create(away)
    assert listing(home) == [] and len(listing(away)) == 1
    assert f":{AWAY}:000000000000:" in arn_of(away)
    create(home)  # the same name in the other region is no clash
    assert len(listing(home)) == 1 and f":{HOME}:000000000000:" in arn_of(home)


def test_application_autoscaling_targets_are_per_region(ecs2, live_server):
    home, away = ecs2
    away.create_cluster(clusterName="demo")
    away.register_task_definition(**fargate_task_definition())
    away.create_service(cluster="demo", serviceName="api", taskDefinition="web", desiredCount=0,
                        launchType="FARGATE", networkConfiguration={"awsvpcConfiguration": {"subnets": ["subnet-a"]}})
    scaling_home, scaling_away = clients(live_server, "application-autoscaling")
    target = dict(ServiceNamespace="ecs", ResourceId="service/demo/api", ScalableDimension="ecs:service:DesiredCount",
                  MinCapacity=1, MaxCapacity=3)
    # us-east-1 has no such service: the target is refused there.
    assert error_of(scaling_home.register_scalable_target, **target)[0] == "ValidationException"
    arn = scaling_away.register_scalable_target(**target)["ScalableTargetARN"]
    assert arn.startswith("arn:aws:application-autoscaling:eu-west-1:000000000000:")
    assert scaling_home.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"] == []


@pytest.mark.docker
def test_a_task_runs_on_its_regions_network_and_knows_its_region(lab, docker_client):
    """Real containers: the same cluster name in two regions gives two Docker networks, and the
    task's container sees its own region as AWS_REGION."""
    definition = fargate_task_definition()
    network = {"awsvpcConfiguration": {"subnets": ["subnet-a"]}}
    arns = {}
    for name in (HOME, AWAY):
        ecs = lab.client(region_name=name)
        ecs.create_cluster(clusterName="demo")
        ecs.register_task_definition(**definition)
        arns[name] = ecs.run_task(cluster="demo", taskDefinition="web", launchType="FARGATE",
                                  networkConfiguration=network)["tasks"][0]["taskArn"]
        assert arns[name].startswith(f"arn:aws:ecs:{name}:")

    def running(name):
        ecs = lab.client(region_name=name)
        task = ecs.describe_tasks(cluster="demo", tasks=[arns[name]])["tasks"][0]
        return task["lastStatus"] == "RUNNING" and task

    for name in arns:
        poll(lambda: running(name), timeout=60, message=f"the {name} task RUNNING")
    containers = {c.labels.get("fargatelab.task-arn"): c for c in lab_containers(docker_client, lab.lab_id)}
    for name, arn in arns.items():
        container = containers[arn]
        env = dict(e.split("=", 1) for e in container.attrs["Config"]["Env"])
        assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == name
        networks = set(container.attrs["NetworkSettings"]["Networks"])
        assert networks == {f"fargatelab-{lab.lab_id}-000000000000-{name}-demo"}
        status, metadata = http_get(container, "$ECS_CONTAINER_METADATA_URI_V4/task")
        assert status == 200 and metadata["TaskARN"] == arn and metadata["AvailabilityZone"].startswith(name)


def _create_cluster(region_name, name):
    from orchestrator.frontend import call
    from orchestrator.models import Account, acting_in

    with acting_in(region_name):
        return call(Account.default(), "CreateCluster", {"clusterName": name})["cluster"]


@pytest.mark.browser
def test_the_dashboard_shows_the_region_its_selector_chose(page, live_lab_server):
    """The selector in the top bar keeps the region in the session: the pages and their live
    updates, the forms and the map show that region's objects only."""
    from playwright.sync_api import expect

    from tests.support.browser import wait_live

    _create_cluster(HOME, "home-only")
    _create_cluster(AWAY, "away-only")
    page.goto(f"{live_lab_server.url}/clusters/")
    wait_live(page)
    main = page.locator("main")
    expect(main).to_contain_text("home-only")
    expect(main).not_to_contain_text("away-only")
    expect(page.locator("select[data-region-select]")).to_have_value(HOME)

    page.select_option("select[data-region-select]", AWAY)
    page.wait_for_url(f"{live_lab_server.url}/clusters/")
    expect(page.locator("select[data-region-select]")).to_have_value(AWAY)
    wait_live(page)
    expect(main).to_contain_text("away-only")
    expect(main).not_to_contain_text("home-only")
    # Live: a new eu-west-1 cluster arrives over the socket, a us-east-1 one made before it does not.
    _create_cluster(HOME, "home-later")
    _create_cluster(AWAY, "away-later")
    expect(main).to_contain_text("away-later")
    expect(main).not_to_contain_text("home-later")
    # A page of the other region's object is not found here; the form creates in eu-west-1.
    assert page.goto(f"{live_lab_server.url}/clusters/home-only/").status == 404
    page.goto(f"{live_lab_server.url}/clusters/")
    page.fill("#create-cluster-form input[name=name]", "made-on-the-page")
    page.locator("#create-cluster-form button[type=submit]").first.click()
    expect(main).to_contain_text("made-on-the-page")
    assert Cluster.objects.get(name="made-on-the-page").region == AWAY
    # The map counts this region's clusters: away-only, away-later and made-on-the-page.
    page.goto(live_lab_server.url + "/")
    wait_live(page)
    clusters = page.locator('.card[data-component="statedb"] .counts div').filter(has_text="Clusters").locator("dd")
    expect(clusters).to_have_text("3")
    page.select_option("select[data-region-select]", HOME)
    expect(page.locator('.card[data-component="statedb"] .counts div').filter(has_text="Clusters")
           .locator("dd")).to_have_text("2")


def test_the_selector_refuses_a_region_the_lab_does_not_serve(client, django_user_model):
    user = django_user_model.objects.create_user("amy", password="pw-amy-12345")
    client.force_login(user)
    response = client.post("/region/", {"region": "mars-north-1"}, HTTP_REFERER="http://testserver/clusters/",
                           follow=True)
    assert response.status_code == 200 and b"not a region this lab serves" in response.content
    assert b'<option value="us-east-1" selected>' in response.content
    client.post("/region/", {"region": AWAY})
    assert b'<option value="eu-west-1" selected>' in client.get("/clusters/").content
    # Another site as Referer: back to the map, never off the lab.
    assert client.post("/region/", {"region": AWAY}, HTTP_REFERER="http://evil.example/")["Location"] == "/"


@pytest.mark.django_db(transaction=True)
def test_the_migration_puts_existing_rows_in_the_configured_default_region(settings):
    """Rows made before regions (migration 0022) land in FARGATE_LAB["REGION"], whatever it is."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "REGION": "eu-central-1"}
    before, after = [("orchestrator", "0022_task_sandbox")], [("orchestrator", "0023_regions")]
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    try:
        executor.migrate(before)
        old = MigrationExecutor(connection).loader.project_state(before).apps
        account = old.get_model("orchestrator", "Account").objects.create(account_id="000000000042", name="old")
        old.get_model("orchestrator", "Cluster").objects.create(account=account, name="demo")
        old.get_model("orchestrator", "Repository").objects.create(account=account, name="web")
        executor = MigrationExecutor(connection)
        executor.migrate(after)
        new = executor.loader.project_state(after).apps
        assert new.get_model("orchestrator", "Cluster").objects.get(name="demo").region == "eu-central-1"
        assert new.get_model("orchestrator", "Repository").objects.get(name="web").region == "eu-central-1"
    finally:
        MigrationExecutor(connection).migrate(latest)
