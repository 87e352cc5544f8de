"""The map's animation in a real Chromium against the ASGI app under uvicorn: events light the
components they pass in order, Pause holds them (and the figures) until Resume, and Slow motion
replays the last events at a quarter of their speed."""
import pytest
from playwright.sync_api import expect

from orchestrator import activity
from tests.support.browser import wait_live

pytestmark = pytest.mark.browser

LIT = "() => [...document.querySelectorAll('#map-lit-log li')].map(li => [li.dataset.component, li.dataset.replay || ''])"


def lit(page, replay=""):
    return [component for component, kind in page.evaluate(LIT) if kind == replay]


def test_events_light_their_components_pause_holds_them_and_slow_motion_replays_them(page, live_lab_server):
    wait_live(page)
    activity.record("frontend", "RunTask", "", "RunTask → 200", caller="test", status_code=200, latency_ms=3.0)
    page.wait_for_function("() => document.querySelectorAll('#map-lit-log li').length >= 2")
    assert lit(page) == ["frontend", "statedb"]
    expect(page.locator("#box-frontend [data-figure=calls]")).to_have_text("1")

    page.click("#map-pause")
    expect(page.locator("#map-pause")).to_have_attribute("aria-pressed", "true")
    activity.record("capacity_manager", "place", "", "placed task on fleet-1")
    expect(page.locator("#map-mode")).to_contain_text("update(s) waiting")
    assert lit(page) == ["frontend", "statedb"]  # nothing moved while paused
    expect(page.locator("#box-capacity-manager .last")).not_to_contain_text("last: place")

    page.click("#map-pause")  # Resume: what waited is shown and played, in order
    page.wait_for_function("() => document.querySelectorAll('#map-lit-log li').length >= 4")
    assert lit(page) == ["frontend", "statedb", "capacity_manager", "agent"]
    expect(page.locator("#box-capacity-manager .last")).to_contain_text("last: place")

    page.click("#map-slow")
    expect(page.locator("#map-slow")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#map-mode")).to_contain_text("replaying the last events at ¼ speed")
    page.wait_for_function("() => document.querySelectorAll('#map-lit-log li[data-replay=slow]').length >= 4")
    assert lit(page, "slow") == ["frontend", "statedb", "capacity_manager", "agent"]
    expect(page.locator("#map-mode")).to_have_text("Slow motion: live events at ¼ speed", timeout=15_000)


def test_it_replays_a_trace_at_its_steps_relative_times(page, live_lab_server):
    trace = {"trace_id": "0123456789abcdef", "steps": [
        {"component": "frontend", "action": "RunTask", "object_arn": "", "message": "RunTask → 200",
         "start_ms": 1000, "duration_ms": 4, "kubernetes": "kube-apiserver"},
        {"component": "capacity_manager", "action": "place", "object_arn": "", "message": "placed",
         "start_ms": 1300, "duration_ms": 2, "kubernetes": "kube-scheduler: Filter, Score, Bind"},
        {"component": "agent", "action": "start", "object_arn": "", "message": "started",
         "start_ms": 1600, "duration_ms": 200, "kubernetes": "CRI StartContainer"},
    ]}
    page.route("**/traces/0123456789abcdef.json", lambda route: route.fulfill(json=trace))
    page.goto(f"{live_lab_server.url}/?replay=0123456789abcdef")
    page.wait_for_function("() => document.querySelectorAll('#map-lit-log li[data-replay=trace]').length >= 6")
    assert lit(page, "trace") == ["frontend", "statedb", "capacity_manager", "agent", "agent", "docker"]
    times = page.evaluate("() => [...document.querySelectorAll('#map-lit-log li[data-replay=trace]')].map(li => Number(li.dataset.at))")
    # The steps start 300 ms apart: the replay keeps them apart (and in order), not all at once.
    assert times[2] - times[0] >= 250 and times[4] - times[2] >= 250, times
    expect(page.locator("#map-now")).to_contain_text("CRI StartContainer")
    expect(page.locator("#map-replay")).to_be_visible()


def test_a_trace_that_cannot_be_fetched_says_so(page, live_lab_server):
    page.goto(f"{live_lab_server.url}/?replay=nosuchtrace")
    expect(page.locator("#map-mode")).to_contain_text("Trace nosuchtrace cannot be replayed")
