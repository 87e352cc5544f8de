"""HTTP face of CloudWatch Logs: POST / with X-Amz-Target: Logs_20140328.<Operation>, signed
for the ``logs`` service with the lab's keys; errors in Logs' shape, never a Django page."""
import json
import logging
import re
import time
import uuid

from django.http import HttpResponse
from django.utils import timezone

from orchestrator import traces
from orchestrator.aws_auth import AuthError, authenticate
from orchestrator.frontend import wire
from orchestrator.frontend.logs import TARGET_PREFIX, LogsError
from orchestrator.frontend.logs.operations import call

log = logging.getLogger(__name__)
CONTENT_TYPE = "application/x-amz-json-1.1"
_SCOPE_REGION = re.compile(r"Credential=[^/,\s]*/[0-9]{8}/([^/,\s]+)/")


def api(request):
    """Answer one CloudWatch Logs call: authenticate, parse, run, record, answer."""
    operation = request.META.get("HTTP_X_AMZ_TARGET", "").removeprefix(TARGET_PREFIX)[:64] or "unknown"
    try:
        raw = wire.body(request)
    except wire.Malformed as error:
        return _answer({"__type": "InvalidParameterException", "message": str(error)}, 400)
    try:
        key = authenticate(request, "logs")
    except AuthError as error:
        return _answer({"__type": error.code, "message": error.message}, 403)
    region = _SCOPE_REGION.search(request.META.get("HTTP_AUTHORIZATION", "")).group(1)
    started, started_at, trace_id = time.perf_counter(), timezone.now(), traces.new_trace_id()
    try:
        with traces.continuing(trace_id):
            result, status = call(key.account, region, operation, wire.json_object(raw)), 200
    except wire.Malformed as error:
        kind = "InvalidParameterException" if isinstance(error, wire.BadText) else "SerializationException"
        result, status = {"__type": kind, "message": str(error)}, 400
    except LogsError as error:
        result, status = error.as_json(), error.status
    except Exception:  # a bug must still answer in Logs' shape, never as a Django error page
        log.exception("CloudWatch Logs %s failed", operation)
        result, status = {"__type": "ServiceUnavailableException", "message": "Internal error in Fargate Lab."}, 500
    message = f"logs {operation} → {status}" + (f" {result['__type']}: {result['message']}" if status != 200 else "")
    try:
        traces.record_call("frontend", operation, trace_id, key.account, started_at,
                           (time.perf_counter() - started) * 1000, message=message, caller=key.caller,
                           status_code=status)
    except Exception:  # the activity log is for watching, the API answer matters more
        log.exception("could not record activity for logs %s", operation)
    return _answer(result, status)


def _answer(data, status):
    response = HttpResponse(json.dumps(data), status=status, content_type=CONTENT_TYPE)
    response["x-amzn-RequestId"] = str(uuid.uuid4())
    return response
