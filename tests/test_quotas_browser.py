"""The teacher's quota page of an account, in a real Chromium: staff see each quota with its
applied value and usage and change it; a bad value is a form error that changes nothing; for
anyone else the page does not exist."""
import pytest

from orchestrator.models import Account, Cluster
from tests.support.browser import admin_page


@pytest.fixture
def bob(transactional_db):
    account = Account.objects.create(account_id="000000000002", name="bob")
    Cluster.objects.create(account=account, name="demo")
    return account


@pytest.fixture
def teacher_page(browser, live_lab_server, django_user_model):
    """A page logged in as a staff user (the documented admin / admin)."""
    django_user_model.objects.create_user("admin", password="admin", is_staff=True)
    tab = admin_page(browser, live_lab_server.url, {"width": 1400, "height": 900})
    yield tab
    tab.context.close()


def test_a_teacher_sees_and_changes_an_accounts_quotas(teacher_page, live_lab_server, bob):
    tab = teacher_page
    tab.goto(live_lab_server.url + "/accounts/000000000002/quotas/")
    row = tab.locator("tr[data-quota=fargate_on_demand_vcpu_quota]")
    assert "Fargate On-Demand vCPU resource count" in row.inner_text() and "L-3032A538" in row.inner_text()
    assert row.locator(".applied").inner_text() == "1 vCPU (default)"
    assert tab.locator("tr[data-quota=clusters_quota] .in-use").inner_text() == "1"

    row.locator("input").fill("2.5")
    tab.click("#quota-form button[type=submit]")
    tab.wait_for_selector("text=Quotas of account 000000000002 saved.")
    assert tab.locator("tr[data-quota=fargate_on_demand_vcpu_quota] .applied").inner_text() == "2.5 vCPU"
    bob.refresh_from_db()
    assert bob.fargate_on_demand_vcpu_quota == 2.5

    # Emptied, a value goes back to the lab's default.
    tab.locator("tr[data-quota=fargate_on_demand_vcpu_quota] input").fill("")
    tab.click("#quota-form button[type=submit]")
    tab.wait_for_selector("tr[data-quota=fargate_on_demand_vcpu_quota] .applied:has-text('1 vCPU (default)')")
    bob.refresh_from_db()
    assert bob.fargate_on_demand_vcpu_quota is None


@pytest.mark.django_db
def test_a_bad_value_is_a_form_error_that_changes_nothing(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("teacher", is_staff=True))
    Account.objects.create(account_id="000000000002", name="bob", clusters_quota=3)
    response = client.post("/accounts/000000000002/quotas/", {"clusters_quota": "-1",
                                                             "fargate_on_demand_vcpu_quota": "lots"})
    assert response.status_code == 400
    html = response.content.decode()
    assert html.count('class="field-error"') == 2
    account = Account.objects.get(account_id="000000000002")
    assert (account.clusters_quota, account.fargate_on_demand_vcpu_quota) == (3, None)


@pytest.mark.django_db
def test_the_page_does_not_exist_for_a_student(alice_client, django_user_model):
    Account.objects.create(account_id="000000000002", name="bob")
    response = alice_client.get("/accounts/000000000002/quotas/")
    assert response.status_code == 404 and "<h1>Not found</h1>" in response.content.decode()
    assert alice_client.post("/accounts/000000000002/quotas/", {"clusters_quota": "99"}).status_code == 404
    assert Account.objects.get(account_id="000000000002").clusters_quota is None
