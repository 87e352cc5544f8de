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


def sheet_of(text):
    """The students of a printed sheet: {login: {password, account, key, secret}}."""
    students = {}
    for slip in text.split("-" * 72)[1:]:
        login, password = re.search(r"student (\S+): dashboard password (\S+)", slip).groups()
        students[login] = {
            "password": password, "account": re.search(r"account (\d{12})", slip)[1],
            "key": re.search(r"AWS_ACCESS_KEY_ID=(\S+)", slip)[1],
            "secret": re.search(r"AWS_SECRET_ACCESS_KEY=(\S+)", slip)[1],
        }
    return students


def test_a_class_gets_a_sheet_of_logins_and_keys_that_work(live_server):
    add_student("s02")  # taken already: the batch skips it
    out = io.StringIO()
    call_command("addstudent", count=30, prefix="s", stdout=out)
    text = out.getvalue()
    students = sheet_of(text)
    assert len(students) == 30
    assert list(students)[:3] == ["s01", "s03", "s04"] and list(students)[-1] == "s31"
    assert len({s["account"] for s in students.values()}) == 30
    assert len({s["key"] for s in students.values()}) == 30
    assert "aws --endpoint-url http://127.0.0.1:8000 ecs list-clusters" in text
    for login in ("s01", "s31"):
        mine = students[login]
        client = boto3.client("ecs", endpoint_url=live_server.url, region_name="us-east-1",
                              aws_access_key_id=mine["key"], aws_secret_access_key=mine["secret"])
        arn = client.create_cluster(clusterName="mine")["cluster"]["clusterArn"]
        assert f":{mine['account']}:cluster/mine" in arn
        assert client.list_clusters()["clusterArns"] == [arn]
        assert Client().login(username=login, password=mine["password"])


@pytest.mark.django_db
@pytest.mark.parametrize("options, message", [
    ({"count": 0}, "between 1 and"),
    ({"count": 501}, "between 1 and"),
    ({"count": 2, "prefix": "a b"}, "--prefix must be"),
    ({"count": 2, "name": "x"}, "give no NAME"),
    ({}, "Give a user NAME"),
])
def test_it_refuses_a_bad_batch_and_changes_nothing(options, message):
    name = options.pop("name", None)
    with pytest.raises(CommandError, match=message):
        call_command("addstudent", *([name] if name else []), stdout=io.StringIO(), **options)
    assert not Account.objects.exclude(account_id="000000000000").exists()
    assert not get_user_model().objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_class_s_passwords_are_hashed_before_its_transaction_takes_the_write_lock(monkeypatch):
    """Hashing is most of the command's time: inside the transaction it held the database's write
    lock, and a running lab's every writer, for 28 s for 30 students (bench/bench_labs.py)."""
    from django.contrib.auth import base_user, hashers
    from django.db import connection

    from orchestrator.management.commands import addstudent

    hashed_in = []
    real = hashers.make_password

    def watched(password, *args, **kwargs):
        if password is not None:  # create_user's unusable password is no hash
            hashed_in.append(connection.in_atomic_block or getattr(connection, "holds_write_lock", False))
        return real(password, *args, **kwargs)

    monkeypatch.setattr(addstudent, "make_password", watched)
    monkeypatch.setattr(hashers, "make_password", watched)
    monkeypatch.setattr(base_user, "make_password", watched)  # User.set_password's
    students = sheet_of(_sheet(count=3, prefix="h"))
    call_command("addstudent", "ivy", password="ivy-pw", stdout=io.StringIO())
    assert hashed_in == [False] * 4
    for login, mine in students.items():
        assert Client().login(username=login, password=mine["password"])
    assert Client().login(username="ivy", password="ivy-pw")


def _sheet(**options):
    out = io.StringIO()
    call_command("addstudent", stdout=out, **options)
    return out.getvalue()
