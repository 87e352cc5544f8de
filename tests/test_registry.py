"""ECR: the API through a real boto3 client, and images pushed to and pulled from the lab's registry."""
import base64
import subprocess
import uuid

import boto3
import botocore.exceptions
import pytest
import requests

from orchestrator.models import AccessKey, Account
from orchestrator.registry import RegistryError, RegistryProcess
from tests.support.elb import docker


def code_of(call, *args, **kwargs):
    """The ECR error code that ``call`` raises."""
    with pytest.raises(botocore.exceptions.ClientError) as info:
        call(*args, **kwargs)
    return info.value.response["Error"]["Code"]


def test_it_creates_describes_and_deletes_repositories(ecr, lab_registry):
    repo = ecr.create_repository(repositoryName="team/web")["repository"]

    assert repo["repositoryArn"] == "arn:aws:ecr:us-east-1:000000000000:repository/team/web"
    assert repo["repositoryUri"] == f"127.0.0.1:{lab_registry.port}/000000000000/team/web"
    assert repo["registryId"] == "000000000000"
    assert ecr.describe_repositories()["repositories"] == [repo]
    assert ecr.describe_repositories(repositoryNames=["team/web"])["repositories"] == [repo]
    assert ecr.list_images(repositoryName="team/web")["imageIds"] == []
    assert ecr.describe_images(repositoryName="team/web")["imageDetails"] == []

    assert ecr.delete_repository(repositoryName="team/web")["repository"] == repo
    assert ecr.describe_repositories()["repositories"] == []


def test_it_rejects_bad_repository_requests(ecr, lab_registry):
    ecr.create_repository(repositoryName="web")

    assert code_of(ecr.create_repository, repositoryName="web") == "RepositoryAlreadyExistsException"
    assert code_of(ecr.create_repository, repositoryName="Web_") == "InvalidParameterException"
    assert code_of(ecr.describe_repositories, registryId="333333333333") == "AccessDeniedException"
    assert code_of(ecr.get_authorization_token, registryIds=["333333333333"]) == "AccessDeniedException"
    assert code_of(ecr.describe_repositories, repositoryNames=["nope"]) == "RepositoryNotFoundException"
    assert code_of(ecr.delete_repository, repositoryName="nope") == "RepositoryNotFoundException"
    assert code_of(ecr.list_images, repositoryName="nope") == "RepositoryNotFoundException"
    assert code_of(ecr.describe_images, repositoryName="web", imageIds=[{"imageTag": "v9"}]) == "ImageNotFoundException"


def test_two_accounts_may_both_have_web(ecr, lab_registry):
    other = Account.objects.create(account_id="333333333333")
    AccessKey.objects.create(account=other, access_key_id="other-key", secret_access_key="other-secret")
    theirs = boto3.client("ecr", endpoint_url=ecr.meta.endpoint_url, region_name="us-east-1",
                          aws_access_key_id="other-key", aws_secret_access_key="other-secret")

    mine = ecr.create_repository(repositoryName="web")["repository"]
    their = theirs.create_repository(repositoryName="web")["repository"]

    assert mine["repositoryUri"] == f"127.0.0.1:{lab_registry.port}/000000000000/web"
    assert their["repositoryUri"] == f"127.0.0.1:{lab_registry.port}/333333333333/web"
    assert their["repositoryArn"] == "arn:aws:ecr:us-east-1:333333333333:repository/web"
    assert [r["repositoryUri"] for r in ecr.describe_repositories()["repositories"]] == [mine["repositoryUri"]]
    assert [r["repositoryUri"] for r in theirs.describe_repositories()["repositories"]] == [their["repositoryUri"]]
    theirs.delete_repository(repositoryName="web")
    assert ecr.describe_repositories()["repositories"] == [mine]


def test_it_hands_out_a_docker_login_token(ecr, lab_registry):
    (data,) = ecr.get_authorization_token()["authorizationData"]

    user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    assert user == "AWS" and password
    assert data["proxyEndpoint"] == f"http://127.0.0.1:{lab_registry.port}"


