"""ECR per account: the real registry behind the lab's gate, the real docker CLI, two accounts.

alice (account 000000000000, key ``test``) and bob (333333333333) both have ``web``; each pushes
to and pulls from only their own, no layer crosses accounts by digest, and the agent pulls a
task's image with the task's account's token.
"""
import base64
import http.client
import subprocess
import uuid

import boto3
import pytest
import requests

from orchestrator.models import AccessKey, Account, Cluster, Task
from orchestrator.registry_auth import Catalog, Forward, Refuse, authorization_token, decide
from tests.support.common import wait_until
from tests.support.docker import LabRows
from tests.support.elb import docker

MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


class Student:
    """One account: its ECR client, its docker CLI (a config directory of its own), its token."""

    def __init__(self, ecr, directory):
        self.ecr = ecr
        self.config = str(directory)
        token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
        self.password = base64.b64decode(token).decode().partition(":")[2]

    def create(self, name, **kwargs):
        """Create repository ``name``; its repositoryUri."""
        return self.ecr.create_repository(repositoryName=name, **kwargs)["repository"]["repositoryUri"]

    def docker(self, *args, check=True):
        """The docker CLI with this student's login."""
        return docker("--config", self.config, *args, check=check, timeout=300)

    def attempt(self, *args):
        """A docker CLI call expected to fail: its CompletedProcess."""
        return subprocess.run(["docker", "--config", self.config, *args], capture_output=True, text=True, timeout=300)

    def login(self, registry):
        login = subprocess.run(["docker", "--config", self.config, "login", "-u", "AWS", "--password-stdin", registry],
                               input=self.password, capture_output=True, text=True, timeout=60)
        assert login.returncode == 0, login.stderr
        return self

    def get(self, url, method="GET", **kwargs):
        """One registry request with this student's token."""
        return requests.request(method, url, auth=("AWS", self.password), timeout=30, **kwargs)


@pytest.fixture
def students(ecr, lab_registry, tmp_path):
    """alice (the default account) and bob (another), each with a token and a docker config."""
    bob_account = Account.objects.create(account_id="333333333333")
    AccessKey.objects.create(account=bob_account, access_key_id="bob-key", secret_access_key="bob-secret")
    bob_ecr = boto3.client("ecr", endpoint_url=ecr.meta.endpoint_url, region_name="us-east-1",
                           aws_access_key_id="bob-key", aws_secret_access_key="bob-secret")
    return Student(ecr, tmp_path / "alice"), Student(bob_ecr, tmp_path / "bob")


@pytest.fixture
def pushed(students, lab_registry, demo_image):
    """alice's ``web:v1`` pushed (the demo image) and bob's empty ``web``; the local tag is removed after."""
    alice, bob = students
    registry = f"127.0.0.1:{lab_registry.port}"
    alice.login(registry), bob.login(registry)
    image = f"{alice.create('web')}:v1"
    bob.create("web")
    alice.docker("tag", demo_image, image)
    alice.docker("push", image)
    yield image
    docker("rmi", image, check=False)


def layers(student, url, repository, tag):
    """The layer digests of ``repository:tag``, read with ``student``'s token."""
    response = student.get(f"{url}/v2/{repository}/manifests/{tag}", headers={"Accept": MANIFEST})
    assert response.status_code == 200, response.text
    return [layer["digest"] for layer in response.json()["layers"]]


def error_code(response):
    return response.json()["errors"][0]["code"]


@pytest.mark.docker
def test_each_account_pushes_and_pulls_only_its_own_web(students, pushed, lab_registry, demo_image):
    alice, bob = students
    bobs = pushed.replace("/000000000000/", "/333333333333/")

    push = bob.attempt("push", pushed)  # the tag is on the shared engine: bob tries alice's repository
    assert push.returncode != 0 and "denied" in push.stderr and "ecr:" in push.stderr, push.stderr
    pull = bob.attempt("pull", pushed)
    assert pull.returncode != 0 and "denied" in pull.stderr, pull.stderr

    bob.docker("tag", demo_image, bobs)
    try:
        bob.docker("push", bobs)
        alice_push = alice.attempt("push", bobs)
        assert alice_push.returncode != 0 and "denied" in alice_push.stderr, alice_push.stderr
    finally:
        docker("rmi", bobs, check=False)
    assert alice.attempt("pull", bobs).returncode != 0

    docker("rmi", pushed)
    alice.docker("pull", pushed)
    assert alice.ecr.describe_images(repositoryName="web")["imageDetails"][0]["imageTags"] == ["v1"]
    assert bob.ecr.describe_images(repositoryName="web")["imageDetails"][0]["imageTags"] == ["v1"]


