"""The article's whole journey in the browser alone (issue 14, item 1), on a real lab (real
Docker, real registry, real listener) in a real Chromium: a fresh student account creates a
repository, pushes with the docker CLI outside the browser (as on AWS), registers a task
definition with the pushed image, creates a cluster, a load balancer, a target group and a
listener, and a service behind them; the journey ends on the service's page, whose URL
answers in round robin from its three tasks, and lab 1 ("From image to URL"), started first,
has every step ticked."""
import base64
import collections
import re
import subprocess

import boto3
import pytest
from botocore.config import Config
from playwright.sync_api import expect

from tests.support.browser import wait_live
from tests.support.common import free_port

pytestmark = [pytest.mark.docker, pytest.mark.browser]

# A loaded machine (8 test runs at once on 2 cores): generous waits, always on a condition.
SLOW = 120_000


@pytest.fixture(autouse=True)
def patient_expect():
    expect.set_options(timeout=30_000)
    yield
    expect.set_options(timeout=5_000)


def add_student(lab, name, password):
    """``manage.py addstudent`` on the lab's database: the student's boto3 credentials."""
    result = lab.manage("addstudent", name, "--password", password)
    assert result.returncode == 0, result.stderr
    return {"aws_access_key_id": re.search(r"AWS_ACCESS_KEY_ID=(\S+)", result.stdout).group(1),
            "aws_secret_access_key": re.search(r"AWS_SECRET_ACCESS_KEY=(\S+)", result.stdout).group(1),
            "region_name": "us-east-1"}


def docker_push(ecr, uri, docker_config):
    """What the student runs in a shell: log in with ECR's token, tag the demo image, push it."""
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    docker = ["docker", "--config", str(docker_config)]
    subprocess.run(docker + ["login", "-u", "AWS", "--password-stdin", uri.split("/")[0]],
                   input=base64.b64decode(token).decode().partition(":")[2], check=True, capture_output=True,
                   text=True, timeout=60)
    subprocess.run(docker + ["tag", "fargate-lab/demo:latest", f"{uri}:v1"], check=True, timeout=60)
    try:
        subprocess.run(docker + ["push", f"{uri}:v1"], check=True, capture_output=True, timeout=300)
    finally:
        subprocess.run(docker + ["rmi", f"{uri}:v1"], capture_output=True, timeout=60)  # our tag only


def test_a_fresh_student_goes_from_image_to_url_in_the_browser(lab, browser, tmp_path):
    credentials = add_student(lab, "journey", "journey-pw")
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        page.goto(lab.url + "/accounts/login/")
        page.fill("input[name=username]", "journey")
        page.fill("input[name=password]", "journey-pw")
        page.click("button[type=submit]")
        page.wait_for_url(lab.url + "/")
        page.goto(lab.url + "/labs/image-to-url/")  # lab 1, whose steps tick as the journey goes
        page.click("form.lab-start button")
        expect(page.locator("#lab-score")).to_contain_text("0 of 5 steps ticked")

        # Step 1: a repository, and a push from the shell that shows on the open page.
        page.get_by_role("link", name="ECR").click()
        page.fill("#create-repository-repository_name", "web")
        page.click("#create-repository-form button[type=submit]")
        page.wait_for_url("**/repositories/web/")
        uri = page.locator("#repository-uri").inner_text()
        ecr = boto3.client("ecr", endpoint_url=lab.url, config=Config(retries={"max_attempts": 1}), **credentials)
        assert uri == ecr.describe_repositories(repositoryNames=["web"])["repositories"][0]["repositoryUri"]
        expect(page.locator("#push-push")).to_have_text(f"docker push {uri}:v1")
        wait_live(page)
        docker_push(ecr, uri, tmp_path / "docker")
        pushed = page.locator(".repository-images tr", has=page.locator("[data-tag=v1]"))
        expect(pushed).to_be_visible(timeout=SLOW)

        # Step 2: a task definition with the pushed image (the repository's next step).
        pushed.locator("a.next-step").click()
        expect(page.locator("#register-task-definition-image")).to_have_value(f"{uri}:v1")
        expect(page.locator("#register-task-definition-family")).to_have_value("web")
        expect(page.locator("#register-task-definition-port")).to_have_value("80")
        page.click("#register-task-definition-form button[type=submit]")
        page.wait_for_url("**/task-definitions/web/1/")

        # Step 3: a cluster (the task definition's next step, when there is none).
        page.locator("a.next-step[data-next=cluster]").click()
        page.fill("#create-cluster-name", "demo")
        page.click("#create-cluster-form button[type=submit]")
        page.wait_for_url("**/clusters/demo/")

        # Step 4: a load balancer, a target group and a listener.
        page.get_by_role("link", name="Load balancers").click()
        page.fill("#create-load-balancer-lb_name", "web-lb")
        page.click("#create-load-balancer-form button[type=submit]")
        page.fill("#create-target-group-tg_name", "web-tg")
        page.fill("#create-target-group-health_check_interval", "5")
        page.fill("#create-target-group-healthy_threshold", "2")
        page.fill("#create-target-group-deregistration_delay", "5")
        page.click("#create-target-group-form button[type=submit]")
        port = free_port()
        page.fill("#create-listener-listener_port", str(port))
        page.click("#create-listener-form button[type=submit]")
        expect(page.locator(f"a.listener-url[data-listener='{port}']")).to_be_visible()

        # Step 5: a service of three behind the target group; the journey ends on its page.
        page.locator("tr[data-target-group=web-tg] a.next-step", has_text="demo").click()
        page.fill("#create-service-desired_count", "3")
        expect(page.locator("#create-service-task_definition")).to_have_value("web:1")
        expect(page.locator("#create-service-container_name")).to_have_value("web")
        page.click("#create-service-form button[type=submit]")
        page.wait_for_url(re.compile(r".*/services/\d+/$"))
        wait_live(page)
        expect(page.locator(".service-load-balancing")).to_contain_text("3 of 3 targets healthy", timeout=SLOW)
        url = page.locator("a.service-url").get_attribute("href")
        assert url.endswith(f":{port}/")

        # The URL answers, round robin over the three tasks (the demo image names its task).
        answers = collections.Counter()
        for _ in range(12):
            page.goto(url)
            answers[page.locator("body").inner_text().splitlines()[0]] += 1
        assert len(answers) == 3 and min(answers.values()) >= 2, answers

        # Lab 1's page: every step ticked by its own check.
        page.goto(lab.url + "/labs/image-to-url/")
        expect(page.locator("#lab-score")).to_contain_text("Lab complete", timeout=SLOW)
        for step in ("push", "task-definition", "cluster", "load-balancer", "service"):
            expect(page.locator(f"#step-{step}")).to_have_attribute("data-ticked", "true")
    finally:
        context.close()

