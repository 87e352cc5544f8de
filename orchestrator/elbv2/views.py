"""HTTP face of ELBv2: a form-encoded POST to / with Action=… and Version=2015-12-01."""
import logging
import time
from urllib.parse import parse_qsl

from django.http import HttpResponse
from django.utils import timezone

from orchestrator import state_database, traces
from orchestrator.aws_auth import AuthError, authenticate
from orchestrator.elbv2 import protocol
from orchestrator.elbv2.operations import OPERATIONS, REFUSED
from orchestrator.elbv2.protocol import ElbError
from orchestrator.frontend import sigv4, wire
from orchestrator.models import acting_in, default_region

log = logging.getLogger(__name__)


def _xml(body, status):
    return HttpResponse(body, status=status, content_type="text/xml")


def api(request):
    """Authenticate, parse, run one ELBv2 operation and answer in XML (errors included)."""
    request_id = protocol.new_request_id()
    started, started_at, trace_id = time.monotonic(), timezone.now(), traces.new_trace_id()
    try:
        form = _form(wire.body(request))
    except wire.Malformed as exc:
        return _xml(protocol.render_error(ElbError("ValidationError", str(exc)), request_id), 400)
    action = (form or {}).get("Action", "")
    with acting_in(sigv4.scope_region(request) or default_region()), state_database.foreground():
        # Authenticated before its turn at the write lock (every other writer waits while it holds it).
        try:
            key = authenticate(request, "elasticloadbalancing")
        except AuthError as exc:
            return _xml(protocol.render_error(ElbError(exc.code, exc.message, 403), request_id), 403)
        # A call that writes: one transaction with its activity row, acting in its signature's region.
        with state_database.one_turn(action):
            return _api(key, request_id, started, started_at, trace_id, form, action)


def _api(key, request_id, started, started_at, trace_id, form, action):
    """The call itself: run, record, answer."""
    try:
        if form is None:
            raise ElbError("MalformedQueryString", "The request body is not a UTF-8 form (application/x-www-form-urlencoded)")
        with traces.continuing(trace_id):
            result, status = _run(key, action, form, request_id), 200
    except ElbError as exc:
        result, status = protocol.render_error(exc, request_id), exc.status
    except Exception:  # a bug must still answer as ELBv2 does, never as a Django 500 page
        log.exception("ELBv2 %s failed", action)
        result, status = protocol.render_error(ElbError("InternalFailure", "internal error", 500, sender=False), request_id), 500
    traces.record_call("load_balancer", f"api.{action[:48] or 'unknown'}", trace_id, key.account, started_at,
                       (time.monotonic() - started) * 1000, message=f"elbv2 {action[:64]} → {status}",
                       caller=key.caller, status_code=status)
    return _xml(result, status)


def _form(raw):
    """The form's fields (the last of a repeated name wins), or None when it is not UTF-8."""
    try:
        return dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        return None


def _run(key, action, form, request_id):
    """Run ``action`` for the key's account; returns the XML body."""
    if form.get("Version") not in (None, protocol.API_VERSION):
        raise ElbError("InvalidParameterValue", f"Version '{form.get('Version')[:32]}' is not {protocol.API_VERSION}")
    handler = OPERATIONS.get(action)
    if action in REFUSED:
        code, message = REFUSED[action]
        raise protocol.error(code, message)
    if handler is None:
        raise ElbError("InvalidAction", f"The action {action[:64] or '(none)'} is not valid for this web service.")
    model = protocol.service_model().operation_model(action)
    params = protocol.parse_params(model, form)
    result = handler(key.account, params, caller=key.caller)
    return protocol.render_response(model, result, request_id)


def call(account, action, params, caller=""):
    """Run one ELBv2 action for ``account`` with ``params`` as boto3 takes them (the console's
    forms): checked against botocore's model and serialized to the query form as boto3 would,
    then parsed and run as ``api`` does, so a form meets exactly the API's checks and errors.
    Returns the result dict, or raises ElbError."""
    from botocore.serialize import create_serializer
    from botocore.validate import ParamValidator

    handler = OPERATIONS.get(action)
    if handler is None:
        raise ElbError("InvalidAction", f"The action {action[:64]} is not valid for this web service.")
    model = protocol.service_model().operation_model(action)
    report = ParamValidator().validate(params, model.input_shape)
    if report.has_errors():
        raise ElbError("ValidationError", report.generate_report())
    form = create_serializer("query").serialize_to_request(params, model)["body"]
    return handler(account, protocol.parse_params(model, {k: str(v) for k, v in form.items()}), caller=caller)
