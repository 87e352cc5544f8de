"""The AWS query protocol of ELBv2: form-encoded parameters in, XML out.

Shapes come from botocore's own ``elbv2`` model, the one boto3 and the AWS CLI serialize
with, so what we parse and write is what they send and expect: ``Names.member.1`` lists,
``Targets.member.1.Port`` structures, ``<member>`` elements, ISO 8601 timestamps.
"""
import datetime
import functools
import uuid
from xml.etree import ElementTree

import botocore.session

from orchestrator.frontend import wire

API_VERSION = "2015-12-01"
XMLNS = "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"
# The longest string a member the model leaves unbounded may carry.
MAX_STRING = 8 * 1024


class ElbError(Exception):
    """An ELBv2 error: its code on the wire (e.g. LoadBalancerNotFound), message and status."""

    def __init__(self, code, message, status=400, sender=True):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.sender = sender


@functools.lru_cache(maxsize=1)
def service_model():
    """botocore's ELBv2 service model."""
    return botocore.session.get_session().get_service_model("elbv2")


def error(shape_name, message):
    """An ElbError named by its botocore shape (e.g. "LoadBalancerNotFoundException")."""
    meta = service_model().shape_for(shape_name).metadata.get("error", {})
    return ElbError(meta.get("code", shape_name), message, meta.get("httpStatusCode", 400), meta.get("senderFault", True))


def parse_params(operation_model, form):
    """The operation's input as nested Python values, parsed from flat form ``key -> value``."""
    return _parse(operation_model.input_shape, form, "") or {}


def _parse(shape, form, prefix):
    """One shape's value read from the keys under ``prefix`` (None when absent)."""
    if shape.type_name == "structure":
        result = {}
        for name, member in shape.members.items():
            key = f"{prefix}.{name}" if prefix else name
            value = _parse(member, form, key)
            if value is not None:
                result[name] = value
        return result if (result or not prefix) else None
    if shape.type_name == "list":
        items, index = [], 1
        # An empty list is sent as the bare key with an empty value.
        if prefix in form and form[prefix] == "":
            return []
        while True:
            value = _parse(shape.member, form, f"{prefix}.member.{index}")
            if value is None:
                break
            items.append(value)
            index += 1
        return items or None
    if prefix not in form:
        return None
    raw = form[prefix]
    if wire.has_control_characters(raw):
        # ELBv2's patterns admit no control character, and XML could not echo one back.
        raise ElbError("ValidationError", f"Value at '{prefix}' must not contain control characters")
    if shape.type_name in ("integer", "long"):
        number = wire.ascii_int(raw, signed=True)
        if number is None:
            raise ElbError("ValidationError", f"Value '{raw[:64]}' at '{prefix}' is not an integer")
        return number
    if shape.type_name == "boolean":
        return raw.lower() == "true"
    return _string(shape, raw, prefix)


def _string(shape, raw, prefix):
    """A string member checked against the model's enum and length, in ELBv2's words."""
    enum = shape.metadata.get("enum")
    if enum and raw not in enum:
        raise ElbError("ValidationError", f"1 validation error detected: Value '{raw[:64]}' at '{prefix}' failed to "
                                          f"satisfy constraint: Member must satisfy enum value set: [{', '.join(enum)}]")
    low, high = shape.metadata.get("min", 0), shape.metadata.get("max", MAX_STRING)
    if not low <= len(raw) <= high:
        raise ElbError("ValidationError", f"1 validation error detected: Value at '{prefix}' failed to satisfy "
                                          f"constraint: Member must have length between {low} and {high}")
    return raw


def render_response(operation_model, result, request_id):
    """The XML body of a successful response to one operation."""
    name = operation_model.name
    root = ElementTree.Element(f"{name}Response", xmlns=XMLNS)
    body = ElementTree.SubElement(root, f"{name}Result")
    if operation_model.output_shape is not None:
        _write_members(body, operation_model.output_shape, result)
    meta = ElementTree.SubElement(root, "ResponseMetadata")
    ElementTree.SubElement(meta, "RequestId").text = request_id
    return ElementTree.tostring(root, encoding="utf-8", xml_declaration=False)


def _write_members(parent, shape, value):
    """Write a structure's members that ``value`` holds as children of ``parent``."""
    for name, member in shape.members.items():
        if value.get(name) is None:
            continue
        child = ElementTree.SubElement(parent, member.serialization.get("name", name))
        _write(child, member, value[name])


def _write(element, shape, value):
    """Fill ``element`` with ``value`` of ``shape``."""
    if shape.type_name == "structure":
        _write_members(element, shape, value)
    elif shape.type_name == "list":
        for item in value:
            _write(ElementTree.SubElement(element, "member"), shape.member, item)
    elif shape.type_name == "map":
        for key, item in value.items():
            entry = ElementTree.SubElement(element, "entry")
            ElementTree.SubElement(entry, "key").text = wire.xml_text(key)
            _write(ElementTree.SubElement(entry, "value"), shape.value, item)
    elif shape.type_name == "timestamp":
        element.text = value.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    elif shape.type_name == "boolean":
        element.text = "true" if value else "false"
    else:
        element.text = wire.xml_text(value)


def render_error(exc, request_id):
    """The XML body of an error response, as ELBv2 writes it."""
    root = ElementTree.Element("ErrorResponse", xmlns=XMLNS)
    err = ElementTree.SubElement(root, "Error")
    ElementTree.SubElement(err, "Type").text = "Sender" if exc.sender else "Receiver"
    ElementTree.SubElement(err, "Code").text = wire.xml_text(exc.code)
    ElementTree.SubElement(err, "Message").text = wire.xml_text(exc.message)
    ElementTree.SubElement(root, "RequestId").text = request_id
    return ElementTree.tostring(root, encoding="utf-8")


def new_request_id():
    """A request id shaped like AWS's (a dashed UUID)."""
    return str(uuid.uuid4())
