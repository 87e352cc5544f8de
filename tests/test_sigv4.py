"""SigV4 verification: what botocore signs, we verify; anything else is AWS's error."""
import datetime

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import pytest
from django.test import RequestFactory

from orchestrator.frontend import EcsError
from orchestrator.frontend.sigv4 import authenticate
from orchestrator.models import AccessKey, Account
from tests.support.api import signed_request

URL = "http://localhost:8000"


def django_request(headers, data, *, path="/"):
    """A Django request carrying exactly the headers and body botocore signed."""
    headers = dict(headers)
    content_type = headers.pop("Content-Type")
    headers.setdefault("Host", "localhost:8000")
    return RequestFactory().post(path, data=data, content_type=content_type, headers=headers)


def error_type(request, **kwargs):
    with pytest.raises(EcsError) as info:
        authenticate(request, **kwargs)
    return info.value.error_type, info.value.message


@pytest.fixture
def alice(db):
    """A second account with its own key."""
    account = Account.objects.create(account_id="111111111111", name="alice")
    AccessKey.objects.create(account=account, access_key_id="AKIDALICE", secret_access_key="alice-secret")
    return account


def test_it_verifies_botocore_signatures(db):
    account = Account.default()
    headers, data = signed_request(URL, "ListClusters", {})
    key = authenticate(django_request(headers, data))
    assert key.access_key_id == "test"
    assert key.account == account


def test_it_returns_the_signing_keys_account(alice):
    Account.default()
    headers, data = signed_request(URL, "ListClusters", {"maxResults": 5}, key="AKIDALICE", secret="alice-secret")
    assert authenticate(django_request(headers, data)).account == alice


def test_it_verifies_a_body_with_unicode(db):
    Account.default()
    headers, data = signed_request(URL, "CreateCluster", {"clusterName": "x", "tags": [{"key": "k", "value": "é ☃"}]})
    assert authenticate(django_request(headers, data)).access_key_id == "test"


def test_it_rejects_a_wrong_secret(db):
    Account.default()
    headers, data = signed_request(URL, "ListClusters", {}, secret="wrong")
    kind, message = error_type(django_request(headers, data))
    assert kind == "InvalidSignatureException"
    assert "does not match the signature you provided" in message


def test_it_rejects_a_tampered_body(db):
    Account.default()
    headers, _ = signed_request(URL, "ListClusters", {"maxResults": 1})
    kind, _ = error_type(django_request(headers, b'{"maxResults": 2}'))
    assert kind == "InvalidSignatureException"


def test_it_rejects_a_tampered_target(db):
    Account.default()
    headers, data = signed_request(URL, "ListClusters", {})
    headers["X-Amz-Target"] = "AmazonEC2ContainerServiceV20141113.DeleteCluster"
    assert error_type(django_request(headers, data))[0] == "InvalidSignatureException"


def test_it_rejects_an_unknown_key(db):
    Account.default()
    headers, data = signed_request(URL, "ListClusters", {}, key="AKIDNOBODY")
    assert error_type(django_request(headers, data)) == (
        "UnrecognizedClientException", "The security token included in the request is invalid."
    )


def test_it_rejects_an_inactive_key(db):
    Account.default()
    AccessKey.objects.filter(access_key_id="test").update(active=False)
    headers, data = signed_request(URL, "ListClusters", {})
    assert error_type(django_request(headers, data))[0] == "UnrecognizedClientException"


def test_it_rejects_a_missing_signature(db):
    request = RequestFactory().post("/", data=b"{}", content_type="application/x-amz-json-1.1")
    assert error_type(request)[0] == "MissingAuthenticationTokenException"


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic dGVzdDp0ZXN0",
        "AWS4-HMAC-SHA256",
        "AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/ecs/aws4_request",
        "AWS4-HMAC-SHA256 Credential=test, SignedHeaders=host, Signature=" + "0" * 64,
        "AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/ecs/aws4_request, SignedHeaders=host, Signature=xyz",
        "AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/ecs/aws4_request, SignedHeaders=x-amz-date, Signature="
        + "0" * 64,
        "AWS4-HMAC-SHA256 garbage,,,",
    ],
)
def test_it_rejects_a_garbled_header(db, authorization):
    Account.default()
    request = RequestFactory().post(
        "/", data=b"{}", content_type="application/x-amz-json-1.1",
        headers={"Authorization": authorization, "X-Amz-Date": "20240101T000000Z"},
    )
    assert error_type(request)[0] == "IncompleteSignatureException"


def test_it_rejects_another_services_scope(db):
    Account.default()
    headers, data = signed_request(URL, "ListClusters", {})
    headers["Authorization"] = headers["Authorization"].replace("/ecs/", "/s3/")
    assert error_type(django_request(headers, data))[0] == "InvalidSignatureException"


def test_it_rejects_an_expired_signature(db):
    Account.default()
    signed_at = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=20)
    headers, data = signed_request(URL, "ListClusters", {}, signed_at=signed_at)
    kind, message = error_type(django_request(headers, data))
    assert kind == "InvalidSignatureException"
    assert message.startswith("Signature expired")


def test_it_accepts_a_clock_skew_under_15_minutes(db):
    Account.default()
    signed_at = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=14)
    headers, data = signed_request(URL, "ListClusters", {}, signed_at=signed_at)
    assert authenticate(django_request(headers, data)).access_key_id == "test"


def test_it_verifies_a_query_string(db):
    Account.default()
    request = botocore.awsrequest.AWSRequest(
        method="POST", url=URL + "/?b=2&a=1%20x", data=b"{}",
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "x"},
    )
    botocore.auth.SigV4Auth(botocore.credentials.Credentials("test", "test"), "ecs", "us-east-1").add_auth(request)
    headers = dict(request.headers.items())
    django = RequestFactory().post(
        "/?b=2&a=1%20x", data=b"{}", content_type=headers.pop("Content-Type"),
        headers={**headers, "Host": "localhost:8000"},
    )
    assert authenticate(django).access_key_id == "test"


def test_it_creates_the_default_account_in_a_fresh_lab(db):
    headers, data = signed_request(URL, "ListClusters", {})
    key = authenticate(django_request(headers, data))
    assert key.account.account_id == "000000000000"


def test_it_does_not_recreate_a_removed_test_key(db):
    Account.default()
    AccessKey.objects.filter(access_key_id="test").delete()
    headers, data = signed_request(URL, "ListClusters", {})
    assert error_type(django_request(headers, data))[0] == "UnrecognizedClientException"
