"""Fixtures: the classroom — students with accounts of their own, a teacher, the check runner."""
import pytest

from classroom import runner
from orchestrator.models import Account

TEACHER_PASSWORD = STUDENT_PASSWORD = "correct horse battery staple"


def make_student(django_user_model, name, account_id):
    """A dashboard user acting as an account of their own (as ``manage.py addstudent`` makes)."""
    user = django_user_model.objects.create_user(name, password=STUDENT_PASSWORD)
    account = Account.objects.create(account_id=account_id, name=name)
    account.members.add(user)
    return user


@pytest.fixture
def students(transactional_db, django_user_model):
    """Three students: amy, bob and cat, each with an account."""
    return [make_student(django_user_model, name, f"{number:012d}")
            for number, name in enumerate(["amy", "bob", "cat"], start=111111111111)]


@pytest.fixture
def teacher(transactional_db, django_user_model):
    return django_user_model.objects.create_user("teach", password=TEACHER_PASSWORD, is_staff=True)


@pytest.fixture
def check_runner(transactional_db):
    """The check runner of this process, as the server's lifespan starts it."""
    started = runner.start()
    yield started
    runner.stop()


def login(browser, base_url, username, password=STUDENT_PASSWORD):
    """A new page logged in as ``username`` (close it with ``page.context.close()``)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(base_url + "/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(base_url + "/")
    return page
