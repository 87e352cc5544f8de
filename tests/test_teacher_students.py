"""The teacher's page of one student (issue 14): their objects, a read-only look at their
dashboard exactly as they see it (live, with no forms), the reset form, a link to their quotas.
Staff only; pages in a real Chromium, the forms' refusals with the test client."""
import pytest
from playwright.sync_api import expect

from orchestrator.frontend import call
from orchestrator.models import Account, Cluster
from tests.support.browser import wait_live
from tests.support.classroom import TEACHER_PASSWORD, login


def test_the_teacher_views_a_students_dashboard_read_only_and_live(browser, live_lab_server, students, teacher):
    amy, bob = students[0], students[1]
    call(Account.of_user(amy), "CreateCluster", {"clusterName": "amys"})
    call(Account.of_user(bob), "CreateCluster", {"clusterName": "bobs"})
    call(Account.default(), "CreateCluster", {"clusterName": "teachers"})
    page = login(browser, live_lab_server.url, "teach", TEACHER_PASSWORD)
    try:
        page.goto(live_lab_server.url + "/class/")
        page.locator('tr[data-student="bob"] a.student-open').click()
        expect(page.locator("h1")).to_contain_text("bob")
        expect(page.locator('#student-objects [data-kind="clusters"]')).to_have_text("1")
        expect(page.locator("#student-quotas")).to_have_attribute(
            "href", f"/accounts/{Account.of_user(bob).account_id}/quotas/")
        page.click("#view-as")
        expect(page.locator("#view-as-banner")).to_contain_text("viewing bob's dashboard")
        page.goto(live_lab_server.url + "/clusters/")
        wait_live(page)
        expect(page.locator("main")).to_contain_text("bobs")
        expect(page.locator("main")).not_to_contain_text("amys")
        expect(page.locator("main")).not_to_contain_text("teachers")
        # No form but the one that ends the view (and the region selector, which changes only the
        # teacher's own session: which region's objects the pages show).
        assert page.locator("form:visible:not(.region-select)").count() == 1
        expect(page.locator("form:visible:not(.region-select)")).to_have_attribute("data-view-as-exit", "")
        # Live as bob sees it: his new cluster arrives over the socket.
        call(Account.of_user(bob), "CreateCluster", {"clusterName": "bobs-second"})
        expect(page.locator("main")).to_contain_text("bobs-second", timeout=30_000)
        # Bob's own objects read, none changed: a POST is refused.
        csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
        refused = page.request.post(live_lab_server.url + "/clusters/", form={"name": "sneaky"},
                                    headers={"X-CSRFToken": csrf, "Referer": live_lab_server.url + "/clusters/"})
        assert refused.status == 403
        assert not Cluster.objects.filter(name="sneaky").exists()
        page.click("#view-as-stop")
        expect(page.locator("h1")).to_contain_text("bob")
        page.goto(live_lab_server.url + "/clusters/")
        expect(page.locator("main")).to_contain_text("teachers")
        expect(page.locator("#view-as-banner")).to_have_count(0)
        assert page.locator("main form:visible").count() >= 1  # the teacher's own forms are back
    finally:
        page.context.close()


@pytest.mark.django_db
def test_the_students_pages_are_for_staff_only(client, students):
    client.force_login(students[0])
    bob = students[1]
    assert client.get(f"/class/students/{bob.pk}/").status_code == 404
    assert client.post(f"/class/students/{bob.pk}/reset/", {"confirm": "bob"}).status_code == 404
    assert client.post(f"/class/students/{bob.pk}/view/").status_code == 404
    assert "fargatelab:view-as" not in client.session


@pytest.mark.django_db
def test_a_reset_must_be_confirmed_with_the_students_name(client, students, teacher):
    bob = students[1]
    call(Account.of_user(bob), "CreateCluster", {"clusterName": "bobs"})
    client.force_login(teacher)
    refused = client.post(f"/class/students/{bob.pk}/reset/", {"confirm": "amy"})
    assert refused.status_code == 400 and "Type bob to reset this account." in refused.content.decode()
    assert Cluster.objects.filter(name="bobs").exists()
    done = client.post(f"/class/students/{bob.pk}/reset/", {"confirm": "bob"}, follow=True)
    assert done.status_code == 200 and "reset:" in done.content.decode()
    assert not Cluster.objects.filter(account=Account.of_user(bob)).exists()


@pytest.mark.django_db
def test_a_teacher_cannot_view_as_another_teacher(client, teacher, django_user_model):
    other = django_user_model.objects.create_user("other-teacher", password="pw", is_staff=True)
    client.force_login(teacher)
    assert client.post(f"/class/students/{other.pk}/view/").status_code == 404
