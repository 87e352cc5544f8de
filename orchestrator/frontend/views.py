"""HTTP face of the frontend: the ECS API over AWS JSON 1.1 at ``POST /``.

Each call is: route by X-Amz-Target, authenticate (SigV4), parse JSON, dispatch, answer with
``application/x-amz-json-1.1`` and an ``x-amzn-RequestId``, and record one activity row with
the caller, status code and latency. Every malformed request is a 4xx with AWS's error type.
"""
import json
import logging
import time
import uuid

from django.http import HttpResponse
from django.utils import timezone

from orchestrator import activity, state_database, traces
from orchestrator.frontend import EcsError, call, sigv4, wire
from orchestrator.frontend.operations import supported
from orchestrator.models import acting_in, default_region

log = logging.getLogger(__name__)
TARGET_PREFIX = "AmazonEC2ContainerServiceV20141113."
CONTENT_TYPE = "application/x-amz-json-1.1"
# Where the ARN of the object an operation touched sits in its response.
_ARN_FIELDS = (
    ("cluster", "clusterArn"), ("taskDefinition", "taskDefinitionArn"), ("task", "taskArn"),
    ("service", "serviceArn"), ("tasks", "taskArn"), ("clusters", "clusterArn"), ("services", "serviceArn"),
)


def api(request):
    """Answer one ECS API call (see the module docstring for the steps), a call that writes in
    one transaction with its activity rows."""
    with acting_in(sigv4.scope_region(request) or default_region()), state_database.foreground():
        return _api(request)


def _api(request):
    """The call itself: route, authenticate and parse (before its turn at the write lock: every
    other writer waits while it holds it), dispatch and record (in its turn), answer."""
    started, started_at = time.perf_counter(), timezone.now()
    trace_id = traces.new_trace_id()
    operation, caller, response, params, account = _target_name(request), "", {}, {}, None
    try:
        operation = _operation(request)
        body = _body(request)
        key = sigv4.authenticate(request)
        caller, account = key.caller, key.account
        params = _parse(body)
    except Exception as exc:
        response, status = _failure(exc, operation)
        _record(account, operation, params, response, status, trace_id, caller or _claimed_key(request),
                (time.perf_counter() - started) * 1000, started_at)
        return _respond(response, status)
    with state_database.one_turn(operation):
        try:
            with traces.continuing(trace_id):
                response = call(key.account, operation, params, caller=caller, trace_id=trace_id)
            status = 200
        except Exception as exc:
            response, status = _failure(exc, operation)
        latency_ms = (time.perf_counter() - started) * 1000
        _record(account, operation, params, response, status, trace_id, caller, latency_ms, started_at)
    return _respond(response, status)


def _failure(exc, operation):
    """(response, status) of a call that raised ``exc``: the API's error, or a logged 500 for a
    bug (never the caller's fault)."""
    if isinstance(exc, EcsError):
        return exc.as_json(), exc.status
    log.exception("ECS %s failed", operation, exc_info=exc)
    return {"__type": "ServerException", "message": "Internal error in Fargate Lab."}, 500


def _target_name(request):
    """The operation named by X-Amz-Target, for the activity log even when it is unknown."""
    return request.META.get("HTTP_X_AMZ_TARGET", "").rpartition(".")[2][:64] or "unknown"


def _operation(request):
    """The ECS operation named by X-Amz-Target, or UnknownOperationException."""
    target = request.META.get("HTTP_X_AMZ_TARGET", "")
    prefix, _, name = target.rpartition(".")
    if prefix + "." != TARGET_PREFIX:
        raise EcsError(
            "UnknownOperationException",
            f"X-Amz-Target '{target[:128]}' is not an ECS operation (expected {TARGET_PREFIX}<Operation>).",
        )
    if not supported(name):
        raise EcsError("UnknownOperationException", f"Operation {name[:128]} is not supported by Fargate Lab")
    return name


def _body(request):
    """The raw request body; InvalidParameterException when it exceeds the upload limit."""
    try:
        return wire.body(request)
    except wire.Malformed as error:
        raise EcsError("InvalidParameterException", str(error)) from None


def _parse(body):
    """The request's JSON object ("" is an empty object, as the SDKs send for no parameters)."""
    try:
        return wire.json_object(body)
    except wire.BadText as error:
        raise EcsError("InvalidParameterException", str(error)) from None
    except wire.Malformed as error:
        raise EcsError("SerializationException", str(error)) from None


def _claimed_key(request):
    """The access key id a rejected request claimed to be signed with, for the activity log."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    _, _, rest = header.partition("Credential=")
    return rest.split("/", 1)[0].split(",", 1)[0][:128] if rest else ""


def _object_arn(params, response):
    """The ARN of the object a call touched, from its response (or its resourceArn)."""
    for key, field in _ARN_FIELDS:
        value = response.get(key)
        if isinstance(value, list):
            value = value[0] if value else None
        if isinstance(value, dict) and field in value:
            return value[field]
    arn = params.get("resourceArn") if isinstance(params, dict) else None
    return arn if isinstance(arn, str) else ""


def _record(account, operation, params, response, status, trace_id, caller, latency_ms, started_at):
    """One activity row per call, the first step of its trace, with its safe parameters (for the
    aws CLI and kubectl forms the dashboard shows); a failure to record is logged and does not
    fail the call."""
    if status == 200:
        message = f"{operation} → 200"
    else:
        message = f"{operation} → {status} {response.get('__type')}: {response.get('message', '')}"
    try:
        traces.record_call("frontend", operation, trace_id, account, started_at, latency_ms,
                           _object_arn(params, response), message, caller=caller, status_code=status,
                           request=activity.api_request(account, operation, params))
    except Exception:  # the activity log is for watching, the API answer matters more
        log.exception("could not record activity for %s", operation)


def _respond(data, status):
    """An AWS JSON 1.1 response with a request id (and the error type on errors)."""
    response = HttpResponse(json.dumps(data), status=status, content_type=CONTENT_TYPE)
    response["x-amzn-RequestId"] = str(uuid.uuid4())
    if status != 200:
        response["x-amzn-ErrorType"] = data.get("__type", "")
    return response
