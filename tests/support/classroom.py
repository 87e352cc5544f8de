"""Fixtures: the classroom — students with accounts of their own, a teacher, the check runner."""
import pytest

from classroom import runner
from orchestrator.models import Account

TEACHER_PASSWORD = STUDENT_PASSWORD = "correct horse battery staple"


def make_student(django_user_model, name, account_id):
    """A dashboard user acting as an account of their own (as ``manage.py addstudent`` makes)."""
    user = django_user_model.objects.create_user(name, password=STUDENT_PASSWORD)
    account = Account.objects.create(account_id=account_id, name=name)
    account.members.add(user)
    return user


@pytest.fixture
def students(transactional_db, django_user_model):
    """Three students: amy, bob and cat, each with an account."""
    return [make_student(django_user_model, name, f"{number:012d}")
            for number, name in enumerate(["amy", "bob", "cat"], start=111111111111)]


@pytest.fixture
def teacher(transactional_db, django_user_model):
    return django_user_model.objects.create_user("teach", password=TEACHER_PASSWORD, is_staff=True)


@pytest.fixture
def check_runner(transactional_db):
    """The check runner of this process, as the server's lifespan starts it."""
    started = runner.start()
    yield started
    runner.stop()


def login(browser, base_url, username, password=STUDENT_PASSWORD):
    """A new page logged in as ``username`` (close it with ``page.context.close()``)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(base_url + "/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(base_url + "/")
    return page


class Student:
    """A student of a real lab (``LabProcess``): an account of their own made by ``addstudent``,
    its key in boto3 clients, the docker CLI with a config of their own, and a dashboard session.
    Lab solutions (``labs/<slug>/solution.py``) act through it, as the student would."""

    demo_image = "fargate-lab/demo:latest"

    def __init__(self, lab, name, workdir):
        import re

        import requests

        self.lab, self.name = lab, name
        made = lab.manage("addstudent", name, "--password", STUDENT_PASSWORD)
        assert made.returncode == 0, made.stderr
        key_id = re.search(r"AWS_ACCESS_KEY_ID=(\S+)", made.stdout).group(1)
        secret = re.search(r"AWS_SECRET_ACCESS_KEY=(\S+)", made.stdout).group(1)
        self.account_id = re.search(r"account (\d{12})", made.stdout).group(1)
        keys = {"aws_access_key_id": key_id, "aws_secret_access_key": secret}
        self.ecs, self.elbv2, self.ecr = (lab.client(service, **keys) for service in ("ecs", "elbv2", "ecr"))
        self.docker_config = workdir / f"docker-{name}"
        self.session = requests.Session()
        self.session.get(lab.url + "/accounts/login/", timeout=30)
        self.post("/accounts/login/", {"username": name, "password": STUDENT_PASSWORD})
        self.pushed = []

    # --- the dashboard
    def post(self, path, data=None):
        response = self.session.post(self.lab.url + path, data={**(data or {}),
                                     "csrfmiddlewaretoken": self.session.cookies.get("csrftoken", "")},
                                     headers={"Referer": self.lab.url + path}, timeout=60)
        assert response.status_code < 400, (path, response.status_code, response.text[:500])
        return response

    def start_lab(self, slug):
        self.post(f"/labs/{slug}/start/")

    def answer(self, slug, step, choice):
        self.post(f"/labs/{slug}/answer/{step}/", {"choice": str(choice)})

    def progress(self, slug):
        response = self.session.get(f"{self.lab.url}/labs/{slug}/progress.json", timeout=30)
        assert response.status_code == 200, response.text[:500]
        return response.json()

    # --- the docker CLI, as the student runs it
    def docker(self, *args, timeout=300):
        import subprocess

        done = subprocess.run(["docker", "--config", str(self.docker_config), *args], capture_output=True,
                              text=True, timeout=timeout)
        assert done.returncode == 0, (args, done.stderr)
        if args[0] == "tag":
            self.pushed.append(args[2])
        return done.stdout.strip()

    def docker_login(self):
        """``aws ecr get-login-password | docker login``, with this student's token."""
        import base64
        import subprocess

        data = self.ecr.get_authorization_token()["authorizationData"][0]
        password = base64.b64decode(data["authorizationToken"]).decode().partition(":")[2]
        registry = data["proxyEndpoint"].split("://", 1)[-1]
        done = subprocess.run(["docker", "--config", str(self.docker_config), "login", "--username", "AWS",
                               "--password-stdin", registry], input=password, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, done.stderr

    def kill_container(self, task_arn):
        """``docker kill`` the container of one of the student's tasks (found by the lab's labels)."""
        import docker

        client = docker.from_env(timeout=30)
        (container,) = client.containers.list(filters={"label": [f"fargatelab.lab={self.lab.lab_id}",
                                                                  f"fargatelab.task-arn={task_arn}"]})
        container.kill()

    def cleanup(self):
        """Remove the image tags the student made (the registry's copies go with the lab)."""
        import subprocess

        for tag in self.pushed:
            subprocess.run(["docker", "rmi", tag], capture_output=True, timeout=60)

    # --- waiting, as a student watches
    def wait(self, predicate, message, timeout=180):
        from tests.support.common import wait_until

        return wait_until(predicate, timeout=timeout, interval=0.3, message=message)

    def running_tasks(self, cluster, service=None):
        filters = {"serviceName": service} if service else {}
        arns = self.ecs.list_tasks(cluster=cluster, desiredStatus="RUNNING", **filters)["taskArns"]
        tasks = self.ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"] if arns else []
        return [task for task in tasks if task["lastStatus"] == "RUNNING"]

    @staticmethod
    def free_port():
        from tests.support.common import free_port

        return free_port()
