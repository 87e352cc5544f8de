"""The chaos page and its announcement (issue 14) in a real Chromium: the teacher drains an
instance from /class/chaos/, and the page a student has open says so without reload, while a
student with nothing on that instance sees nothing."""
import pytest
from playwright.sync_api import expect

from orchestrator.models import Account, Cluster, ContainerInstance, Task, TaskDefinition
from tests.support.browser import wait_live
from tests.support.classroom import TEACHER_PASSWORD, login

pytestmark = pytest.mark.browser


def placed_task(account, instance):
    """A RUNNING task of ``account`` on ``instance`` (rows only: no control plane runs here)."""
    cluster = Cluster.objects.create(account=account, name="demo")
    definition = TaskDefinition.objects.create(account=account, family="web", revision=1, cpu=256, memory=512,
                                               body={"family": "web", "containerDefinitions": []})
    return Task.objects.create(account=account, cluster=cluster, task_definition=definition, cpu=256, memory=512,
                               container_instance=instance, last_status=Task.RUNNING)


def test_draining_an_instance_is_announced_live_on_the_affected_students_pages(
        browser, live_lab_server, students, teacher):
    amy, bob = students[0], students[1]
    fleet = ContainerInstance.objects.create(name="fleet-1", cpu_registered=2048, memory_registered=4096,
                                             agent_connected=True)
    placed_task(Account.of_user(amy), fleet)
    amys = login(browser, live_lab_server.url, "amy")
    bobs = login(browser, live_lab_server.url, "bob")
    teachers = login(browser, live_lab_server.url, "teach", TEACHER_PASSWORD)
    try:
        for page in (amys, bobs):
            page.goto(live_lab_server.url + "/clusters/")
            wait_live(page)
            page.evaluate("window.notReloaded = true")
        teachers.goto(live_lab_server.url + "/class/")
        teachers.click("#class-chaos")
        teachers.select_option("#drain-instance", "fleet-1")
        teachers.click("#chaos-drain")
        expect(teachers.locator(".messages")).to_contain_text("fleet-1 is DRAINING")

        banner = amys.locator('.announcement[data-kind="drain"]')
        expect(banner).to_contain_text("draining fleet-1", timeout=30_000)
        assert amys.evaluate("window.notReloaded") is True
        expect(bobs.locator(".announcement")).to_have_count(0)
        bobs.reload()
        expect(bobs.locator(".announcement")).to_have_count(0)
        amys.goto(live_lab_server.url + "/task-definitions/")  # the banner stays on her other pages
        expect(amys.locator('.announcement[data-kind="drain"]')).to_be_visible()
        # Draining it again is refused with the reason, on the page.
        teachers.goto(live_lab_server.url + "/class/chaos/")
        response = teachers.request.post(live_lab_server.url + "/class/chaos/drain/", form={"instance": "fleet-1"},
                                         headers={"X-CSRFToken": next(c["value"] for c in teachers.context.cookies()
                                                                      if c["name"] == "csrftoken"),
                                                  "Referer": live_lab_server.url + "/class/chaos/"})
        assert response.status == 400 and "not ACTIVE" in response.text()
    finally:
        for page in (amys, bobs, teachers):
            page.context.close()


@pytest.mark.django_db
def test_the_chaos_page_is_for_staff_only(client, students):
    client.force_login(students[0])
    assert client.get("/class/chaos/").status_code == 404
    assert client.post("/class/chaos/kill/").status_code == 404
