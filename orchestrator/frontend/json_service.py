"""The HTTP face shared by the lab's smaller AWS JSON 1.1 services (CloudWatch Logs, SSM, Secrets
Manager, ECR).

Each is a ``JsonService``: its botocore model, its operations and the error type its model uses
for a request that does not fit the model. A call is: authenticate (SigV4, the service's own
scope), parse the JSON body, check it against botocore's input shape, dispatch, and answer in
AWS JSON 1.1 with ``__type`` and ``message`` on errors. One activity row per call records the
caller, status and latency, and only the parameters the service calls safe: never a value.
"""
import functools
import json
import logging
import re
import time
import uuid
from dataclasses import dataclass, field

import botocore.session
from botocore.validate import ParamValidator
from django.http import HttpResponse
from django.utils import timezone

from orchestrator import state_database, traces
from orchestrator.aws_auth import AuthError, authenticate
from orchestrator.frontend import sigv4, wire
from orchestrator.models import acting_in, default_region

log = logging.getLogger(__name__)
CONTENT_TYPE = "application/x-amz-json-1.1"


class ServiceError(Exception):
    """An error in the service's own shape: ``__type``, message and HTTP status, and any other
    members the model gives that error (Cloud Map's NamespaceAlreadyExists names the namespace)."""

    def __init__(self, error_type, message, status=400, **members):
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.status = status
        self.members = members


@dataclass(frozen=True)
class JsonService:
    """One AWS JSON service of the lab.

    ``operations`` maps an operation name to ``handler(account, params, caller) -> dict``;
    ``invalid`` is the error type for input the model refuses; ``safe_params`` names the
    request members the activity log may keep (names and flags, never values); ``component``
    is the part of the map the calls belong to (another than the frontend names its rows
    ``api.<Operation>``, as the dashboard's own calls to it do); ``patterns`` False leaves the
    model's regular expressions to the service's own checks (SSM names a bad filter key
    InvalidFilterKey, ECR words a bad name its own way: a pattern check would pre-empt both);
    ``error`` is the ServiceError class its refusals are raised as (so that an in-process
    caller catches the service's own)."""

    model_name: str
    operations: dict = field(compare=False)
    invalid: str
    safe_params: tuple = ()
    server_error: str = "InternalServerError"
    component: str = "frontend"
    patterns: bool = True
    error: type = ServiceError

    @functools.cached_property
    def model(self):
        return botocore.session.get_session().get_service_model(self.model_name)

    @property
    def target_prefix(self):
        return self.model.metadata["targetPrefix"] + "."

    @property
    def signing_name(self):
        return self.model.metadata.get("signingName") or self.model.metadata["endpointPrefix"]

    def call(self, account, operation, params, caller=""):
        """Run one operation for ``account``; the response dict, or ServiceError."""
        handler = self.operations.get(operation)
        if handler is None:
            raise self.error("UnknownOperationException", f"Operation {operation[:64]} is not supported by "
                                                            f"Fargate Lab's {self.model_name}.")
        try:
            report = ParamValidator().validate(params, self.model.operation_model(operation).input_shape)
        except (RuntimeError, ValueError, OverflowError) as exc:  # botocore reading a timestamp it cannot place
            raise ServiceError(self.invalid, f"1 validation error detected: {str(exc)[:200]}") from None
        if report.has_errors():
            raise self.error(self.invalid, report.generate_report())
        problem = constraint_problem(params, self.model.operation_model(operation).input_shape,
                                     patterns=self.patterns)
        if problem:
            raise self.error(self.invalid, f"1 validation error detected: {problem}")
        return handler(account, params, caller)

    def api(self, request):
        """Answer one HTTP call (see the module docstring); one that writes in one transaction
        with its activity rows."""
        started, started_at, trace_id = time.perf_counter(), timezone.now(), traces.new_trace_id()
        operation = request.META.get("HTTP_X_AMZ_TARGET", "").removeprefix(self.target_prefix)[:64] or "unknown"
        with acting_in(sigv4.scope_region(request) or default_region()), state_database.foreground():
            return self._api(request, started, started_at, trace_id, operation)

    def _api(self, request, started, started_at, trace_id, operation):
        """The call itself: authenticate and parse (before its turn at the write lock: every other
        writer waits while it holds it), run and record (in its turn), answer."""
        account, caller, params = None, "", {}
        try:
            raw = wire.body(request)
            key = authenticate(request, self.signing_name)
            account, caller = key.account, key.caller
            params = wire.json_object(raw)
        except Exception as exc:
            result, status = self.failure(exc, operation)
            if account is not None:
                self.record(account, operation, params, result, status, trace_id, caller, started, started_at)
            return answer(result, status)
        with state_database.one_turn(operation):
            try:
                with traces.continuing(trace_id):
                    result, status = self.call(account, operation, params, caller), 200
            except Exception as exc:
                result, status = self.failure(exc, operation)
            self.record(account, operation, params, result, status, trace_id, caller, started, started_at)
        return answer(result, status)

    def failure(self, exc, operation):
        """(result, status) of a call that raised ``exc``, in the service's shape."""
        if isinstance(exc, AuthError):
            return {"__type": exc.code, "message": exc.message}, 403
        if isinstance(exc, wire.Malformed):  # text no API stores or a body too large is input the model refuses
            kind = self.invalid if isinstance(exc, (wire.BadText, wire.TooLarge)) else "SerializationException"
            return {"__type": kind, "message": str(exc)}, 400
        if isinstance(exc, ServiceError):
            return {**exc.members, "__type": exc.error_type, "message": exc.message}, exc.status
        # a bug must still answer in the service's shape, never as a Django page
        log.exception("%s %s failed", self.model_name, operation, exc_info=exc)
        return {"__type": self.server_error, "message": "Internal error in Fargate Lab."}, 500

    def redacted(self, params, message):
        """``message`` with every value of a parameter the log may not keep (a secret echoed
        back by an error, say) replaced by ****."""
        for name, value in params.items() if isinstance(params, dict) else ():
            if name not in self.safe_params and isinstance(value, (str, int, float)) and not isinstance(value, bool):
                text = str(value)
                if len(text) >= 1 and text in message:
                    message = message.replace(text, "****")
        return message

    def record(self, account, operation, params, result, status, trace_id, caller, started, started_at):
        """One activity row for the call, with only its safe parameters (a failure is logged)."""
        message = f"{self.model_name} {operation} → {status}"
        if status != 200:
            message += f" {result.get('__type')}: {self.redacted(params, result.get('message', ''))}"
        safe = {name: params[name] for name in self.safe_params
                if isinstance(params.get(name), (str, bool, int))}
        safe = {name: value[:256] if isinstance(value, str) else value for name, value in safe.items()}
        action = operation if self.component == "frontend" else f"api.{operation[:48]}"
        try:
            traces.record_call(self.component, action, trace_id, account, started_at,
                               (time.perf_counter() - started) * 1000, result.get("ARN", "") if status == 200 else "",
                               message, caller=caller, status_code=status,
                               request={"service": self.model_name, "params": safe, "known": {}})
        except Exception:  # the activity log is for watching; the answer matters more
            log.exception("could not record activity for %s %s", self.model_name, operation)


