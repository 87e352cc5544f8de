"""SigV4 authentication for the lab's other AWS services (ELBv2, ECR).

The ECS frontend's verifier (``orchestrator.frontend.sigv4``) accepts only the ``ecs`` scope;
this module checks the same signature for another service's scope by reusing its canonical
request and signing functions, and raises ``AuthError`` with AWS's error code instead of an
ECS error, so each protocol can word the error its own way.
"""
import datetime
import hmac
import re


_PARAM_RE = re.compile(r"\s*([A-Za-z]+)\s*=\s*([^,\s]*)\s*")
_DATE_RE = re.compile(r"[0-9]{8}T[0-9]{6}Z")
MAX_SKEW = datetime.timedelta(minutes=15)


class AuthError(Exception):
    """An authentication failure: AWS's error code and message (always HTTP 403)."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def credential_scope(request):
    """The credential scope's service named by the Authorization header ('' if none or garbled)."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    match = re.search(r"Credential=[^/,\s]*/[0-9]{8}/[^/,\s]*/([^/,\s]+)/aws4_request", header)
    return match.group(1) if match else ""


# AWS words the same failure differently in its two protocols: (query, JSON) codes.
_CODES = {
    "bad-scope": ("SignatureDoesNotMatch", "InvalidSignatureException"),
    "bad-signature": ("SignatureDoesNotMatch", "InvalidSignatureException"),
    "bad-token": ("InvalidClientTokenId", "UnrecognizedClientException"),
}
# The services of the lab that speak the query protocol (the others speak AWS JSON 1.1).
QUERY_SERVICES = {"elasticloadbalancing"}


def _code(failure, service):
    query, json = _CODES[failure]
    return query if service in QUERY_SERVICES else json


def authenticate(request, service, now=None):
    """Verify the request's SigV4 signature for ``service``; return the AccessKey that signed it."""
    from orchestrator.frontend.sigv4 import BAD_TOKEN, canonical_request, served_regions, sign, signer

    header = request.META.get("HTTP_AUTHORIZATION", "")
    if not header:
        raise AuthError("MissingAuthenticationToken", "Missing Authentication Token")
    algorithm, _, rest = header.strip().partition(" ")
    params = {}
    for part in rest.split(","):
        match = _PARAM_RE.fullmatch(part)
        if match:
            params[match.group(1)] = match.group(2)
    if algorithm != "AWS4-HMAC-SHA256" or not all(params.get(k) for k in ("Credential", "SignedHeaders", "Signature")):
        raise AuthError("IncompleteSignature", "Authorization header requires Credential, SignedHeaders and Signature.")
    parts = params["Credential"].split("/")
    if len(parts) != 5 or parts[4] != "aws4_request" or not re.fullmatch(r"[0-9]{8}", parts[1]):
        raise AuthError("IncompleteSignature", "Credential should be scoped like 'AKID/20240101/us-east-1/service/aws4_request'.")
    if parts[2] not in served_regions():
        raise AuthError(_code("bad-scope", service), f"Credential should be scoped to a valid region, not '{parts[2][:32]}'.")
    if parts[3] != service:
        raise AuthError(_code("bad-scope", service), f"Credential should be scoped to correct service: '{service}'.")
    amz_date = request.META.get("HTTP_X_AMZ_DATE", "")
    if not _DATE_RE.fullmatch(amz_date) or amz_date[:8] != parts[1]:
        raise AuthError("IncompleteSignature", "X-Amz-Date must be YYYYMMDD'T'HHMMSS'Z' and match the credential date.")
    signed_at = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
    if abs((now or datetime.datetime.now(datetime.timezone.utc)) - signed_at) > MAX_SKEW:
        raise AuthError(_code("bad-signature", service), f"Signature expired: {amz_date} is outside the allowed 15 minutes.")
    key = signer(request, parts[0])
    if key is None:
        raise AuthError(_code("bad-token", service), BAD_TOKEN)
    signed_headers = params["SignedHeaders"].lower().split(";")
    expected = sign(key.secret_access_key, amz_date, "/".join(parts[1:]), canonical_request(request, signed_headers))
    if not hmac.compare_digest(expected, params["Signature"].lower()):
        raise AuthError(
            _code("bad-signature", service),
            "The request signature we calculated does not match the signature you provided.",
        )
    return key
