"""Request validation against botocore's ECS service model (the admission step of the frontend).

``clean(operation, params)`` walks the operation's input shape and returns a copy of the
parameters holding only the members the model knows: unknown fields are dropped (newer SDKs
send fields our model lacks), wrong JSON types are a ``SerializationException``, and strings,
lists and numbers outside their limits are an ``InvalidParameterException``. Every string is
checked to be storable (no NUL, no lone surrogates), so nothing odd reaches the database.
"""
import functools
import math
import re

import botocore.session

from orchestrator.frontend import EcsError

# Limits for strings and lists the model leaves unbounded: generous, but finite.
MAX_STRING = 8 * 1024
MAX_LIST = 1000
INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)

# Names of clusters, services, task definition families and containers (ECS's rule).
NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,255}")


@functools.lru_cache(maxsize=1)
def service_model():
    """botocore's ECS service model (loaded once; it is the reference for every shape)."""
    return botocore.session.get_session().get_service_model("ecs")


@functools.lru_cache(maxsize=1)
def operation_names():
    """The names of every operation the model defines."""
    return frozenset(service_model().operation_names)


def check_name(value, what):
    """Raise InvalidParameterException unless ``value`` is a valid ECS name."""
    if not isinstance(value, str) or not NAME_RE.fullmatch(value):
        raise EcsError(
            "InvalidParameterException",
            f"{what} must be 1-255 characters: letters, numbers, hyphens and underscores.",
        )


def clean(operation, params):
    """Validate ``params`` for ``operation`` and return them with unknown members removed."""
    shape = service_model().operation_model(operation).input_shape
    if shape is None:
        return {}
    if params is None:
        params = {}
    return _clean(shape, params, "")


def _type_error(path, expected, value):
    """A SerializationException for a value of the wrong JSON type."""
    where = f" at '{path}'" if path else ""
    return EcsError(
        "SerializationException",
        f"Expected {expected}{where}, got {_json_type(value)}.",
    )


def _json_type(value):
    """The JSON name of a parsed value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _invalid(path, message):
    """An InvalidParameterException naming the parameter."""
    return EcsError("InvalidParameterException", f"Invalid parameter '{path}': {message}")


def _clean(shape, value, path):
    """Dispatch on the shape's type; ``path`` names the value in error messages."""
    kind = shape.type_name
    if kind == "structure":
        return _structure(shape, value, path)
    if kind == "list":
        return _list(shape, value, path)
    if kind == "map":
        return _map(shape, value, path)
    if kind == "string":
        return _string(shape, value, path)
    if kind in ("integer", "long"):
        return _integer(shape, value, path)
    if kind == "boolean":
        if not isinstance(value, bool):
            raise _type_error(path, "a boolean", value)
        return value
    if kind in ("double", "float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise _type_error(path, "a number", value)
        return value
    if kind == "timestamp":
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise _type_error(path, "a timestamp", value)
        if isinstance(value, float) and not math.isfinite(value):
            raise _type_error(path, "a timestamp", value)
        return _string(shape, value, path) if isinstance(value, str) else value
    if kind == "blob":
        if not isinstance(value, str):
            raise _type_error(path, "a base64 string", value)
        return _string(shape, value, path)
    raise _type_error(path, kind, value)


def _structure(shape, value, path):
    """Check an object's known members and required ones; drop unknown members."""
    if not isinstance(value, dict):
        raise _type_error(path, "an object", value)
    out = {}
    for name, member in shape.members.items():
        # JSON null means "not given", as the AWS SDKs treat it.
        if value.get(name) is not None:
            out[name] = _clean(member, value[name], f"{path}.{name}" if path else name)
    for name in shape.required_members:
        if name not in out:
            where = f"{path}.{name}" if path else name
            raise EcsError("InvalidParameterException", f"Missing required parameter '{where}'.")
    return out


def _list(shape, value, path):
    """Check an array and each of its items."""
    if not isinstance(value, list):
        raise _type_error(path, "an array", value)
    low, high = shape.metadata.get("min", 0), shape.metadata.get("max", MAX_LIST)
    if not low <= len(value) <= high:
        raise _invalid(path, f"must have between {low} and {high} items.")
    return [_clean(shape.member, item, f"{path}[{i}]") for i, item in enumerate(value)]


def _map(shape, value, path):
    """Check an object used as a map: string keys, checked values."""
    if not isinstance(value, dict):
        raise _type_error(path, "an object", value)
    if len(value) > MAX_LIST:
        raise _invalid(path, f"must have at most {MAX_LIST} entries.")
    out = {}
    for key, item in value.items():
        key = _string(shape.key, key, f"{path} key")
        out[key] = _clean(shape.value, item, f"{path}.{key}")
    return out


def _string(shape, value, path):
    """Check a string's length, storability and enum."""
    if not isinstance(value, str):
        raise _type_error(path, "a string", value)
    low, high = shape.metadata.get("min", 0), shape.metadata.get("max", MAX_STRING)
    if not low <= len(value) <= high:
        raise _invalid(path, f"length must be between {low} and {high} characters.")
    if "\x00" in value:
        raise _invalid(path, "must not contain NUL characters.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _invalid(path, "is not valid Unicode text.") from None
    enum = shape.metadata.get("enum")
    if enum and value not in enum:
        raise _invalid(path, f"must be one of {', '.join(enum)}.")
    return value


def _integer(shape, value, path):
    # JSON has one number type: 3.0 is accepted as 3, 3.5 is not an integer.
    """Check an integer (3.0 counts as 3) and its bounds."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _type_error(path, "an integer", value)
    bounds = INT64 if shape.type_name == "long" else INT32
    low, high = shape.metadata.get("min", bounds[0]), shape.metadata.get("max", bounds[1])
    if not low <= value <= high:
        raise _invalid(path, f"must be between {low} and {high}.")
    return value