def test_it_answers_malformed_requests_without_a_server_error(live_server, ecr, lab_registry):
    response = requests.post(
        live_server.url + "/", data=b"{", headers={"X-Amz-Target": "AmazonEC2ContainerRegistry_V20150921.ListImages"}
    )

    assert response.status_code == 403
    assert response.json()["__type"] == "MissingAuthenticationToken"


def test_it_refuses_to_start_on_a_port_another_registry_holds(lab_registry, tmp_path):
    with pytest.raises(RegistryError, match="another Fargate Lab's registry"):
        RegistryProcess(port=lab_registry.port, root=tmp_path / "other").ensure_running()


def test_it_never_uses_a_registry_it_did_not_start(tmp_path, settings):
    """Debian's docker-registry service (or anything) on the port: the lab says so and runs its own nowhere."""
    import socket

    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    try:
        port = holder.getsockname()[1]
        with pytest.raises(RegistryError, match="never uses a registry it did not start"):
            RegistryProcess(port=port, root=tmp_path / "r").ensure_running()
    finally:
        holder.close()


@pytest.mark.docker
def test_it_stores_pushed_images_that_the_engine_pulls_back(ecr, lab_registry, tmp_path, demo_image):
    name = f"test-{uuid.uuid4().hex[:8]}/demo"
    uri = ecr.create_repository(repositoryName=name)["repository"]["repositoryUri"]
    token = base64.b64decode(ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]).decode()
    assert uri.startswith(f"127.0.0.1:{lab_registry.port}/000000000000/")
    login = subprocess.run(
        ["docker", "--config", str(tmp_path / "docker"), "login", "--username", "AWS", "--password-stdin", uri.split("/")[0]],
        input=token.partition(":")[2], capture_output=True, text=True, timeout=60,
    )
    assert login.returncode == 0, login.stderr
    docker("tag", demo_image, f"{uri}:v1")
    try:
        docker("--config", str(tmp_path / "docker"), "push", f"{uri}:v1", timeout=300)

        (image_id,) = ecr.list_images(repositoryName=name)["imageIds"]
        assert image_id["imageTag"] == "v1" and image_id["imageDigest"].startswith("sha256:")
        (detail,) = ecr.describe_images(repositoryName=name, imageIds=[{"imageTag": "v1"}])["imageDetails"]
        assert detail["imageTags"] == ["v1"] and detail["imageSizeInBytes"] > 0
        assert code_of(ecr.delete_repository, repositoryName=name) == "RepositoryNotEmptyException"

        docker("rmi", f"{uri}:v1")
        docker("--config", str(tmp_path / "docker"), "pull", f"{uri}:v1", timeout=300)
        assert docker("image", "inspect", "--format", "{{.Id}}", f"{uri}:v1") == docker(
            "image", "inspect", "--format", "{{.Id}}", demo_image)
    finally:
        docker("rmi", f"{uri}:v1", check=False)

    ecr.delete_repository(repositoryName=name, force=True)
    assert ecr.describe_repositories()["repositories"] == []


def test_it_finds_its_own_lab_registry_run_by_another_process(lab_registry):
    """``manage.py controlplane`` beside the server: the same lab and storage, one registry."""
    same = RegistryProcess(port=lab_registry.port, root=lab_registry.root)

    assert same.ensure_running() is False
    assert same.process is None


@pytest.mark.parametrize("operation,body", [
    ("DescribeImages", {"repositoryName": "web", "imageIds": ["v1"]}),
    ("ListImages", {"repositoryName": "web", "filter": "TAGGED"}),
    ("CreateRepository", {"repositoryName": 7}),
    ("DescribeRepositories", {"maxResults": "ten"}),
    ("DescribeRepositories", []),
    ("NoSuchOperation", {}),
])
def test_it_answers_malformed_calls_with_client_errors(db, lab_registry, operation, body):
    from orchestrator.models import Account
    from orchestrator.registry import EcrError, call

    account = Account.default()
    call(account, "CreateRepository", {"repositoryName": "web"})
    with pytest.raises(EcrError) as info:
        call(account, operation, body)

    assert info.value.status == 400
