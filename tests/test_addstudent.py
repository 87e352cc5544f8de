"""``manage.py addstudent``: a classroom's student gets a dashboard user, an account of their own
and an access key; the key works with boto3 and sees only that account, as the dashboard does."""
import io
import re

import boto3
import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client

from orchestrator.models import Account, Cluster


def add_student(name, **options):
    out = io.StringIO()
    call_command("addstudent", name, stdout=out, **options)
    text = out.getvalue()
    return {
        "account": re.search(r"account (\d{12})", text)[1],
        "key": re.search(r"AWS_ACCESS_KEY_ID=(\S+)", text)[1],
        "secret": re.search(r"AWS_SECRET_ACCESS_KEY=(\S+)", text)[1],
        "password": re.search(r"dashboard password (\S+)", text)[1],
    }


def test_a_student_gets_an_account_a_key_and_a_login_of_their_own(live_server, ecs):
    ecs.create_cluster(clusterName="teachers")
    carol = add_student("carol")
    dave = add_student("dave", password="dave-pw")
    assert carol["account"] != dave["account"] and "000000000000" not in (carol["account"], dave["account"])
    assert dave["password"] == "dave-pw"
    client = boto3.client("ecs", endpoint_url=live_server.url, region_name="us-east-1",
                          aws_access_key_id=carol["key"], aws_secret_access_key=carol["secret"])
    arn = client.create_cluster(clusterName="carols")["cluster"]["clusterArn"]
    assert f":{carol['account']}:cluster/carols" in arn
    assert client.list_clusters()["clusterArns"] == [arn]  # not the teacher's
    user = get_user_model().objects.get(username="carol")
    assert Account.of_user(user).account_id == carol["account"]
    browser = Client()
    assert browser.login(username="carol", password=carol["password"])
    page = browser.get("/clusters/").content.decode()
    assert "/clusters/carols/" in page and "/clusters/teachers/" not in page


@pytest.mark.django_db
def test_it_refuses_a_name_already_taken_and_changes_nothing():
    add_student("erin")
    accounts = Account.objects.count()
    with pytest.raises(CommandError, match="already exists"):
        add_student("erin")
    assert Account.objects.count() == accounts
    assert not Cluster.objects.exists()
