"""Secrets Manager's operations, one function each, named as in the API reference.

A secret belongs to one account in one region; its ARN ends with ``-`` and six random
characters. Its values are versions, each with staging labels: a new value becomes AWSCURRENT
and the one before it AWSPREVIOUS. DeleteSecret schedules the deletion (7 to 30 days, 30 by
default) unless forced; a secret past its deletion date is gone (removed when next looked at).
"""
import base64
import binascii
import datetime
import secrets as random_source
import string
import uuid

from django.db import IntegrityError, transaction
from django.utils import timezone

from orchestrator.frontend.json_service import ServiceError, page
from orchestrator.models import Secret, SecretVersion, region

# What the activity log keeps of a call: never SecretString or SecretBinary.
SAFE_PARAMS = ("Name", "SecretId", "VersionId", "VersionStage", "RecoveryWindowInDays",
               "ForceDeleteWithoutRecovery", "IncludePlannedDeletion", "MaxResults")
CURRENT, PREVIOUS = "AWSCURRENT", "AWSPREVIOUS"
MAX_VALUE = 65536
MAX_VERSIONS = 100
_NAME_CHARS = frozenset(string.ascii_letters + string.digits + "/_+=.@-")
_SUFFIX_CHARS = string.ascii_letters + string.digits
NOT_FOUND = "Secrets Manager can't find the specified secret."
MARKED_FOR_DELETION = "You can't perform this operation on the secret because it was marked for deletion."


def invalid(message):
    return ServiceError("InvalidParameterException", message)


def not_found(message=NOT_FOUND):
    return ServiceError("ResourceNotFoundException", message)


def _rows(account):
    """The account's secrets in this region, once those past their deletion date are gone."""
    rows = Secret.objects.filter(account=account, region=region())
    rows.filter(deletion_date__lte=timezone.now()).delete()
    return rows.select_related("account")


def find(account, secret_id):
    """The secret a SecretId names (its name, its ARN, or its ARN without the random suffix)."""
    rows = _rows(account)
    prefix = f"arn:aws:secretsmanager:{region()}:{account.account_id}:secret:"
    if secret_id.startswith("arn:"):
        if not secret_id.startswith(prefix):
            return None
        rest = secret_id[len(prefix):]
        name, _, suffix = rest.rpartition("-")
        found = rows.filter(name=name, suffix=suffix).first() if name else None
        return found or rows.filter(name=rest).first()
    return rows.filter(name=secret_id).first()


def _existing(account, secret_id, deleted_ok=False):
    secret = find(account, secret_id)
    if secret is None:
        raise not_found()
    if secret.deletion_date is not None and not deleted_ok:
        raise ServiceError("InvalidRequestException", MARKED_FOR_DELETION)
    return secret


def version_of(secret, version_id=None, stage=None):
    """The SecretVersion a VersionId and/or VersionStage select (AWSCURRENT by default)."""
    if version_id is None and stage is None:
        stage = CURRENT
    versions = list(secret.versions.all())
    for version in versions:
        if (version_id is None or version.version_id == version_id) and (stage is None or stage in version.stages):
            return version
    said = " and ".join(part for part in (f"VersionId: {version_id}" if version_id else "",
                                          f"staging label: {stage}" if stage else "") if part)
    raise not_found(f"Secrets Manager can't find the specified secret value for {said[:600]}")


def _value(params):
    """(secret_string, secret_binary) of a request, checked; (None, None) when it has none."""
    text, blob = params.get("SecretString"), params.get("SecretBinary")
    if text is not None and blob is not None:
        raise invalid("You can't specify both a binary secret value and a string secret value in the same secret.")
    if text is not None and len(text) > MAX_VALUE:
        raise invalid(f"The secret value can be at most {MAX_VALUE} characters.")
    if blob is not None:
        try:
            blob = base64.b64decode(blob, validate=True) if isinstance(blob, str) else bytes(blob)
        except (binascii.Error, ValueError):
            raise invalid("SecretBinary must be base64-encoded.") from None
        if not 1 <= len(blob) <= MAX_VALUE:
            raise invalid(f"SecretBinary must be 1 to {MAX_VALUE} bytes.")
    return text, blob


def _token(params):
    token = params.get("ClientRequestToken") or str(uuid.uuid4())
    if not 32 <= len(token) <= 64 or not token.isascii() or not token.isprintable():
        raise invalid("ClientRequestToken must be 32 to 64 printable ASCII characters.")
    return token


