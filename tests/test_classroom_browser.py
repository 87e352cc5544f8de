"""The labs' pages and the teacher's class page in a real Chromium: ticks arrive by push."""
import csv
import io

import pytest
from playwright.sync_api import expect

from classroom import progress
from orchestrator.frontend import call
from orchestrator.models import Account
from tests.support.browser import wait_live
from tests.support.classroom import TEACHER_PASSWORD, login

pytestmark = pytest.mark.browser

LAB = "image-to-url"


def test_the_class_page_ticks_a_students_step_without_reload(browser, live_lab_server, students, teacher, check_runner):
    for student in students:
        progress.start(student, LAB)
    page = login(browser, live_lab_server.url, "teach", TEACHER_PASSWORD)
    try:
        page.goto(live_lab_server.url + "/class/")
        wait_live(page)
        for student in students:
            row = page.locator(f'tr[data-student="{student.username}"]')
            expect(row).to_contain_text("From image to URL")
            expect(row).to_have_attribute("data-done", "0")
        page.evaluate("window.notReloaded = true")

        bob = students[1]
        call(Account.of_user(bob), "CreateCluster", {"clusterName": "demo"})

        bob_row = page.locator('tr[data-student="bob"]')
        expect(bob_row.locator('[data-step="cluster"]')).to_have_attribute("data-ticked", "true", timeout=30_000)
        expect(bob_row).to_have_attribute("data-done", "1")
        expect(bob_row).to_contain_text("1. Push an image to ECR")  # the first step not ticked is still current
        for other in ("amy", "cat"):
            expect(page.locator(f'tr[data-student="{other}"]')).to_have_attribute("data-done", "0")
        assert page.evaluate("window.notReloaded") is True
    finally:
        page.context.close()


def test_the_class_page_is_for_staff_only(browser, live_lab_server, students):
    page = login(browser, live_lab_server.url, "amy")
    try:
        response = page.goto(live_lab_server.url + "/class/")
        assert response.status == 404
        expect(page.locator("nav")).not_to_contain_text("Class")
    finally:
        page.context.close()


def test_it_exports_the_class_progress_as_csv(client, students, teacher):
    progress.start(students[0], LAB).tick("cluster")
    client.force_login(teacher)
    response = client.get("/class/progress.csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][:4] == ["user", "account", "lab", "started_at"]
    assert [(r[0], r[2], r[5], r[6], r[7]) for r in rows[1:]] == [("amy", LAB, "1", "5", "push")]
    client.force_login(students[1])
    assert client.get("/class/progress.csv").status_code == 404


def test_a_students_lab_page_ticks_live_and_resumes(browser, live_lab_server, students, check_runner):
    amy = students[0]
    page = login(browser, live_lab_server.url, "amy")
    try:
        page.goto(f"{live_lab_server.url}/labs/")
        page.click(f"#lab-row-{LAB} a")
        page.click("form.lab-start button")
        wait_live(page)
        expect(page.locator("#step-push")).to_have_attribute("open", "")
        expect(page.locator("#step-cluster")).to_have_attribute("data-ticked", "false")
        expect(page.locator("#step-cluster")).to_contain_text("not yet: no cluster yet")
        page.evaluate("window.notReloaded = true")

        call(Account.of_user(amy), "CreateCluster", {"clusterName": "demo"})
        expect(page.locator("#step-cluster")).to_have_attribute("data-ticked", "true", timeout=30_000)
        expect(page.locator("#lab-score")).to_contain_text("1 of 5 steps ticked")
        assert page.evaluate("window.notReloaded") is True

        page.goto(f"{live_lab_server.url}/labs/")  # she comes back later: her tick is kept
        expect(page.locator(f"#lab-row-{LAB}")).to_contain_text("1 / 5")
        page.click(f"#lab-row-{LAB} a")
        expect(page.locator("#step-cluster")).to_have_attribute("data-ticked", "true")
        expect(page.locator("#step-push")).to_have_attribute("open", "")
    finally:
        page.context.close()



@pytest.fixture
def fast_sampling(settings, lab_id):
    """Task metrics sampled twice a second (set before the control plane starts)."""
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "METRICS_SAMPLE_SECONDS": 0.5}


@pytest.mark.docker
def test_the_class_page_shows_each_students_measured_cpu_and_memory_live(browser, fast_sampling, control_plane,
                                                                          live_lab_server, students, teacher,
                                                                          demo_image):
    from orchestrator.models import Cluster, Task
    from tests.support.common import wait_until
    from tests.support.docker import LabRows

    page = login(browser, live_lab_server.url, "teach", TEACHER_PASSWORD)
    try:
        amy, bob = students[0], students[1]
        rows = LabRows(demo_image)
        rows.account = Account.of_user(amy)
        rows.cluster = Cluster.objects.create(account=rows.account, name="demo")
        busy = rows.run_task(rows.task_definition(family="busy", command=["sh", "-c", "while :; do :; done"]))
        page.goto(live_lab_server.url + "/class/")
        wait_live(page)
        page.evaluate("window.notReloaded = true")
        wait_until(lambda: Task.objects.get(pk=busy.pk).last_status == Task.RUNNING, 60, message="amy's busy task")
        amy_row = page.locator('tr[data-student="amy"]')
        # Busy at its 0.25 vCPU: measured near it (Docker holds it there), pushed without a reload.
        wait_until(lambda: float(amy_row.locator(".class-cpu").get_attribute("data-vcpu") or 0) > 0.15, 30,
                   interval=0.3, message="amy's measured CPU on the class page")
        assert float(amy_row.locator(".class-cpu").get_attribute("data-vcpu")) < 0.35
        expect(amy_row.locator(".class-memory")).to_contain_text("MiB")
        expect(page.locator(f'tr[data-student="{bob.username}"] .class-cpu')).to_contain_text("–")
        assert page.evaluate("window.notReloaded") is True
    finally:
        page.context.close()
