"""Parameter Store's operations, one function each, named as in the API reference.

Every parameter belongs to one account in one region. Names follow AWS's rules: letters,
digits and ``_.-/``; a name with a ``/`` is a path that starts with one, at most 15 levels
deep; nothing may start with ``aws`` or ``ssm``. A parameter keeps its last 100 versions.
A SecureString's value is only given back WithDecryption; without it the caller gets an
opaque stand-in for KMS's ciphertext (the lab has no KMS: see the README).
"""
import base64
import hashlib
import hmac
import re

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from orchestrator.frontend.json_service import ServiceError, page
from orchestrator.models import Parameter, ParameterVersion, region

# What the activity log keeps of a call: never Value.
SAFE_PARAMS = ("Name", "Type", "Overwrite", "WithDecryption", "Path", "Recursive", "Tier", "DataType",
               "MaxResults")
MAX_VERSIONS = 100
MAX_LEVELS = 15
VALUE_LIMITS = {"Standard": 4096, "Advanced": 8192}
DEFAULT_KEY = "alias/aws/ssm"
DATA_TYPES = ("text", "aws:ec2:image")
_NAME = re.compile(r"[a-zA-Z0-9_.\-/]+")
HISTORY_MEMBERS = ("Name", "Type", "KeyId", "LastModifiedDate", "LastModifiedUser", "Description", "Value",
                   "AllowedPattern", "Version", "Labels", "Tier", "Policies", "DataType")
_AMI = re.compile(r"ami-[0-9a-f]{8,17}")


def invalid(message):
    return ServiceError("ValidationException", message)


def _rows(account):
    return Parameter.objects.filter(account=account, region=region()).select_related("account")


def check_name(name):
    """Raise ValidationException (or HierarchyLevelLimitExceededException) for a name AWS refuses."""
    if not _NAME.fullmatch(name):
        raise invalid(f"Parameter name '{name[:256]}' is not valid: only a-z, A-Z, 0-9, and the symbols . - _ / "
                      "are allowed.")
    if "/" in name and (not name.startswith("/") or name.endswith("/") or "//" in name):
        raise invalid("Parameter name: a name with a '/' is a path: it must begin with '/', and its levels must "
                      "not be empty (a fully qualified name like /team/app/key).")
    if re.match(r"/?(aws|ssm)", name, re.IGNORECASE):
        raise invalid('Parameter name: can\'t be prefixed with "aws" or "ssm" (case-insensitive).')
    if name.count("/") > MAX_LEVELS:
        raise ServiceError("HierarchyLevelLimitExceededException",
                           f"A parameter name can have at most {MAX_LEVELS} levels of hierarchy.")


def _split(reference, account):
    """(name, version or None) of a Name as the API takes it: a name or ARN, with ':<version>'."""
    if reference.startswith("arn:"):
        prefix = f"arn:aws:ssm:{region()}:{account.account_id}:parameter"
        if not reference.startswith(prefix + "/"):
            return None, None
        reference = reference[len(prefix):]
    name, colon, selector = reference.partition(":")
    if not colon:
        return name, None
    if not selector.isascii() or not selector.isdigit() or len(selector) > 9:
        return None, None  # a label: the lab has no LabelParameterVersion, so none can match
    return name, int(selector)


def _find(account, name):
    """The parameter of that name, else None (an ARN names '/a' or, for a root name, 'a')."""
    rows = _rows(account)
    found = rows.filter(name=name).first()
    if found is None and name.startswith("/") and name.count("/") == 1:
        found = rows.filter(name=name[1:]).first()
    return found


def resolve(account, reference):
    """(Parameter, ParameterVersion) a Name (name, ARN, name:version) refers to; ParameterNotFound
    or ParameterVersionNotFound otherwise."""
    name, version = _split(reference, account)
    parameter = _find(account, name) if name else None
    if parameter is None:
        raise ServiceError("ParameterNotFound", f"Parameter {reference[:2048]} not found.")
    if version is None:
        return parameter, parameter.current()
    found = parameter.versions.filter(version=version).first()
    if found is None:
        raise ServiceError("ParameterVersionNotFound", f"Systems Manager could not find version {version} of "
                                                       f"{parameter.name}. Verify the version and try again.")
    return parameter, found