def _check_name(name):
    if not set(name) <= _NAME_CHARS:
        raise invalid("Invalid name. Must be a valid name containing alphanumeric characters, or any of the "
                      "following: -/_+=.@!")
    if name.startswith("arn:"):
        raise invalid("A secret name cannot be an ARN.")


def _put_version(secret, version_id, text, blob, stages):
    """Add a version with ``stages``: each label moves to it, and AWSCURRENT's old holder becomes
    AWSPREVIOUS. The same token with the same value is the same call, answered again."""
    existing = secret.versions.filter(version_id=version_id).first()
    if existing is not None:
        if existing.secret_string == text and (bytes(existing.secret_binary) if existing.secret_binary else None) == blob:
            return existing
        raise ServiceError("ResourceExistsException",
                           "You can't modify an existing version, you can only create a new version.")
    for version in secret.versions.all():
        kept = [s for s in version.stages if s not in stages and s != (PREVIOUS if CURRENT in stages else None)]
        if CURRENT in stages and CURRENT in version.stages:
            kept.append(PREVIOUS)
        if kept != version.stages:
            SecretVersion.objects.filter(pk=version.pk).update(stages=kept)
    created = SecretVersion.objects.create(secret=secret, version_id=version_id, secret_string=text,
                                           secret_binary=blob, stages=list(stages))
    unlabelled = [v.pk for v in secret.versions.order_by("-created_at", "-id") if not v.stages]
    SecretVersion.objects.filter(pk__in=unlabelled[MAX_VERSIONS:]).delete()
    Secret.objects.filter(pk=secret.pk).update(last_changed_at=timezone.now())
    return created


def create_secret(account, params, caller):
    name = params["Name"]
    _check_name(name)
    if params.get("AddReplicaRegions"):
        raise invalid("Replicating a secret to other regions is not supported by Fargate Lab (it serves one region).")
    if params.get("Type"):
        raise invalid("Secrets of a managed Type are not supported by Fargate Lab.")
    text, blob = _value(params)
    token = _token(params)
    with transaction.atomic():
        existing = _rows(account).filter(name=name).first()
        if existing is not None and existing.deletion_date is not None:
            raise ServiceError("InvalidRequestException", "You can't create this secret because a secret with this "
                                                          "name is already scheduled for deletion.")
        if existing is not None:
            raise ServiceError("ResourceExistsException", f"The operation failed because the secret {name} already "
                                                          "exists.")
        try:
            secret = Secret.objects.create(
                account=account, region=region(), name=name,
                suffix="".join(random_source.choice(_SUFFIX_CHARS) for _ in range(6)),
                description=params.get("Description", ""), kms_key_id=params.get("KmsKeyId", ""),
                tags=list(params.get("Tags") or []))
        except IntegrityError:  # created by a concurrent call between our read and this insert
            raise ServiceError("ResourceExistsException", f"The operation failed because the secret {name} "
                                                          "already exists.") from None
        answer = {"ARN": secret.arn, "Name": secret.name}
        if text is not None or blob is not None:
            answer["VersionId"] = _put_version(secret, token, text, blob, [CURRENT]).version_id
    return answer


def get_secret_value(account, params, caller):
    secret = _existing(account, params["SecretId"])
    version = version_of(secret, params.get("VersionId"), params.get("VersionStage"))
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    Secret.objects.filter(pk=secret.pk).update(last_accessed_at=today)
    answer = {"ARN": secret.arn, "Name": secret.name, "VersionId": version.version_id,
              "VersionStages": version.stages, "CreatedDate": version.created_at}
    if version.secret_binary is not None:
        answer["SecretBinary"] = base64.b64encode(bytes(version.secret_binary)).decode()
    else:
        answer["SecretString"] = version.secret_string
    return answer


def put_secret_value(account, params, caller):
    if params.get("RotationToken"):
        raise invalid("Rotation is not supported by Fargate Lab: there is no rotation function to pass a token to.")
    text, blob = _value(params)
    if text is None and blob is None:
        raise invalid("You must provide either SecretString or SecretBinary.")
    stages = list(dict.fromkeys(params.get("VersionStages") or [CURRENT]))
    if any(not 1 <= len(stage) <= 256 for stage in stages):
        raise invalid("Each staging label must be 1 to 256 characters.")
    token = _token(params)
    with transaction.atomic():
        secret = _existing(account, params["SecretId"])
        version = _put_version(secret, token, text, blob, stages)
    return {"ARN": secret.arn, "Name": secret.name, "VersionId": version.version_id, "VersionStages": version.stages}


