"""AWS Signature Version 4 verification (the frontend's authentication, like kube-apiserver's authn).

The client signs a canonical form of its request with a key derived from its secret; we
rebuild the same canonical request from what Django received, derive the key from the secret
stored for the access key, and compare the signatures in constant time.
"""
import datetime
import hashlib
import hmac
import re
from urllib.parse import quote, unquote

from django.conf import settings

from orchestrator.frontend import EcsError
from orchestrator import models
from orchestrator.models import AccessKey, Account

ALGORITHM = "AWS4-HMAC-SHA256"
# How far X-Amz-Date may be from our clock (AWS allows 15 minutes).
MAX_SKEW = datetime.timedelta(minutes=15)
_PARAM_RE = re.compile(r"\s*([A-Za-z]+)\s*=\s*([^,\s]*)\s*")
_DATE_RE = re.compile(r"[0-9]{8}T[0-9]{6}Z")
_SCOPE_REGION_RE = re.compile(r"[^/,\s=]+/[0-9]{8}/([a-z0-9-]{1,32})/[a-z0-9-]+/aws4_request")

BAD_SIGNATURE = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method."
)
BAD_TOKEN = "The security token included in the request is invalid."
# Checks ``check(token, access_key) -> bool`` of session tokens the lab issued (see accept_tokens).
_token_checks = []


def served_regions():
    """The regions whose credential scope the lab accepts (FARGATE_LAB["REGIONS"] and "REGION");
    the call then acts in its scope's region (``scope_region``)."""
    return frozenset(models.served_regions())


def scope_region(request):
    """The served region named by the request's SigV4 credential scope (Authorization header or
    X-Amz-Credential), else None: the region the call acts in once its signature is verified."""
    match = _SCOPE_REGION_RE.search(request.META.get("HTTP_AUTHORIZATION", "")
                                    or request.GET.get("X-Amz-Credential", ""))
    name = match.group(1) if match else None
    return name if name in served_regions() else None


def accept_tokens(check):
    """Register ``check(token, access_key) -> bool``, a source of session tokens the lab issued
    (task role credentials will be one); a request carrying any other X-Amz-Security-Token is
    refused as AWS refuses it. Usable as a decorator."""
    _token_checks.append(check)
    return check


def token_refused(request, key):
    """Whether the request carries an X-Amz-Security-Token the lab did not issue for ``key``.

    AWS refuses an unknown token even when the signature is good; ignoring it would let a
    script that works here fail on AWS, and would hide a leaked or stale credential."""
    token = request.META.get("HTTP_X_AMZ_SECURITY_TOKEN")
    return token is not None and not any(check(token, key) for check in _token_checks)


def signer(request, key_id, find=None):
    """The key that signed the request: an AccessKey (``find(key_id)``, by default an active one) with
    no session token or one the lab issued for it, else temporary credentials the lab issued (a
    task role's, ``orchestrator/task_credentials.py``) with their own token; None if neither."""
    from orchestrator import task_credentials

    key = (find or _active_key)(key_id)
    if key is not None:
        return None if token_refused(request, key) else key
    token = request.META.get("HTTP_X_AMZ_SECURITY_TOKEN")
    return task_credentials.key_for(key_id, token) if token else None


def _active_key(key_id):
    return AccessKey.objects.select_related("account").filter(access_key_id=key_id, active=True).first()


def authenticate(request, now=None):
    """Verify the request's SigV4 signature; return the active AccessKey that signed it.

    Raises EcsError with AWS's error type for a missing, garbled, expired or wrong signature.
    """
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if not header:
        raise EcsError("MissingAuthenticationTokenException", "Missing Authentication Token")
    credential, signed_headers, signature = _parse_authorization(header)
    key_id, scope = _parse_credential(credential)
    amz_date = _request_date(request, scope)
    _check_clock(amz_date, now or datetime.datetime.now(datetime.timezone.utc))
    key = signer(request, key_id, find=_find_key)
    if key is None:
        raise EcsError("UnrecognizedClientException", BAD_TOKEN)
    canonical = canonical_request(request, signed_headers)
    expected = sign(key.secret_access_key, amz_date, scope, canonical)
    if not hmac.compare_digest(expected, signature.lower()):
        raise EcsError("InvalidSignatureException", BAD_SIGNATURE)
    return key


def _find_key(key_id):
    """The active access key ``key_id``; a lab with no account at all gets its default one first."""
    key = _active_key(key_id)
    if key is None and not Account.objects.exists():
        # A fresh lab answers the documented test/test key without a setup step.
        Account.default()
        key = _active_key(key_id)
    return key


