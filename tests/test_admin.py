"""The Django admin, where admins inspect and repair the state database: every registered model's
list, add and change pages render, and an account's members are edited there."""
import pytest
from django.contrib import admin
from django.urls import reverse

from dashboard import sample
from dashboard.bootstrap import ensure_admin
from orchestrator.models import Account

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    ensure_admin()
    assert client.login(username="admin", password="admin")
    sample.populate(tasks=6, instances=2)
    return client


def test_every_model_has_working_admin_pages(admin_client):
    for model in admin.site._registry:
        meta = model._meta
        for view in ("changelist", "add"):
            url = reverse(f"admin:{meta.app_label}_{meta.model_name}_{view}")
            assert admin_client.get(url).status_code == 200, url
        row = model.objects.first()
        if row is not None:
            url = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[row.pk])
            assert admin_client.get(url).status_code == 200, url


def test_an_admin_makes_a_user_a_member_of_an_account(admin_client, django_user_model):
    student = django_user_model.objects.create_user("student", password="pw")
    account = Account.objects.create(account_id="222222222222", name="student")
    url = reverse("admin:orchestrator_account_change", args=[account.pk])
    page = admin_client.get(url).content.decode()
    assert 'name="members"' in page
    response = admin_client.post(url, {"account_id": "222222222222", "name": "student", "members": [student.pk],
                                       "created_at_0": "2026-11-26", "created_at_1": "12:00:00"})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Account.of_user(student) == account
