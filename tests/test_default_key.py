"""The documented key test / test: a removed key stays removed, and a classroom lab refuses
to start while it works (issue 10, finding 7)."""
import re
import uuid

import pytest
from botocore.exceptions import ClientError
from django.core.management import call_command

from dashboard.bootstrap import DefaultKeyRefused, refuse_default_key
from orchestrator.models import AccessKey, Account
from tests.support.lab import LabProcess, remove_lab_objects


@pytest.mark.django_db
def test_a_deleted_default_key_is_not_created_again():
    Account.default()
    AccessKey.objects.filter(access_key_id="test").delete()
    Account.default()
    assert not AccessKey.objects.filter(access_key_id="test").exists()


@pytest.mark.django_db
@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "lab.example.org"])
def test_a_classroom_lab_refuses_the_active_default_key(host):
    Account.default()
    with pytest.raises(DefaultKeyRefused, match="disablekey test"):
        refuse_default_key(host)
    refuse_default_key("127.0.0.1")


@pytest.mark.django_db
def test_a_disabled_or_changed_default_key_is_allowed():
    Account.default()
    call_command("disablekey", "test", stdout=open("/dev/null", "w"))
    assert not AccessKey.objects.get(access_key_id="test").active
    refuse_default_key("0.0.0.0")
    AccessKey.objects.filter(access_key_id="test").update(active=True, secret_access_key="only-the-teacher-knows")
    refuse_default_key("0.0.0.0")


def admin_session(lab, password="admin"):
    import requests

    session = requests.Session()
    page = session.get(f"{lab.url}/accounts/login/", timeout=10)
    session.post(f"{lab.url}/accounts/login/", data={
        "username": "admin", "password": password, "csrfmiddlewaretoken": session.cookies["csrftoken"],
    }, headers={"Referer": page.url}, timeout=10)
    return session


def refused(client):
    with pytest.raises(ClientError) as error:
        client.list_clusters()
    return error.value.response["Error"]["Code"]


@pytest.mark.docker
def test_the_admin_deletes_the_default_key_and_it_stays_deleted(lab):
    ecs = lab.client()
    assert ecs.list_clusters()["clusterArns"] == []
    session = admin_session(lab)
    listing = session.get(f"{lab.url}/admin/orchestrator/accesskey/?q=test", timeout=10).text
    pk = re.search(r'/admin/orchestrator/accesskey/(\d+)/change/', listing).group(1)
    delete_url = f"{lab.url}/admin/orchestrator/accesskey/{pk}/delete/"
    session.get(delete_url, timeout=10)
    answer = session.post(delete_url, data={"post": "yes", "csrfmiddlewaretoken": session.cookies["csrftoken"]},
                          headers={"Referer": delete_url}, timeout=10)
    assert answer.status_code == 200 and "was deleted successfully" in answer.text
    # The pages the admin views next (they look up the admin's account, the default one).
    for path in ("/admin/", "/admin/orchestrator/accesskey/", "/", "/clusters/"):
        assert session.get(lab.url + path, timeout=10).status_code == 200
    assert refused(ecs) == "UnrecognizedClientException"
    lab.restart()
    assert refused(ecs) == "UnrecognizedClientException"


@pytest.mark.docker
def test_a_classroom_lab_does_not_start_while_test_test_works(tmp_path, docker_client, lab_demo_image):
    lab = LabProcess(tmp_path, f"test-{uuid.uuid4().hex[:8]}", extra_env={"HOST": "0.0.0.0"})
    try:
        with pytest.raises(AssertionError, match="default password"):
            lab.start()
        result = lab.manage("shell", "-c", "from django.contrib.auth.models import User; "
                        "u = User.objects.get(username='admin'); u.set_password('a long classroom password'); u.save()")
        assert result.returncode == 0, result.stderr
        with pytest.raises(AssertionError, match="access key 'test' still has the default secret"):
            lab.start()
        result = lab.manage("disablekey", "test")
        assert result.returncode == 0 and "access key test disabled" in result.stdout, result.stderr
        lab.start()
        assert refused(lab.client()) == "UnrecognizedClientException"
        assert "Site administration" in admin_session(lab, "a long classroom password").get(lab.url + "/admin/", timeout=10).text
        assert refused(lab.client()) == "UnrecognizedClientException"
    finally:
        lab.stop()
        remove_lab_objects(docker_client, lab.lab_id)