def _description(secret, versions_key):
    shape = {"ARN": secret.arn, "Name": secret.name, "LastChangedDate": secret.last_changed_at,
             "CreatedDate": secret.created_at, "RotationEnabled": False, "Tags": secret.tags,
             versions_key: {v.version_id: v.stages for v in secret.versions.all() if v.stages}}
    for key, value in (("Description", secret.description), ("KmsKeyId", secret.kms_key_id),
                       ("LastAccessedDate", secret.last_accessed_at), ("DeletedDate", secret.deletion_date)):
        if value:
            shape[key] = value
    return shape


def describe_secret(account, params, caller):
    return _description(_existing(account, params["SecretId"], deleted_ok=True), "VersionIdsToStages")


# ListSecrets' filter keys and what of a secret each one matches (by prefix, case-insensitive).
_FILTER_FIELDS = {
    "name": lambda s: [s.name], "description": lambda s: [s.description],
    "tag-key": lambda s: [t.get("Key", "") for t in s.tags], "tag-value": lambda s: [t.get("Value", "") for t in s.tags],
    "primary-region": lambda s: [s.region], "owning-service": lambda s: [],
}
_FILTER_FIELDS["all"] = lambda s: [text for key, get in _FILTER_FIELDS.items() if key != "all" for text in get(s)]


def _matches(secret, spec):
    """Whether ``secret`` passes one Filter: any value is a prefix of one of its fields; a value
    starting with ``!`` passes when that prefix matches none."""
    texts = [t.lower() for t in _FILTER_FIELDS[spec["Key"]](secret)]
    wanted = [v for v in spec.get("Values") or [] if not v.startswith("!")]
    refused = [v[1:] for v in spec.get("Values") or [] if v.startswith("!")]
    if any(t.startswith(v.lower()) for v in refused for t in texts):
        return False
    return not wanted or any(t.startswith(v.lower()) for v in wanted for t in texts)


_SORT_KEYS = {"created-date": lambda s: s.created_at, "name": lambda s: s.name,
              "last-changed-date": lambda s: s.last_changed_at,
              "last-accessed-date": lambda s: s.last_accessed_at or datetime.datetime.min.replace(tzinfo=datetime.UTC)}


def list_secrets(account, params, caller):
    for spec in params.get("Filters") or []:
        if spec.get("Key") not in _FILTER_FIELDS:
            raise invalid(f"Invalid filter key {str(spec.get('Key'))[:32]}: one of {', '.join(_FILTER_FIELDS)}.")
    rows = [s for s in _rows(account).prefetch_related("versions")
            if (params.get("IncludePlannedDeletion") or s.deletion_date is None)
            and all(_matches(s, spec) for spec in params.get("Filters") or [])]
    rows.sort(key=_SORT_KEYS[params.get("SortBy") or "created-date"], reverse=params.get("SortOrder") == "desc")
    shown, token = page(rows, params, 100, 100,
                        ServiceError("InvalidNextTokenException", "The NextToken value is not valid."))
    answer = {"SecretList": [_description(s, "SecretVersionsToStages") for s in shown]}
    if token:
        answer["NextToken"] = token
    return answer


def delete_secret(account, params, caller):
    force, window = params.get("ForceDeleteWithoutRecovery", False), params.get("RecoveryWindowInDays")
    if force and window is not None:
        raise invalid("You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays.")
    if window is not None and not 7 <= window <= 30:
        raise invalid("The RecoveryWindowInDays value must be between 7 and 30 days (inclusive).")
    with transaction.atomic():
        secret = _existing(account, params["SecretId"], deleted_ok=force)
        answer = {"ARN": secret.arn, "Name": secret.name}
        if force:
            secret.delete()
            answer["DeletionDate"] = timezone.now()
        else:
            if secret.deletion_date is not None:
                raise ServiceError("InvalidRequestException", MARKED_FOR_DELETION)
            secret.deletion_date = timezone.now() + datetime.timedelta(days=window or 30)
            secret.save(update_fields=["deletion_date"])
            answer["DeletionDate"] = secret.deletion_date
    return answer


def restore_secret(account, params, caller):
    secret = _existing(account, params["SecretId"], deleted_ok=True)
    Secret.objects.filter(pk=secret.pk).update(deletion_date=None)
    return {"ARN": secret.arn, "Name": secret.name}


OPERATIONS = {
    "CreateSecret": create_secret,
    "GetSecretValue": get_secret_value,
    "PutSecretValue": put_secret_value,
    "DescribeSecret": describe_secret,
    "ListSecrets": list_secrets,
    "DeleteSecret": delete_secret,
    "RestoreSecret": restore_secret,
}