def _parse_authorization(header):
    """Split 'AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…' into its three parts."""
    algorithm, _, rest = header.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise EcsError(
            "IncompleteSignatureException",
            f"Authorization header must use the {ALGORITHM} algorithm.",
        )
    params = {}
    for part in rest.split(","):
        match = _PARAM_RE.fullmatch(part)
        if not match:
            raise EcsError("IncompleteSignatureException", f"Authorization header is malformed: '{part.strip()[:64]}'.")
        params[match.group(1)] = match.group(2)
    for name in ("Credential", "SignedHeaders", "Signature"):
        if not params.get(name):
            raise EcsError(
                "IncompleteSignatureException",
                f"Authorization header requires '{name}' parameter. Authorization={header[:200]}",
            )
    signed_headers = params["SignedHeaders"].lower().split(";")
    if "host" not in signed_headers or not all(signed_headers):
        raise EcsError("IncompleteSignatureException", "SignedHeaders must include 'host'.")
    if not re.fullmatch(r"[0-9a-fA-F]{64}", params["Signature"]):
        raise EcsError("IncompleteSignatureException", "Signature must be 64 hexadecimal digits.")
    return params["Credential"], signed_headers, params["Signature"]


def _parse_credential(credential):
    """Split 'AKID/20240101/us-east-1/ecs/aws4_request' into the key id and the scope."""
    parts = credential.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request" or not re.fullmatch(r"[0-9]{8}", parts[1]) or not parts[0]:
        raise EcsError(
            "IncompleteSignatureException",
            "Credential should be scoped to a valid region, like 'AKID/20240101/us-east-1/ecs/aws4_request'.",
        )
    if parts[2] not in served_regions():
        raise EcsError("InvalidSignatureException", f"Credential should be scoped to a valid region, not '{parts[2][:32]}'.")
    if parts[3] != "ecs":
        raise EcsError("InvalidSignatureException", f"Credential should be scoped to correct service: 'ecs', not '{parts[3][:32]}'.")
    return parts[0], "/".join(parts[1:])


def _request_date(request, scope):
    """The signing time from X-Amz-Date; it must agree with the credential scope's date."""
    amz_date = request.META.get("HTTP_X_AMZ_DATE", "")
    if not _DATE_RE.fullmatch(amz_date):
        raise EcsError(
            "IncompleteSignatureException",
            "Authorization requires a valid X-Amz-Date header in the form YYYYMMDD'T'HHMMSS'Z'.",
        )
    if amz_date[:8] != scope[:8]:
        raise EcsError("InvalidSignatureException", "Date in Credential scope does not match the X-Amz-Date header.")
    return amz_date


def _check_clock(amz_date, now):
    """Refuse a signature made more than 15 minutes from now (a replayed request)."""
    try:
        signed_at = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        raise EcsError("IncompleteSignatureException", "X-Amz-Date is not a valid date.") from None
    if abs(now - signed_at) > MAX_SKEW:
        raise EcsError(
            "InvalidSignatureException",
            f"Signature expired: {amz_date} is now earlier or later than the allowed 15 minutes "
            f"from {now.strftime('%Y%m%dT%H%M%SZ')}.",
        )


def _header_value(request, name):
    """A request header by its lowercase name, from Django's META."""
    if name == "content-type":
        return request.META.get("CONTENT_TYPE", "")
    if name == "content-length":
        return request.META.get("CONTENT_LENGTH", "")
    return request.META.get("HTTP_" + name.upper().replace("-", "_"), "")


def canonical_request(request, signed_headers):
    """The canonical request SigV4 signs: method, path, query, signed headers, payload hash."""
    path = quote(request.path or "/", safe="/~")
    query = canonical_query(request.META.get("QUERY_STRING", ""))
    headers = "".join(
        f"{name}:{' '.join(_header_value(request, name).split())}\n" for name in sorted(signed_headers)
    )
    payload = hashlib.sha256(request.body).hexdigest()
    return "\n".join([request.method, path, query, headers, ";".join(sorted(signed_headers)), payload])


def canonical_query(query_string):
    """Sorted, URI-encoded key=value pairs of the query string."""
    pairs = []
    for item in query_string.split("&"):
        if not item:
            continue
        key, _, value = item.partition("=")
        pairs.append((quote(unquote(key), safe="-_.~"), quote(unquote(value), safe="-_.~")))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def signing_key(secret, date, region, service):
    """The derived key: HMAC chain over date, region, service and 'aws4_request'."""
    key = hmac.new(("AWS4" + secret).encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def sign(secret, amz_date, scope, canonical):
    """The hex signature of a canonical request for one credential scope."""
    string_to_sign = "\n".join(
        [ALGORITHM, amz_date, scope, hashlib.sha256(canonical.encode("utf-8")).hexdigest()]
    )
    date, region, service, _ = scope.split("/")
    return hmac.new(signing_key(secret, date, region, service), string_to_sign.encode(), hashlib.sha256).hexdigest()