def _shown_value(parameter, version, decrypt):
    """The value as the API gives it: a SecureString's is a stand-in unless ``decrypt``."""
    if version.type != Parameter.SECURE_STRING or decrypt:
        return version.value
    digest = hmac.new(settings.SECRET_KEY.encode(), f"{parameter.arn}:{version.version}".encode(),
                      hashlib.sha256).digest()
    return base64.b64encode(b"\x01\x02\x02\x00fargate-lab" + digest).decode()


def _parameter(parameter, version, decrypt, selector=None):
    shape = {"Name": parameter.name, "Type": version.type, "Value": _shown_value(parameter, version, decrypt),
             "Version": version.version, "LastModifiedDate": version.modified_at, "ARN": parameter.arn,
             "DataType": parameter.data_type}
    if selector:
        shape["Selector"] = selector
    return shape


def _metadata(parameter):
    shape = {"Name": parameter.name, "ARN": parameter.arn, "Type": parameter.type,
             "LastModifiedDate": parameter.last_modified_at, "LastModifiedUser": parameter.last_modified_user,
             "Version": parameter.version, "Tier": parameter.tier, "Policies": [], "DataType": parameter.data_type}
    for key, value in (("KeyId", parameter.key_id), ("Description", parameter.description),
                       ("AllowedPattern", parameter.allowed_pattern)):
        if value:
            shape[key] = value
    return shape


def _check_value(params, parameter):
    """Raise the error AWS gives for a value that this put may not store."""
    value, tier = params["Value"], params.get("Tier") or (parameter.tier if parameter else "Standard")
    if not value:
        raise invalid("1 validation error detected: Value '' at 'value' failed to satisfy constraint: "
                      "Member must have length greater than or equal to 1")
    limit = VALUE_LIMITS.get("Standard" if tier == "Intelligent-Tiering" else tier, 4096)
    if len(value) > limit:
        if tier == "Standard":
            raise invalid(f"Standard tier parameters support a maximum parameter value of {limit} characters. "
                          "To create a larger parameter value, upgrade the parameter to use the advanced-parameter "
                          "tier.")
        raise invalid(f"Parameter values can be at most {limit} characters.")
    pattern = params.get("AllowedPattern", parameter.allowed_pattern if parameter else "")
    if pattern:
        try:
            matched = re.fullmatch(pattern, value)
        except (re.error, RecursionError, OverflowError):
            raise ServiceError("InvalidAllowedPatternException",
                               "The request does not meet the regular expression requirement.") from None
        if matched is None:
            raise ServiceError("ParameterPatternMismatchException",
                               f"Parameter value, cannot be validated against allowedPattern: {pattern[:1024]}")
    data_type = params.get("DataType") or (parameter.data_type if parameter else "text")
    if data_type not in DATA_TYPES:
        raise invalid(f"The following data type is not supported: {data_type[:128]} (Data type names are all "
                      f"lowercase; Fargate Lab supports {', '.join(DATA_TYPES)}).")
    if data_type == "aws:ec2:image" and not _AMI.fullmatch(value):
        raise invalid("The parameter value is not an AMI id (ami-…), as data type aws:ec2:image requires.")