def constraint_problem(value, shape, where="", patterns=True):
    """What of the model's constraints botocore's validator leaves unchecked (maximum lengths,
    sizes and values, enums, patterns) ``value`` breaks, in AWS's words, or None."""
    said = f"at '{where[:1].lower() + where[1:]}'" if where else ""
    limit = shape.metadata.get("max")
    if shape.type_name in ("list", "map", "string") and isinstance(value, (list, dict, str)) and limit is not None \
            and len(value) > limit:
        return f"Value {said} failed to satisfy constraint: Member must have length less than or equal to {limit}"
    if shape.type_name == "structure" and isinstance(value, dict):
        items = [(value[name], member, f"{where}.{name}" if where else name)
                 for name, member in shape.members.items() if name in value]
    elif shape.type_name == "list" and isinstance(value, list):
        items = [(item, shape.member, f"{where}.{index + 1}.member") for index, item in enumerate(value)]
    elif shape.type_name == "map" and isinstance(value, dict):
        items = [item for key, entry in value.items()
                 for item in ((key, shape.key, f"{where}.key"), (entry, shape.value, f"{where}.{key[:64]}"))]
    else:
        items = []
    for item, member, place in items:
        problem = constraint_problem(item, member, place, patterns)
        if problem:
            return problem
    if shape.type_name == "string" and isinstance(value, str) and shape.enum and value not in shape.enum:
        return (f"Value '{value[:64]}' {said} failed to satisfy constraint: Member must satisfy enum value set: "
                f"[{', '.join(shape.enum)}]")
    pattern = _pattern(shape.metadata.get("pattern")) if patterns else None
    if shape.type_name == "string" and isinstance(value, str) and pattern is not None and not pattern.fullmatch(value):
        return (f"Value '{value[:200]}' {said} failed to satisfy constraint: Member must satisfy regular expression "
                f"pattern: {shape.metadata['pattern']}")
    if shape.type_name in ("integer", "long") and isinstance(value, int) and not isinstance(value, bool) \
            and limit is not None and value > limit:
        return f"Value '{value}' {said} failed to satisfy constraint: Member must have value less than or equal to {limit}"
    return None


@functools.lru_cache(maxsize=256)
def _pattern(pattern):
    """The model's pattern compiled, or None: none given, or one Python cannot read (Java's
    \\p{L} classes), which is left unchecked rather than guessed at."""
    if pattern is None:
        return None
    try:
        return re.compile(pattern, re.DOTALL)
    except re.error:
        return None


def answer(data, status):
    """An AWS JSON 1.1 response with a request id (and the error type on errors)."""
    response = HttpResponse(json.dumps(data, default=_json_default), status=status, content_type=CONTENT_TYPE)
    response["x-amzn-RequestId"] = str(uuid.uuid4())
    if status != 200:
        response["x-amzn-ErrorType"] = data.get("__type", "")
    return response


def _json_default(value):
    """Dates as the epoch seconds AWS JSON sends."""
    if hasattr(value, "timestamp"):
        return value.timestamp()
    raise TypeError(f"not JSON: {type(value).__name__}")


def page(rows, params, limit, default, bad_token):
    """One page of ``rows`` (MaxResults / NextToken, the token an offset); ``bad_token`` is
    the ServiceError for a token the lab did not hand out."""
    size = params.get("MaxResults", default)
    size = max(1, min(size, limit))
    token = params.get("NextToken")
    start = 0
    if token is not None:
        start = wire.ascii_int(token, max_digits=9)
        if start is None or start > len(rows):
            raise bad_token
    end = start + size
    return rows[start:end], (str(end) if end < len(rows) else None)
