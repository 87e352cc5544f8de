"""The Kubernetes twins in a real Chromium: kubectl beside each ECS call on the map, and each
object's manifest as YAML with a copy button on its page."""
import pytest
import requests
from playwright.sync_api import expect

from orchestrator.models import Account
from tests.support.api import signed_request
from tests.support.browser import wait_live

pytestmark = pytest.mark.browser


def test_the_frontend_card_shows_each_call_beside_its_kubectl_command(page, live_lab_server):
    Account.default()
    wait_live(page)
    headers, data = signed_request(live_lab_server.url, "CreateCluster", {"clusterName": "demo"})
    assert requests.post(live_lab_server.url + "/", data=data, headers=headers, timeout=30).status_code == 200

    row = page.locator('.card[data-component="frontend"] tr[data-operation="CreateCluster"]')
    expect(row.locator(".aws-command")).to_have_text("aws ecs create-cluster --cluster-name demo")
    expect(row.locator(".kubectl-command")).to_have_text("kubectl create namespace demo")
