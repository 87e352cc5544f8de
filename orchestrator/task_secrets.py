"""A container's ``secrets``: read from Parameter Store and Secrets Manager when the agent creates
its containers, as the ECS agent reads them with the task's execution role.

A ``valueFrom`` is a parameter's name or ARN, or a secret's ARN optionally followed by
``:json-key:version-stage:version-id`` (each part may be empty). Only the task's own account
and region are reachable: another's ARN is as missing as a name nobody created. A missing one
fails the task as ECS fails it, with ECS's ResourceInitializationError wording.
"""
import json
from dataclasses import dataclass

from orchestrator.frontend.json_service import ServiceError
from orchestrator.frontend.secretsmanager import operations as secretsmanager
from orchestrator.frontend.ssm import operations as ssm

_PREFIX = "ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval failed: "
_SECRET_ARN_PARTS = 7  # arn:aws:secretsmanager:<region>:<account>:secret:<name>-<suffix>


class SecretsUnavailable(Exception):
    """A secret could not be read; the message is the task's stoppedReason."""


@dataclass(frozen=True)
class SecretReference:
    """One ``valueFrom``, taken apart."""

    store: str  # "ssm" or "secretsmanager"
    source: str  # the parameter's name or ARN, or the secret's ARN
    json_key: str = ""
    version_stage: str = ""
    version_id: str = ""


def parse(value_from):
    """The SecretReference a ``valueFrom`` names."""
    if value_from.startswith("arn:aws:secretsmanager:"):
        parts = value_from.split(":")
        extra = parts[_SECRET_ARN_PARTS:] + ["", "", ""]
        return SecretReference("secretsmanager", ":".join(parts[:_SECRET_ARN_PARTS]), *extra[:3])
    return SecretReference("ssm", value_from)


def problem(value_from):
    """Why a ``valueFrom`` can never name a secret (for registration), or None."""
    if value_from.startswith("arn:") and not value_from.startswith(("arn:aws:ssm:", "arn:aws:secretsmanager:")):
        return (f"secrets valueFrom '{value_from[:256]}' must be a Systems Manager parameter (a name or an "
                "arn:aws:ssm ARN) or a Secrets Manager secret (an arn:aws:secretsmanager ARN).")
    reference = parse(value_from)
    if reference.store == "secretsmanager" and (len(value_from.split(":")) > _SECRET_ARN_PARTS + 3
                                                 or ":secret:" not in reference.source):
        return (f"secrets valueFrom '{value_from[:256]}' must be a secret's ARN, optionally followed by "
                ":json-key:version-stage:version-id.")
    return None


def environment(account, secrets):
    """The environment variables (name -> value) of a container's ``secrets``; SecretsUnavailable
    naming what is missing, as ECS words it."""
    values, missing = {}, []
    for entry in secrets or []:
        reference = parse(entry["valueFrom"])
        if reference.store == "ssm":
            try:
                _, version = ssm.resolve(account, reference.source)
            except ServiceError:
                missing.append(reference.source)
                continue
            values[entry["name"]] = version.value
        else:
            values[entry["name"]] = _secret_value(account, reference)
    if missing:
        raise SecretsUnavailable(_PREFIX + "unable to retrieve secrets from ssm: service call has been retried 1 "
                                           f"time(s): invalid parameters: {', '.join(missing)}")
    return values


def _secret_value(account, reference):
    """The value a Secrets Manager reference selects (a JSON key of it, when one is named)."""
    def unavailable(why):
        return SecretsUnavailable(_PREFIX + "unable to retrieve secret from asm: service call has been retried 1 "
                                            f"time(s): failed to fetch secret {reference.source} from secrets "
                                            f"manager: {why}")

    secret = secretsmanager.find(account, reference.source)
    if secret is None:
        raise unavailable(f"ResourceNotFoundException: {secretsmanager.NOT_FOUND}")
    if secret.deletion_date is not None:
        raise unavailable(f"InvalidRequestException: {secretsmanager.MARKED_FOR_DELETION}")
    try:
        version = secretsmanager.version_of(secret, reference.version_id or None, reference.version_stage or None)
    except ServiceError as exc:
        raise unavailable(f"{exc.error_type}: {exc.message}") from None
    if version.secret_string is None:
        raise unavailable("the secret holds a binary value; ECS injects only string secrets")
    if not reference.json_key:
        return version.secret_string
    try:
        document = json.loads(version.secret_string)
    except ValueError:
        document = None
    if not isinstance(document, dict) or reference.json_key not in document:
        raise SecretsUnavailable(_PREFIX + f"retrieved secret from Secrets Manager did not contain json key "
                                           f"{reference.json_key}")
    found = document[reference.json_key]
    return found if isinstance(found, str) else json.dumps(found)
