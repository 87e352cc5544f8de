"""A fuzzer for the lab's AWS APIs: correctly signed requests generated from botocore's service
models, then mutated the way a hostile student (or a buggy SDK) would.

Every API the lab serves is one ``ServedApi`` line in ``SERVED_APIS``: its botocore model name
and the operations the lab implements. The protocol (AWS JSON 1.1 or query), the target prefix
and the signing name come from the model itself, so a new API (logs, ssm, secretsmanager…)
plugs in with one line.

Requests go in-process through Django's test client, signed with botocore's ``SigV4Auth``;
answers are checked with botocore's own parsers. One seeded ``random.Random`` drives everything,
so ``FUZZ_SEED=<seed>`` replays a run exactly.
"""
import base64
import json
import random
import string
from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable
from urllib.parse import quote
from xml.etree import ElementTree

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import botocore.parsers
import botocore.session

REGION = "us-east-1"
OTHER_REGION = "eu-west-1"  # a second region the lab serves by default (FARGATE_LAB_REGIONS)
HOST = "testserver"
MIB = 1024 * 1024

# Values a student types by mistake or on purpose.
NASTY_STRINGS = [
    "", " ", "x\n", "demo\n", "\n", "a\r\n", "\t", "\x00", "a\x00b", "\x01\x02\x1f", "\x7f", "\u0085", "\u2028",
    "²", "①", "١٢", "٣", "²56", "0x10", "-1", "1e3", "1.5", "NaN", "Infinity", "null", "true", "[]", "{}",
    "é", "🙂", "\ufeff", "\ud800", "\udfff", "../../etc/passwd", "a/b", "%00", "%0a", "<x>", "&amp;", "]]>",
    "' OR 1=1 --", "${jndi:x}", "arn:aws:ecs:us-east-1:000000000000:cluster/demo\n",
    "arn:aws:ecs:us-east-1:111111111111:cluster/demo", "arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/a/\n",
    "default", "demo", "web", "web:1", "web:²", "web:①", "web:99999999999999999999", "fargate-lab/demo:latest",
    # Opaque pagination tokens a student may forge: deep JSON, huge or negative offsets.
    base64.urlsafe_b64encode(b"[" * 2500 + b"]" * 2500).decode(),
    base64.urlsafe_b64encode(b'{"offset": 1000000000000000000000000000000}').decode(),
    base64.urlsafe_b64encode(b'{"offset": -1}').decode(), "eyJvZmZzZXQiOiAi²In0=",
]
NASTY_NUMBERS = [0, -1, 1, 2**31, -(2**31) - 1, 2**63, -(2**63) - 1, 10**30, 1.5, -0.0, 1e308, 3.0, True, False]
# Plausible values, so that many requests get past the first checks into the code behind them.
PLAUSIBLE_STRINGS = ["demo", "web", "default", "team/web", "fuzz-1", "fuzz-2", "256", "512", "1024", "FARGATE",
                     "awsvpc", "subnet-a", "sg-1", "fargate-lab/demo:latest", "HTTP", "ip", "vpc-fargatelab",
                     "service/default/web", "service/default/demo", "rate(5 minutes)", "cron(0 8 * * ? *)"]


@dataclass(frozen=True)
class ServedApi:
    """One AWS API the lab serves: botocore's model name and the operations implemented."""

    model_name: str
    operations: Callable = field(compare=False)
    # List*/Describe* operations that need one of several optional members (AWS says which).
    need_a_filter: frozenset = frozenset()
    # Operations answered with a refusal (they do not apply to the lab): fuzzed, not read back.
    refused: Callable = field(default=frozenset, compare=False)

    @cached_property
    def model(self):
        return botocore.session.get_session().get_service_model(self.model_name)

    @property
    def protocol(self):
        return self.model.metadata["protocol"]

    @property
    def signing_name(self):
        return self.model.metadata.get("signingName") or self.model.metadata["endpointPrefix"]

    @property
    def target_prefix(self):
        return self.model.metadata.get("targetPrefix", "")

    def served(self):
        """The operation names the lab implements, in the model's order."""
        names = set(self.operations())
        return [name for name in self.model.operation_names if name in names]


@dataclass
class Request:
    """One HTTP request to the lab, as sent (for replaying a failure)."""

    api: ServedApi
    operation: str
    body: bytes
    headers: dict
    mutation: str
    # False when nothing in the request says which API it is for (the dashboard shares "/").
    identifiable: bool = True
    # True when the lab must refuse it (a 4xx): its signature or credentials are wrong.
    refused: bool = False

    def describe(self):
        shown = self.body[:600] + (b"..." if len(self.body) > 600 else b"")
        headers = {k: (v[:120] if isinstance(v, str) else v) for k, v in self.headers.items()}
        return f"{self.api.model_name} {self.operation} [{self.mutation}] headers={headers} body={shown!r}"