def put_parameter(account, params, caller):
    name = params["Name"]
    check_name(name)
    if params.get("Tags") and params.get("Overwrite"):
        raise invalid("Invalid request: tags and overwrite can't be used together. To create a parameter with "
                      "tags, please remove overwrite flag. To update tags for an existing parameter, please use "
                      "AddTagsToResource or RemoveTagsFromResource.")
    if params.get("Policies"):
        raise invalid("Parameter policies (Expiration, ExpirationNotification, NoChangeNotification) are not "
                      "supported by Fargate Lab.")
    kind = params.get("Type")
    if kind is not None and kind not in (Parameter.STRING, Parameter.STRING_LIST, Parameter.SECURE_STRING):
        raise ServiceError("UnsupportedParameterType", f"The parameter type {kind[:32]} is not supported.")
    tier = params.get("Tier")
    if tier is not None and tier not in ("Standard", "Advanced", "Intelligent-Tiering"):
        raise invalid(f"Tier {tier[:32]!r} is not valid: Standard, Advanced or Intelligent-Tiering.")
    now, user = timezone.now(), f"arn:aws:iam::{account.account_id}:root"
    with transaction.atomic():
        parameter = _rows(account).select_for_update().filter(name=name).first()
        if parameter is not None and not params.get("Overwrite"):
            raise ServiceError("ParameterAlreadyExists", "The parameter already exists. To overwrite this value, "
                                                         "set the overwrite option in the request to true.")
        if parameter is None and kind is None:
            raise invalid("A parameter type is required when you create a parameter.")
        kind = kind or parameter.type
        key_id = params.get("KeyId")
        if key_id and kind != Parameter.SECURE_STRING:
            raise invalid("KeyId is required for SecureString type parameter only.")
        _check_value(params, parameter)
        fields = {
            "type": kind, "last_modified_at": now, "last_modified_user": user,
            "key_id": (key_id or (parameter.key_id if parameter else "") or DEFAULT_KEY)
            if kind == Parameter.SECURE_STRING else "",
        }
        for member, column in (("Description", "description"), ("AllowedPattern", "allowed_pattern"),
                               ("DataType", "data_type")):
            if member in params:
                fields[column] = params[member]
        if tier:
            fields["tier"] = "Advanced" if tier == "Advanced" or len(params["Value"]) > 4096 else "Standard"
        if parameter is None:
            try:
                parameter = Parameter.objects.create(account=account, region=region(), name=name,
                                                     tags=list(params.get("Tags") or []), version=1, **fields)
            except IntegrityError:  # created by a concurrent put between our read and this insert
                raise ServiceError("ParameterAlreadyExists", "The parameter already exists.") from None
        else:
            fields["version"] = parameter.version + 1
            Parameter.objects.filter(pk=parameter.pk).update(**fields)
            parameter.refresh_from_db()
        ParameterVersion.objects.create(parameter=parameter, version=parameter.version, type=kind,
                                        value=params["Value"], description=parameter.description,
                                        modified_at=now, modified_user=user)
        stale = list(parameter.versions.order_by("-version").values_list("pk", flat=True)[MAX_VERSIONS:])
        if stale:  # AWS drops the oldest version once a parameter has 100
            ParameterVersion.objects.filter(pk__in=stale).delete()
    return {"Version": parameter.version, "Tier": parameter.tier}


def get_parameter(account, params, caller):
    parameter, version = resolve(account, params["Name"])
    _, selected = _split(params["Name"], account)
    selector = f":{selected}" if selected is not None else None
    return {"Parameter": _parameter(parameter, version, params.get("WithDecryption", False), selector)}


def get_parameters(account, params, caller):
    found, missing = [], []
    for reference in dict.fromkeys(params["Names"]):
        try:
            parameter, version = resolve(account, reference)
        except ServiceError:
            missing.append(reference)
            continue
        found.append(_parameter(parameter, version, params.get("WithDecryption", False)))
    return {"Parameters": found, "InvalidParameters": missing}


def _under(name, path, recursive):
    """Whether parameter ``name`` is below ``path`` (its direct child unless ``recursive``)."""
    full = name if name.startswith("/") else "/" + name
    base = path.rstrip("/") + "/"
    if not full.startswith(base):
        return False
    return recursive or "/" not in full[len(base):]


# Filter keys each listing takes, and the options each key allows.
_FILTER_OPTIONS = {"Name": ("Equals", "BeginsWith", "Contains"), "Type": ("Equals",), "KeyId": ("Equals",),
                   "Tier": ("Equals",), "DataType": ("Equals",), "Path": ("Recursive", "OneLevel"),
                   "tag": ("Equals",)}


def _filter_test(spec, allowed):
    """A predicate over Parameter for one ParameterStringFilter; InvalidFilter* for what it refuses."""
    key = spec["Key"]
    family = "tag" if key.startswith("tag:") else key
    if family not in allowed:
        raise ServiceError("InvalidFilterKey", f"The following filter key is not valid: {key[:132]}. Valid filter "
                                               f"keys include: {', '.join(allowed)}.")
    option = spec.get("Option") or ("OneLevel" if key == "Path" else "Equals")
    if option not in _FILTER_OPTIONS[family]:
        raise ServiceError("InvalidFilterOption", f"The filter option {option[:16]} is not valid for key {key[:132]}. "
                                                  f"Valid options: {', '.join(_FILTER_OPTIONS[family])}.")
    values = spec.get("Values") or []
    if family != "tag" and not values:
        raise ServiceError("InvalidFilterValue", f"The filter {key[:132]} needs at least one value.")
    if family == "Path":
        for value in values:
            if not value.startswith("/"):
                raise ServiceError("InvalidFilterValue", f"The path {value[:256]} must begin with '/'.")
        return lambda p: any(_under(p.name, value, option == "Recursive") for value in values)
    if family == "tag":
        tag = key[4:]
        return lambda p: any(t.get("Key") == tag and (not values or t.get("Value") in values) for t in p.tags)
    column = {"Name": "name", "Type": "type", "KeyId": "key_id", "Tier": "tier", "DataType": "data_type"}[family]
    compare = {"Equals": lambda have, want: have == want, "BeginsWith": str.startswith,
               "Contains": lambda have, want: want in have}[option]
    return lambda p: any(compare(getattr(p, column), value) for value in values)


