"""The rollout arithmetic of ECS: limits, circuit breaker threshold, throttling, one pass."""
from orchestrator.deployments import (
    RolloutTask,
    circuit_breaker_threshold,
    plan_rollout,
    rolling_limits,
    throttle_delay,
)


def old(key, healthy=True, order=0):
    return RolloutTask(key=key, primary=False, running=True, healthy=healthy, created_order=order)


def new(key, running=True, healthy=True, order=10):
    return RolloutTask(key=key, primary=True, running=running, healthy=healthy, created_order=order)


def test_it_rounds_minimum_up_and_maximum_down():
    assert rolling_limits(3, 50, 150) == (2, 4)
    assert rolling_limits(4) == (4, 8)
    assert rolling_limits(5, 0, 100) == (0, 5)


def test_the_circuit_breaker_threshold_is_half_clamped_to_3_and_200():
    assert circuit_breaker_threshold(1) == 3
    assert circuit_breaker_threshold(10) == 5
    assert circuit_breaker_threshold(11) == 6
    assert circuit_breaker_threshold(1000) == 200


def test_throttling_grows_and_caps_at_15_minutes():
    assert throttle_delay(1) == 0
    delays = [throttle_delay(n, base_seconds=10) for n in range(2, 12)]
    assert delays == sorted(delays) and delays[0] == 10
    assert throttle_delay(50, base_seconds=10) == 900


def test_a_plain_scale_out_starts_the_missing_tasks():
    step = plan_rollout(5, [new(1), new(2)])
    assert step.start == 3 and step.stop == []


def test_a_scale_in_stops_pending_tasks_first_then_the_newest():
    tasks = [new(1, order=1), new(2, order=2), new(3, running=False, healthy=False, order=0)]
    step = plan_rollout(1, tasks)
    assert step.stop == [3, 2] and step.start == 0


def test_min_50_max_100_stops_half_before_starting_and_keeps_half_healthy():
    tasks = [old(i) for i in range(4)]
    step = plan_rollout(4, tasks, 50, 100)
    assert len(step.stop) == 2 and step.start == 0
    # While they stop they still take room: nothing starts past the maximum.
    step = plan_rollout(4, [old(0), old(1)], 50, 100, stopping=2)
    assert step.idle
    step = plan_rollout(4, [old(0), old(1)], 50, 100)
    assert step.start == 2 and step.stop == []
    # New tasks not yet healthy: no old one may go.
    step = plan_rollout(4, [old(0), old(1), new(5, healthy=False), new(6, healthy=False)], 50, 100)
    assert step.idle
    step = plan_rollout(4, [old(0), old(1), new(5), new(6)], 50, 100)
    assert sorted(step.stop) == [0, 1] and step.start == 0
    assert plan_rollout(4, [new(5), new(6)], 50, 100).start == 2


def test_min_100_max_200_surges_first_then_stops_old():
    step = plan_rollout(2, [old(0), old(1)], 100, 200)
    assert step.start == 2 and step.stop == []
    step = plan_rollout(2, [old(0), old(1), new(2), new(3)], 100, 200)
    assert sorted(step.stop) == [0, 1] and step.start == 0


def test_unhealthy_old_tasks_are_stopped_at_once():
    step = plan_rollout(2, [old(0, healthy=False), old(1)], 100, 100)
    assert step.stop == [0]


def test_min_100_max_100_cannot_move():
    assert plan_rollout(2, [old(0), old(1)], 100, 100).idle


def test_old_tasks_still_in_their_grace_period_are_kept_until_judged():
    settling = RolloutTask(key=0, primary=False, running=True, healthy=False, settling=True)
    step = plan_rollout(1, [settling], 100, 200)
    assert step.stop == [] and step.start == 1