# --- values from shapes --------------------------------------------------------------------


class Generator:
    """Builds plausible inputs for a shape, remembering names that later requests can reuse."""

    def __init__(self, rng):
        self.rng = rng
        self.seen = list(PLAUSIBLE_STRINGS)

    def remember(self, value):
        if isinstance(value, str) and 0 < len(value) < 200 and value not in self.seen:
            self.seen.append(value)
            del self.seen[:-300]

    def value(self, shape, depth=0):
        kind = shape.type_name
        rng = self.rng
        if kind == "structure":
            result = {}
            required = set(shape.required_members)
            for name, member in shape.members.items():
                if name in required or (depth < 4 and rng.random() < 0.35):
                    result[name] = self.value(member, depth + 1)
            return result
        if kind == "list":
            if depth >= 5:
                return []
            return [self.value(shape.member, depth + 1) for _ in range(rng.choice((0, 1, 1, 2, 3)))]
        if kind == "map":
            return {self.string(shape.key): self.value(shape.value, depth + 1) for _ in range(rng.choice((0, 1, 2)))}
        if kind in ("integer", "long"):
            low, high = shape.metadata.get("min", 0), shape.metadata.get("max", 100)
            return rng.randint(int(low), int(min(high, low + 1000)))
        if kind in ("float", "double"):
            return rng.random() * 100
        if kind == "boolean":
            return rng.random() < 0.5
        if kind == "timestamp":
            return rng.randint(1_600_000_000, 1_900_000_000)
        if kind == "blob":
            return "aGVsbG8="
        return self.string(shape)

    def string(self, shape):
        enum = shape.metadata.get("enum")
        if enum and self.rng.random() < 0.8:
            return self.rng.choice(enum)
        if self.rng.random() < 0.7:
            return self.rng.choice(self.seen)
        return "".join(self.rng.choice(string.ascii_lowercase + string.digits + "-_") for _ in range(self.rng.randint(1, 12)))


# --- mutations ----------------------------------------------------------------------------


def _paths(value, prefix=()):
    """Every path (tuple of keys/indexes) into a nested params value, to 12 levels."""
    yield prefix
    if len(prefix) >= 12:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, prefix + (index,))


def _replace(value, path, new):
    """A copy of ``value`` with the item at ``path`` replaced (``_DELETE`` removes it)."""
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        copy = dict(value)
        if new is _DELETE and not rest:
            copy.pop(head, None)
        else:
            copy[head] = _replace(value[head], rest, new)
        return copy
    copy = list(value)
    if new is _DELETE and not rest:
        del copy[head]
    else:
        copy[head] = _replace(value[head], rest, new)
    return copy


_DELETE = object()


def nested(depth, leaf="x"):
    """A value nested ``depth`` levels deep, alternating lists and objects."""
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"a": value}
    return value


def nested_json(depth):
    """The JSON text of a value nested ``depth`` levels (built as text: json.dumps would recurse)."""
    return ('{"a":' * depth + "1" + "}" * depth).encode()


class Mutator:
    """Mutations of params (value level) and of whole requests (body, headers, target)."""

    VALUE_MUTATIONS = ("wrong-type", "null", "huge-string", "huge-number", "nasty-string", "nasty-number",
                       "deep-nesting", "missing-member", "extra-member", "empty-container")

    def __init__(self, rng):
        self.rng = rng

    def mutate_value(self, params):
        """(mutated params, mutation name) with one value changed at a random path."""
        rng = self.rng
        kind = rng.choice(self.VALUE_MUTATIONS)
        paths = list(_paths(params))
        path = rng.choice(paths)
        if kind == "missing-member":
            keyed = [p for p in paths if p and isinstance(p[-1], str)]
            return (_replace(params, rng.choice(keyed), _DELETE) if keyed else {}), kind
        if kind == "extra-member":
            target = rng.choice([p for p in paths if _at(params, p).__class__ is dict] or [()])
            extra = dict(_at(params, target) if isinstance(_at(params, target), dict) else {})
            extra[rng.choice(["unknownField", "__proto__", "constructor", "x\n", "", "🙂"])] = rng.choice(
                ["x", 1, None, [], {}, nested(50)])
            return _replace(params, target, extra), kind
        new = {
            "wrong-type": lambda: rng.choice(["text", 7, 7.5, True, [], ["x"], {}, {"k": "v"}]),
            "null": lambda: None,
            "huge-string": lambda: rng.choice(["x", "²", "\x01", "é"]) * rng.choice((1025, 9000, 70_000)),
            "huge-number": lambda: rng.choice([10**400 if rng.random() < 0.3 else 2**64, -(2**70), 1e300, 10**20]),
            "nasty-string": lambda: rng.choice(NASTY_STRINGS),
            "nasty-number": lambda: rng.choice(NASTY_NUMBERS),
            "deep-nesting": lambda: nested(rng.choice((40, 200, 990))),
            "empty-container": lambda: rng.choice([[], {}, [None], [{}], ""]),
        }[kind]()
        return _replace(params, path, new), kind


