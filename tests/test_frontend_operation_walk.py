"""Every operation of botocore's ECS model, called through boto3: the implemented ones answer
(never UnknownOperationException), the refused ones with their reason, the rest honestly unknown;
and the README lists them as the code does."""
import re
from pathlib import Path

import botocore.exceptions

from orchestrator.frontend import catalog
from orchestrator.frontend.validation import operation_names, service_model

ROOT = Path(__file__).resolve().parent.parent


def minimal(shape):
    """The smallest value botocore accepts for ``shape`` (required members only)."""
    kind = shape.type_name
    if kind == "structure":
        return {name: minimal(shape.members[name]) for name in shape.required_members}
    if kind == "list":
        return [minimal(shape.member) for _ in range(max(shape.metadata.get("min", 1), 1))]
    if kind == "map":
        return {}
    if kind == "string":
        return shape.enum[0] if shape.enum else "x" * max(shape.metadata.get("min", 1), 1)
    if kind in ("integer", "long"):
        return max(shape.metadata.get("min", 1), 1)
    if kind == "boolean":
        return False
    if kind in ("double", "float"):
        return 1.0
    if kind == "timestamp":
        return 0
    return b"x"


def call(ecs, operation):
    """Call ``operation`` with minimal input; return the error (code, message) or None."""
    input_shape = service_model().operation_model(operation).input_shape
    params = minimal(input_shape) if input_shape is not None else {}
    method = getattr(ecs, re.sub(r"(?<!^)(?=[A-Z])", "_", operation).lower())
    try:
        method(**params)
    except botocore.exceptions.ClientError as error:
        return error.response["Error"]["Code"], error.response["Error"]["Message"]
    return None


def test_every_operation_of_the_model_answers_as_the_lab_claims(ecs):
    refusals = catalog.refusals()
    answered = 0
    for operation in sorted(operation_names()):
        error = call(ecs, operation)
        if operation in refusals:
            assert error == refusals[operation], operation
        elif operation in catalog.supported():
            assert error is None or error[0] != "UnknownOperationException", operation
            answered += 1
        else:
            assert error is not None and error[0] == "UnknownOperationException", operation
    assert answered == len(catalog.supported()) >= 31


def test_the_readme_lists_the_operations_as_the_code_does():
    readme = (ROOT / "README.md").read_text()
    found = re.search(r"<!-- ecs-operations:start -->\n(.*?)<!-- ecs-operations:end -->", readme, re.S)
    assert found and found.group(1) == catalog.readme_section()


def test_the_readme_lists_the_account_settings_as_the_code_does():
    from orchestrator.frontend import account_settings

    readme = (ROOT / "README.md").read_text()
    found = re.search(r"<!-- account-settings:start -->\n(.*?)<!-- account-settings:end -->", readme, re.S)
    assert found and found.group(1) == account_settings.readme_section()
