"""The awslogs driver's decisions on plain data: when the agent follows a container's output,
how Docker's timestamped lines are read, and how filter patterns match."""
import pytest

from orchestrator.agent import (
    Advance, ContainerSeen, ContainerWanted, CreateContainers, EnsureImages, ReportRunning, ShipLogs, StartContainers,
    TaskWanted, plan_task,
)
from orchestrator.awslogs import parse_line, stream_name
from orchestrator.frontend.logs.filter_pattern import PatternError, parse


def wanted(last, followed=(), ships=True):
    return TaskWanted("RUNNING", last, [ContainerWanted("app", True, ships_logs=ships), ContainerWanted("side", False)],
                      has_instance=True, followed=frozenset(followed))


def test_it_follows_an_awslogs_container_once_started():
    assert plan_task(wanted("PENDING"), []) == [
        EnsureImages(), CreateContainers(["app", "side"]), StartContainers(["app", "side"]), ShipLogs(["app"]),
        Advance("PENDING", "ACTIVATING"), ReportRunning()]


def test_it_follows_again_a_running_container_nobody_follows():
    seen = [ContainerSeen("a1", "app", "running"), ContainerSeen("s1", "side", "running")]
    assert plan_task(wanted("RUNNING"), seen) == [ShipLogs(["app"])]
    assert plan_task(wanted("RUNNING", followed={"a1"}), seen) == []
    assert plan_task(wanted("RUNNING", ships=False), seen) == []


def test_it_reads_dockers_timestamped_lines():
    assert parse_line("2026-12-01T23:00:00.123456789Z hello world") == (1796166000123456789, "hello world")
    assert parse_line("2026-12-01T23:00:00.5Z short fraction\r") == (1796166000500000000, "short fraction")
    assert parse_line("2026-12-01T23:00:00Z ") == (1796166000000000000, "")
    assert parse_line("not a timestamp") is None


def test_streams_are_named_as_ecs_names_them():
    assert stream_name({"awslogs-stream-prefix": "ecs"}, "web", "0123abcd") == "ecs/web/0123abcd"


@pytest.mark.parametrize("pattern, message, matches", [
    ("", "anything", True),
    ("ERROR", "an ERROR here", True),
    ("ERROR", "an error here", False),
    ("ERROR disk", "disk ERROR", True),
    ("ERROR disk", "ERROR only", False),
    ('"Server Error"', "Internal Server Error", True),
    ('"Server Error"', "Server busy Error", False),
    ("?WARN ?ERROR", "a WARN", True),
    ("?WARN ?ERROR", "an INFO", False),
    ("ERROR -retry", "ERROR then retry", False),
    ("ERROR -retry", "ERROR at once", True),
    ('-"not me" x', "x not me", False),
])
def test_filter_patterns_match_as_cloudwatch_does(pattern, message, matches):
    assert parse(pattern).matches(message) is matches


@pytest.mark.parametrize("pattern", ['{ $.level = "ERROR" }', "[ip, user]", "%ERR.*%", '"open', 'a"b'])
def test_filter_patterns_the_lab_cannot_use_are_refused(pattern):
    with pytest.raises(PatternError):
        parse(pattern)