@pytest.mark.docker
def test_no_layer_crosses_accounts_by_digest(students, pushed, lab_registry):
    alice, bob = students
    url = lab_registry.url
    digest = layers(alice, url, "000000000000/web", "v1")[-1]

    assert error_code(bob.get(f"{url}/v2/000000000000/web/blobs/{digest}")) == "DENIED"
    assert bob.get(f"{url}/v2/333333333333/web/blobs/{digest}", method="HEAD").status_code == 404
    mount = bob.get(f"{url}/v2/333333333333/web/blobs/uploads/?mount={digest}&from=000000000000/web", method="POST")
    assert mount.status_code == 202, "a plain upload starts instead of the mount"
    assert bob.get(f"{url}/v2/333333333333/web/blobs/{digest}", method="HEAD").status_code == 404

    # The same mount within one account links the layer: the refusal above is the gate's.
    alice.create("copy")
    own = alice.get(f"{url}/v2/000000000000/copy/blobs/uploads/?mount={digest}&from=000000000000/web", method="POST")
    assert own.status_code == 201
    assert alice.get(f"{url}/v2/000000000000/copy/blobs/{digest}", method="HEAD").status_code == 200


def test_the_gate_wants_a_valid_token(students, lab_registry, monkeypatch):
    alice, _ = students
    url = f"{lab_registry.url}/v2/"

    anonymous = requests.get(url, timeout=10)
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"].startswith("Basic")
    assert error_code(anonymous) == "UNAUTHORIZED"
    assert alice.get(url).status_code == 200
    assert requests.get(url, auth=("AWS", "fargate-lab"), timeout=10).status_code == 401
    assert requests.get(url, auth=("someone", alice.password), timeout=10).status_code == 401
    with monkeypatch.context() as patched:
        import django.core.signing

        real = django.core.signing.time.time
        patched.setattr(django.core.signing.time, "time", lambda: real() - 13 * 3600)
        expired = authorization_token("000000000000", "test")
    assert requests.get(url, auth=("AWS", expired), timeout=10).status_code == 401
    AccessKey.objects.filter(access_key_id="test").update(active=False)
    assert alice.get(url).status_code == 401, "disabling the key revokes its tokens"


def test_the_gate_answers_in_the_registrys_words(students, lab_registry):
    alice, bob = students
    url = lab_registry.url
    alice.create("web")
    bob.create("web")

    missing = alice.get(f"{url}/v2/000000000000/nope/manifests/v1")
    assert missing.status_code == 404 and error_code(missing) == "NAME_UNKNOWN"
    assert "does not exist in the registry with id '000000000000'" in missing.json()["errors"][0]["message"]
    assert error_code(alice.get(f"{url}/v2/web/manifests/v1")) == "NAME_UNKNOWN"
    assert alice.get(f"{url}/v2/_catalog").json() == {"repositories": ["000000000000/web"]}
    assert alice.get(f"{url}/v2/000000000000/web/manifests/sha256:{'0' * 64}", method="DELETE").status_code == 405
    raw = http.client.HTTPConnection("127.0.0.1", lab_registry.port, timeout=10)  # sends ".." as it is
    raw.request("GET", "/v2/000000000000/web/../../333333333333/web/tags/list",
                headers={"Authorization": "Basic " + base64.b64encode(f"AWS:{alice.password}".encode()).decode()})
    assert raw.getresponse().status == 400
    raw.close()


@pytest.mark.docker
def test_a_reset_removes_one_accounts_repositories_and_images_only(students, pushed, lab_registry):
    from orchestrator import registry

    alice, bob = students
    storage = lab_registry.root / "data/docker/registry/v2/repositories"
    assert (storage / "000000000000/web").is_dir()

    assert registry.remove_account_repositories(Account.objects.get(account_id="000000000000")) == 1

    assert alice.ecr.describe_repositories()["repositories"] == []
    assert not (storage / "000000000000").exists()
    assert [r["repositoryName"] for r in bob.ecr.describe_repositories()["repositories"]] == ["web"]
    alice.create("web")
    assert alice.ecr.list_images(repositoryName="web")["imageIds"] == [], "a new web starts empty"


