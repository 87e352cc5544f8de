"""Login throttling, per user and per address, on the dashboard and the admin (issue 10, finding 11)."""
import pytest
from django.test import Client
from playwright.sync_api import expect

from dashboard import login_throttle
from tests.support.browser import PASSWORD

pytestmark = pytest.mark.django_db


def login(client, username, password, path="/accounts/login/"):
    return client.post(path, {"username": username, "password": password})


def throttled(response):
    return response.status_code == 200 and "Too many failed logins" in response.content.decode()


def test_a_hundred_wrong_passwords_then_the_right_one_is_refused(client, alice, monkeypatch):
    # The throttle's clock stands still while the 100 attempts are made (they take a minute on a
    # loaded machine), then moves 10 s: the form's wait is then exact.
    start = login_throttle.time.time()
    monkeypatch.setattr(login_throttle.time, "time", lambda: start)
    answers = [login(client, "alice", f"guess-{n}") for n in range(100)]
    assert all(a.status_code == 200 for a in answers)
    assert not throttled(answers[0]) and throttled(answers[5])
    monkeypatch.setattr(login_throttle.time, "time", lambda: start + 10)
    right = login(client, "alice", "pw")
    assert throttled(right) and "Try again in 4 min 50 s." in right.content.decode()
    assert "_auth_user_id" not in client.session


def test_the_user_may_log_in_again_once_the_window_ends(client, alice, monkeypatch):
    for n in range(5):
        login(client, "alice", f"guess-{n}")
    assert throttled(login(client, "alice", "pw"))
    later = login_throttle.time.time() + 301
    monkeypatch.setattr(login_throttle.time, "time", lambda: later)
    assert login(client, "alice", "pw").status_code == 302
    assert client.session["_auth_user_id"] == str(alice.pk)


def test_a_locked_user_name_does_not_lock_out_others_from_the_same_address(client, alice, django_user_model):
    django_user_model.objects.create_user("bob", password="bobs")
    for n in range(5):
        login(client, "alice", f"guess-{n}")
    assert throttled(login(client, "alice", "pw"))
    assert login(Client(), "bob", "bobs").status_code == 302


def test_an_address_trying_many_user_names_is_throttled(client, alice):
    for n in range(20):
        login(client, f"user{n}", "guess")
    assert throttled(login(client, "alice", "pw"))
    elsewhere = Client(REMOTE_ADDR="10.0.0.7")
    assert elsewhere.post("/accounts/login/", {"username": "alice", "password": "pw"}).status_code == 302


def test_a_success_does_not_reset_the_address(client, alice, django_user_model):
    django_user_model.objects.create_user("mallory", password="mine")
    for n in range(19):
        login(client, f"user{n}", "guess")
        if n % 4 == 0:
            assert login(Client(), "mallory", "mine").status_code == 302
    login(client, "user-last", "guess")
    assert throttled(login(Client(), "mallory", "mine"))


def test_the_admin_login_is_throttled_too(client, django_user_model):
    django_user_model.objects.create_superuser("admin", password="admin")
    for n in range(5):
        login(client, "admin", f"guess-{n}", path="/admin/login/")
    assert throttled(login(client, "admin", "admin", path="/admin/login/"))


@pytest.mark.browser
def test_the_login_page_says_when_to_retry(browser, live_lab_server, dashboard_user):
    context = browser.new_context()
    tab = context.new_page()
    tab.set_default_timeout(10_000)
    for n in range(5):
        tab.goto(live_lab_server.url + "/accounts/login/")
        tab.fill("input[name=username]", dashboard_user.username)
        tab.fill("input[name=password]", f"wrong-{n}")
        tab.click("button[type=submit]")
        expect(tab.locator(".form-errors")).to_contain_text("correct username and password")
    tab.fill("input[name=username]", dashboard_user.username)
    tab.fill("input[name=password]", PASSWORD)
    tab.click("button[type=submit]")
    expect(tab.locator(".form-errors")).to_contain_text("Too many failed logins")
    expect(tab.locator(".form-errors")).to_contain_text("Try again in 4 min")
    assert tab.url.startswith(live_lab_server.url + "/accounts/login/")
    context.close()