def _at(value, path):
    for key in path:
        value = value[key]
    return value


# --- serializing, signing and sending -----------------------------------------------------


def _default(value):
    """json.dumps fallback: huge ints and odd floats as JSON writes them."""
    return str(value)


def json_body(params):
    try:
        return json.dumps(params, default=_default).encode("utf-8", "surrogatepass")
    except (ValueError, RecursionError):
        return nested_json(2000)


def query_pairs(shape, value, prefix=""):
    """Flatten a value to query-protocol pairs the way botocore does, tolerating wrong types."""
    if value is None:
        return [(prefix, "")] if prefix else []
    if shape is not None and shape.type_name == "structure" and isinstance(value, dict):
        pairs = []
        for name, item in value.items():
            member = shape.members.get(name)
            pairs += query_pairs(member, item, f"{prefix}.{name}" if prefix else str(name))
        return pairs
    if shape is not None and shape.type_name == "list" and isinstance(value, list):
        if not value:
            return [(prefix, "")]
        pairs = []
        for index, item in enumerate(value, 1):
            pairs += query_pairs(shape.member, item, f"{prefix}.member.{index}")
        return pairs
    if shape is not None and shape.type_name == "map" and isinstance(value, dict):
        pairs = []
        for index, (key, item) in enumerate(value.items(), 1):
            pairs.append((f"{prefix}.entry.{index}.key", str(key)))
            pairs += query_pairs(shape.value, item, f"{prefix}.entry.{index}.value")
        return pairs
    if isinstance(value, (dict, list)):
        try:
            value = json.dumps(value, default=_default)[:100_000]
        except (ValueError, RecursionError):
            value = "[" * 5000
    if isinstance(value, bool):
        value = "true" if value else "false"
    return [(prefix, str(value))] if prefix else []


def form_body(pairs):
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='', errors='surrogatepass')}" for k, v in pairs).encode()


def sign(api, body, headers, *, region=REGION, service=None, key="test", secret="test", token=None):
    """Headers of the request signed with SigV4 for ``api`` (botocore's own signer)."""
    request = botocore.awsrequest.AWSRequest(method="POST", url=f"http://{HOST}/", data=body, headers=dict(headers))
    credentials = botocore.credentials.Credentials(key, secret, token)
    botocore.auth.SigV4Auth(credentials, service or api.signing_name, region).add_auth(request)
    return dict(request.headers.items())


def send(client, request):
    """POST one request through Django's test client; returns the response."""
    meta = {"HTTP_HOST": HOST}
    for name, value in request.headers.items():
        if name.lower() == "content-type":
            # Set as is, also for an empty body (the test client drops it then, a server does not).
            meta["CONTENT_TYPE"] = value
        elif name.lower() not in ("content-length", "host"):
            meta["HTTP_" + name.upper().replace("-", "_")] = value
    return client.generic("POST", "/", data=request.body, **meta)


# --- what every answer must look like -----------------------------------------------------


def check_answer(request, response):
    """Problems with one answer: a 5xx, or an error (or success) not in the API's own shape."""
    status, body = response.status_code, response.content
    if status >= 500:
        return f"HTTP {status}: {body[:300]!r}"
    api = request.api
    operation = api.model.operation_model(request.operation) if request.operation in api.model.operation_names else None
    if api.protocol == "json":
        try:
            data = json.loads(body)
        except ValueError:
            return f"HTTP {status} with a body that is not JSON: {body[:200]!r}"
        if not isinstance(data, dict):
            return f"HTTP {status} with JSON that is not an object: {body[:200]!r}"
        if status != 200:
            if not isinstance(data.get("__type"), str) or not data["__type"]:
                return f"HTTP {status} error without __type: {body[:200]!r}"
            if not (response.get("Content-Type") or "").startswith("application/x-amz-json-1.1"):
                return f"HTTP {status} error with Content-Type {response.get('Content-Type')!r}"
    else:
        try:
            root = ElementTree.fromstring(body)
        except ElementTree.ParseError as exc:
            return f"HTTP {status} with XML that does not parse ({exc}): {body[:300]!r}"
        if status != 200 and (not root.tag.endswith("ErrorResponse") or not root.findtext(".//{*}Code")):
            return f"HTTP {status} error that is not an ErrorResponse with a Code: {body[:300]!r}"
    parsed = parse(api, operation, response)
    if isinstance(parsed, str):
        return parsed
    if status != 200 and not parsed.get("Error", {}).get("Code"):
        return f"botocore finds no error code in HTTP {status}: {body[:300]!r}"
    return None