def get_parameters_by_path(account, params, caller):
    path = params["Path"]
    if not path.startswith("/") or "//" in path or (path != "/" and not _NAME.fullmatch(path)):
        raise invalid(f"The parameter path {path[:256]!r} is not valid: a path begins with '/' and holds only "
                      "a-z, A-Z, 0-9 and . - _ /.")
    tests = [_filter_test(spec, ("Type", "KeyId", "Tier", "DataType", "tag"))
             for spec in params.get("ParameterFilters") or []]
    recursive = params.get("Recursive", False)
    rows = [p for p in _rows(account) if _under(p.name, path, recursive) and all(t(p) for t in tests)]
    shown, token = page(rows, params, 10, 10, ServiceError("InvalidNextToken", "The specified token is not valid."))
    decrypt = params.get("WithDecryption", False)
    answer = {"Parameters": [_parameter(p, p.current(), decrypt) for p in shown]}
    if token:
        answer["NextToken"] = token
    return answer


def delete_parameter(account, params, caller):
    name, version = _split(params["Name"], account)
    parameter = _find(account, name) if name and version is None else None
    if parameter is None:
        raise ServiceError("ParameterNotFound", f"Parameter {params['Name'][:2048]} not found.")
    parameter.delete()
    return {}


def delete_parameters(account, params, caller):
    deleted, missing = [], []
    for reference in dict.fromkeys(params["Names"]):
        try:
            delete_parameter(account, {"Name": reference}, caller)
        except ServiceError:
            missing.append(reference)
            continue
        deleted.append(reference)
    return {"DeletedParameters": deleted, "InvalidParameters": missing}


def describe_parameters(account, params, caller):
    if params.get("Filters") and params.get("ParameterFilters"):
        raise invalid("You can use either Filters or ParameterFilters in a single request.")
    specs = [{"Key": f["Key"], "Values": f.get("Values") or []} for f in params.get("Filters") or []]
    specs += params.get("ParameterFilters") or []
    tests = [_filter_test(spec, ("Name", "Type", "KeyId", "Tier", "DataType", "Path", "tag")) for spec in specs]
    rows = [] if params.get("Shared") else [p for p in _rows(account) if all(t(p) for t in tests)]
    shown, token = page(rows, params, 50, 50, ServiceError("InvalidNextToken", "The specified token is not valid."))
    answer = {"Parameters": [_metadata(p) for p in shown]}
    if token:
        answer["NextToken"] = token
    return answer


def get_parameter_history(account, params, caller):
    parameter, _ = resolve(account, params["Name"])
    versions = list(parameter.versions.all())
    shown, token = page(versions, params, 50, 50, ServiceError("InvalidNextToken", "The specified token is not valid."))
    decrypt = params.get("WithDecryption", False)
    answer = {"Parameters": [
        {**_metadata(parameter), "Type": v.type, "Value": _shown_value(parameter, v, decrypt), "Version": v.version,
         "LastModifiedDate": v.modified_at, "LastModifiedUser": v.modified_user, "Labels": [],
         **({"Description": v.description} if v.description else {})}
        for v in shown]}
    answer["Parameters"] = [{k: v for k, v in p.items() if k in HISTORY_MEMBERS} for p in answer["Parameters"]]
    if token:
        answer["NextToken"] = token
    return answer


OPERATIONS = {
    "PutParameter": put_parameter,
    "GetParameter": get_parameter,
    "GetParameters": get_parameters,
    "GetParametersByPath": get_parameters_by_path,
    "DeleteParameter": delete_parameter,
    "DeleteParameters": delete_parameters,
    "DescribeParameters": describe_parameters,
    "GetParameterHistory": get_parameter_history,
}
