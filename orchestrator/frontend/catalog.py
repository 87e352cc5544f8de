"""Which of botocore's ECS operations the lab answers, refuses, or does not implement yet.

The README's "ECS operations" section is ``readme_section()``.
"""
from orchestrator.frontend import capacity_providers, not_applicable
from orchestrator.frontend.operations import OPERATIONS
from orchestrator.frontend.validation import operation_names

AUTO_SCALING_REFUSED = ("CreateCapacityProvider", "UpdateCapacityProvider", "DeleteCapacityProvider")


def refusals():
    """Operation name -> (error type, why) for every operation the lab answers with a refusal."""
    refused = {name: not_applicable.refusal(name) for name in not_applicable.REFUSED}
    for name in AUTO_SCALING_REFUSED:
        refused[name] = ("ClientException", capacity_providers.NO_AUTO_SCALING)
    return refused


def supported():
    """The operations the lab implements (answered, not refused), sorted."""
    return sorted(set(OPERATIONS) - set(refusals()))


def missing():
    """The model's operations the lab does not answer yet (UnknownOperationException)."""
    return sorted(operation_names() - set(OPERATIONS))


def readme_section():
    """The README's list of supported, refused and missing ECS operations."""
    refused = refusals()
    lines = [
        f"Of the {len(operation_names())} operations in botocore's ECS model, the lab implements "
        f"{len(supported())} and refuses {len(refused)} that do not apply to Fargate with a clear error"
        + (f"; it answers {len(missing())} with UnknownOperationException (not built yet)." if missing() else
           ": none is answered with UnknownOperationException."),
        "",
        "Implemented: " + ", ".join(f"`{name}`" for name in supported()) + ".",
        "",
        "| Refused operation | Error | Why |",
        "| --- | --- | --- |",
    ]
    lines += [f"| `{name}` | {error} | {why} |" for name, (error, why) in sorted(refused.items())]
    if missing():
        lines += ["", "Not built yet: " + ", ".join(f"`{name}`" for name in missing()) + "."]
    return "\n".join(lines) + "\n"
