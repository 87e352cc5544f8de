"""The checks every AWS JSON service of the lab shares (orchestrator/frontend/json_service.py),
on botocore's own shapes: what botocore's validator leaves to the service."""
import botocore.session

from orchestrator.frontend.json_service import constraint_problem


def input_shape(service, operation):
    return botocore.session.get_session().get_service_model(service).operation_model(operation).input_shape


def test_it_refuses_a_map_with_more_entries_than_the_model_allows():
    shape = input_shape("logs", "CreateLogGroup")
    tags = {f"k{i}": "v" for i in range(51)}
    assert constraint_problem({"logGroupName": "g", "tags": tags}, shape) == (
        "Value at 'tags' failed to satisfy constraint: Member must have length less than or equal to 50")
    assert constraint_problem({"logGroupName": "g", "tags": dict(list(tags.items())[:50])}, shape) is None


def test_it_checks_a_maps_keys_and_values():
    shape = input_shape("logs", "CreateLogGroup")
    assert "less than or equal to 128" in constraint_problem({"logGroupName": "g", "tags": {"k" * 129: "v"}}, shape)
    assert "less than or equal to 256" in constraint_problem({"logGroupName": "g", "tags": {"k": "v" * 257}}, shape)


def test_it_checks_the_models_patterns_it_can_read_and_only_those():
    shape = input_shape("logs", "CreateLogGroup")
    assert constraint_problem({"logGroupName": "bad name"}, shape) == (
        "Value 'bad name' at 'logGroupName' failed to satisfy constraint: Member must satisfy regular expression "
        "pattern: [\\.\\-_/#A-Za-z0-9]+")
    assert constraint_problem({"logGroupName": "bad name"}, shape, patterns=False) is None
    # Tag keys' pattern uses Java's \p{L} classes, which Python's re cannot read: left unchecked.
    assert constraint_problem({"logGroupName": "g", "tags": {"ключ é": "v"}}, shape) is None


def test_it_names_the_enum_of_a_value_outside_it():
    shape = input_shape("logs", "CreateLogGroup")
    problem = constraint_problem({"logGroupName": "g", "logGroupClass": "GOLD"}, shape)
    assert problem.startswith("Value 'GOLD' at 'logGroupClass' failed to satisfy constraint: Member must satisfy "
                              "enum value set: [STANDARD")