def test_the_gate_says_when_the_registry_is_down(students, lab_registry):
    alice, _ = students
    alice.create("web")
    lab_registry.process.terminate()
    lab_registry.process.wait()

    down = alice.get(f"{lab_registry.url}/v2/000000000000/web/tags/list")

    assert down.status_code == 503 and error_code(down) == "UNAVAILABLE"


@pytest.mark.docker
def test_an_immutable_tag_is_never_overwritten(students, lab_registry, demo_image):
    alice, _ = students
    alice.login(f"127.0.0.1:{lab_registry.port}")
    image = f"{alice.create('frozen', imageTagMutability='IMMUTABLE')}:v1"
    alice.docker("tag", demo_image, image)
    try:
        alice.docker("push", image)
    finally:
        docker("rmi", image, check=False)
    base = f"{lab_registry.url}/v2/000000000000/frozen/manifests"
    manifest = alice.get(f"{base}/v1", headers={"Accept": MANIFEST}).content

    again = alice.get(f"{base}/v1", method="PUT", data=manifest, headers={"Content-Type": MANIFEST})
    assert again.status_code == 400 and error_code(again) == "TAG_INVALID"
    assert alice.get(f"{base}/v2", method="PUT", data=manifest, headers={"Content-Type": MANIFEST}).status_code == 201


@pytest.mark.docker
def test_the_agent_pulls_with_the_tasks_account(students, pushed, control_plane):
    alice, _ = students
    rows = LabRows(pushed)
    own = rows.run_task(rows.task_definition(image=pushed))
    wait_until(lambda: Task.objects.get(pk=own.pk).last_status == Task.RUNNING, 60, message="alice's task to run")
    from orchestrator.models import Activity

    lines = list(Activity.objects.filter(object_arn=own.arn, action="pulled").values_list("message", flat=True))
    assert lines and lines[0].startswith(f"pulled {pushed}"), "the image on the engine is still pulled"

    rows.account = Account.objects.get(account_id="333333333333")
    rows.cluster = Cluster.objects.create(account=rows.account, name=f"c-{uuid.uuid4().hex[:6]}")
    theirs = rows.run_task(rows.task_definition(image=pushed))
    wait_until(lambda: Task.objects.get(pk=theirs.pk).last_status == Task.STOPPED, 60,
               message="bob's task with alice's image to fail")
    stopped = Task.objects.get(pk=theirs.pk)
    assert "CannotPullContainerError" in stopped.stopped_reason and "denied" in stopped.stopped_reason


def test_it_decides_each_request_from_the_token_and_the_path():
    mine = {"web": "MUTABLE", "frozen": "IMMUTABLE"}

    assert decide("GET", "/v2/", "", None, {}).status == 401
    assert decide("GET", "/v2/", "", "111111111111", mine) == Forward("/v2/")
    assert decide("GET", "/v2/_catalog", "", "111111111111", mine) == Catalog(["111111111111/frozen", "111111111111/web"])
    assert decide("HEAD", "/v2/111111111111/web/blobs/sha256:ab", "", "111111111111", mine) == Forward(
        "/v2/111111111111/web/blobs/sha256:ab")
    denied = decide("PUT", "/v2/222222222222/web/manifests/v1", "", "111111111111", mine)
    assert isinstance(denied, Refuse) and denied.code == "DENIED" and "ecr:PutImage" in denied.message
    assert decide("GET", "/v2/111111111111/api/tags/list", "", "111111111111", mine).code == "NAME_UNKNOWN"
    assert decide("GET", "/v2/111111111111/%2e%2e/x/tags/list", "", "111111111111", mine).code == "NAME_INVALID"
    assert decide("POST", "/v2/111111111111/web/blobs/uploads/", "mount=sha256:ab&from=222222222222/web",
                  "111111111111", mine) == Forward("/v2/111111111111/web/blobs/uploads/")
    assert decide("POST", "/v2/111111111111/web/blobs/uploads/", "mount=sha256:ab&from=111111111111/frozen",
                  "111111111111", mine).target.endswith("?mount=sha256%3Aab&from=111111111111%2Ffrozen")
    assert decide("PUT", "/v2/111111111111/frozen/manifests/v1", "", "111111111111", mine).immutable_tag == "v1"
    assert decide("PUT", "/v2/111111111111/frozen/manifests/sha256:ab", "", "111111111111", mine).immutable_tag == ""