def parse(api, operation, response):
    """The answer as botocore parses it (a dict), or a string saying why it cannot."""
    parser = botocore.parsers.create_parser(api.protocol)
    headers = {k.lower(): v for k, v in response.items()}
    try:
        return parser.parse({"status_code": response.status_code, "headers": headers, "body": response.content},
                            operation.output_shape if operation is not None else None)
    except Exception as exc:  # whatever botocore raises, the SDK would raise it at the student
        return f"botocore cannot parse HTTP {response.status_code} ({type(exc).__name__}: {exc}): {response.content[:300]!r}"


# --- whole requests -----------------------------------------------------------------------


class Fuzzer:
    """Builds one signed, mutated request after another from a seeded RNG."""

    def __init__(self, seed, apis):
        self.rng = random.Random(seed)
        self.apis = apis
        self.generator = Generator(self.rng)
        self.mutator = Mutator(self.rng)

    def next_request(self):
        rng = self.rng
        api = rng.choice(self.apis)
        served = api.served()
        operation = rng.choice(served) if rng.random() < 0.95 else rng.choice(api.model.operation_names)
        params = self.generator.value(api.model.operation_model(operation).input_shape) if api.model.operation_model(
            operation).input_shape is not None else {}
        roll = rng.random()
        # A valid or mutated call acts in one of two served regions (each region's objects are its own).
        region = rng.choice([REGION, OTHER_REGION])
        if roll < 0.12:
            return self.build(api, operation, params, "valid", region=region)
        if roll < 0.62:
            params, mutation = self.mutator.mutate_value(params)
            if rng.random() < 0.3:
                params, second = self.mutator.mutate_value(params)
                mutation += "+" + second
            return self.build(api, operation, params, mutation, region=region)
        if roll < 0.82:
            return self.broken_body(api, operation, params)
        if roll < 0.90:
            return self.wrong_operation(api, operation, params)
        return self.wrong_auth(api, operation, params)

    def encode(self, api, operation, params):
        """(body, headers) of a well-formed request for ``operation`` with ``params``."""
        if api.protocol == "json":
            return json_body(params), {"Content-Type": "application/x-amz-json-1.1",
                                       "X-Amz-Target": f"{api.target_prefix}.{operation}"}
        shape = api.model.operation_model(operation).input_shape if operation in api.model.operation_names else None
        pairs = [("Action", operation), ("Version", api.model.api_version)] + query_pairs(shape, params)
        return form_body(pairs), {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}

    def build(self, api, operation, params, mutation, *, body=None, headers=None, **signing):
        encoded_body, encoded_headers = self.encode(api, operation, params)
        body = encoded_body if body is None else body
        headers = {**encoded_headers, **(headers or {})}
        headers = {k: v for k, v in headers.items() if v is not None}
        return Request(api, operation, body, sign(api, body, headers, **signing), mutation)

    def broken_body(self, api, operation, params):
        rng = self.rng
        body, _ = self.encode(api, operation, params)
        kind = rng.choice(["invalid", "truncated", "wrong-content-type", "over-1-MiB", "empty", "not-an-object",
                           "deep-body", "invalid-utf8", "nul-bytes"])
        if kind == "invalid":
            body = rng.choice([b"{", b"{'a': 1}", b"{\"a\": }", b"NaN", b"{\"a\": NaN}", b"%zz&&==", b"Action=%ff%fe"])
        elif kind == "truncated":
            body = body[: rng.randint(0, max(0, len(body) - 1))]
        elif kind == "wrong-content-type":
            return self.build(api, operation, params, kind, headers={"Content-Type": rng.choice(
                ["text/plain", "application/json", "multipart/form-data; boundary=x", "application/xml", None])})
        elif kind == "over-1-MiB":
            padding = rng.choice([b" ", b"a"]) * (MIB + rng.randint(1, 4096))
            body = (body[:-1] + b', "pad": "' + padding + b'"}') if api.protocol == "json" and body.endswith(b"}") else body + b"&Pad=" + padding
        elif kind == "empty":
            body = b""
        elif kind == "not-an-object":
            body = rng.choice([b"[]", b"\"x\"", b"1", b"null", b"true", b"[{}]"])
            if api.protocol == "query":
                body = b"Action=" + operation.encode() + b"&" + body
        elif kind == "deep-body":
            depth = rng.choice((100, 1000, 5000, 100_000))
            body = nested_json(depth) if api.protocol == "json" else body + b"&" + b".member.1" * depth + b"=x"
        elif kind == "invalid-utf8":
            body = body + (b"\xff\xfe\xc3" if api.protocol == "json" else b"&Names.member.1=\xff\xfe")
            if api.protocol == "json":
                body = b"{\"a\": \"\xff\xfe\"}"
        elif kind == "nul-bytes":
            body = body.replace(b"demo", b"de\x00mo") + (b"&Names.member.1=%00" if api.protocol == "query" else b"")
        return self.build(api, operation, params, kind, body=body)

    def wrong_operation(self, api, operation, params):
        rng = self.rng
        other = rng.choice(self.apis)
        kind = rng.choice(["unknown-operation", "other-api-operation", "garbage-target", "missing-target"])
        if api.protocol == "json":
            target = {
                "unknown-operation": f"{api.target_prefix}.{rng.choice(['Nope', '', 'runTask', 'RunTask ', 'RunTask/x', '²'])}",
                "other-api-operation": f"{api.target_prefix}.{rng.choice(other.model.operation_names)}",
                "garbage-target": rng.choice(["", ".", "x" * 5000, "AmazonEC2ContainerServiceV20141113", "\u00e9.RunTask"]),
                "missing-target": None,
            }[kind]
            request = self.build(api, operation, params, kind, headers={"X-Amz-Target": target})
            request.identifiable = kind != "missing-target" and bool(target)
            return request
        action = {"unknown-operation": rng.choice(["Nope", "", "describeLoadBalancers", "DescribeLoadBalancers\n", "²"]),
                  "other-api-operation": rng.choice(other.model.operation_names),
                  "garbage-target": "x" * 5000, "missing-target": None}[kind]
        shape = api.model.operation_model(operation).input_shape
        pairs = ([("Action", action)] if action is not None else []) + [("Version", rng.choice([api.model.api_version, "2012-06-01", ""]))]
        body = form_body(pairs + query_pairs(shape, params))
        request = self.build(api, operation, params, kind, body=body)
        request.operation = action if action in api.model.operation_names else operation
        return request

    def wrong_auth(self, api, operation, params):
        rng = self.rng
        kind = rng.choice(["wrong-region", "wrong-service", "junk-security-token", "unknown-key", "wrong-secret",
                           "no-auth", "garbled-auth"])
        if kind == "no-auth" or kind == "garbled-auth":
            request = self.build(api, operation, params, kind)
            request.refused = True
            if kind == "no-auth":
                request.headers.pop("Authorization", None)
            else:
                request.headers["Authorization"] = rng.choice(["AWS4-HMAC-SHA256", "Basic x", "AWS4-HMAC-SHA256 Credential=",
                                                               "AWS4-HMAC-SHA256 Credential=test/²/us-east-1/ecs/aws4_request, SignedHeaders=host, Signature=" + "a" * 64])
            return request
        signing = {
            "wrong-region": {"region": rng.choice(["mars-north-1", "us-east-1\n", "", "²"])},
            "wrong-service": {"service": rng.choice(["s3", "ecs", "ecr", "elasticloadbalancing", "x"])},
            "junk-security-token": {"token": rng.choice(["junk", "", "x" * 3000, "IQoJb3JpZ2luX2VjE\n"])},
            "unknown-key": {"key": "AKIDNOTAKEY"},
            "wrong-secret": {"secret": "not-the-secret"},
        }[kind]
        request = self.build(api, operation, params, kind, **signing)
        request.refused = {
            "wrong-service": signing.get("service") != api.signing_name,
            # botocore sends no header for an empty token.
            "junk-security-token": "X-Amz-Security-Token" in request.headers,
        }.get(kind, True)
        # An ELBv2 call signed for another service that says no Action is not recognisably ELBv2.
        request.identifiable = not (kind == "wrong-service" and api.protocol == "query" and signing["service"] != "elasticloadbalancing"
                                    and b"Action=" not in request.body)
        return request
