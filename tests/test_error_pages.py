"""Error pages: the lab's own styled "not found" and "server error" for pages, while the APIs
keep their own error shapes."""
import pytest
from django.test import RequestFactory
from django.views import defaults


@pytest.mark.django_db
def test_a_missing_page_is_the_labs_not_found_page(alice_client):
    response = alice_client.get("/tasks/no-such-task/")
    assert response.status_code == 404
    html = response.content.decode()
    assert "<h1>Not found</h1>" in html and "dashboard.css" in html and "Back to the map" in html


def test_a_server_error_is_the_labs_page():
    response = defaults.server_error(RequestFactory().get("/"))
    assert response.status_code == 500
    html = response.content.decode()
    assert "Something broke in the lab" in html and "dashboard.css" in html


def test_the_ecs_api_keeps_its_json_errors(raw_api):
    response = raw_api("DescribeServices", {"cluster": "no-such-cluster", "services": ["web"]})
    assert response.status_code == 400
    assert response.json()["__type"] == "ClusterNotFoundException"
    assert "Not found" not in response.text
