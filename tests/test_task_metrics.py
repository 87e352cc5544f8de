"""Task metrics: the pure arithmetic on Docker's samples, and the sampler against real Docker
(a busy task at its CPU limit, an idle one near zero)."""
import pytest

from orchestrator import task_metrics
from orchestrator.models import Task
from orchestrator.task_metrics import Usage, cores_between, memory_bytes, read_ns, usage_of


def sample(read, cpu, memory=0, inactive_file=0):
    return {"read": read, "cpu_stats": {"cpu_usage": {"total_usage": cpu}},
            "memory_stats": {"usage": memory, "stats": {"total_inactive_file": inactive_file}}}


def test_it_reads_dockers_nanosecond_times():
    assert read_ns("2026-12-02T02:04:36.477835127Z") - read_ns("2026-12-02T02:04:35.5Z") == 977_835_127
    assert read_ns("0001-01-01T00:00:00Z") is None and read_ns("garbage") is None and read_ns(None) is None


def test_the_cpu_rate_is_cpu_time_over_dockers_own_time_between_samples():
    a, b = sample("2026-12-02T02:00:00Z", 1_000_000_000), sample("2026-12-02T02:00:02Z", 1_500_000_000)
    assert cores_between(a, b) == pytest.approx(0.25)
    assert cores_between(b, a) is None  # out of order
    assert cores_between(b, sample("2026-12-02T02:00:03Z", 10)) is None  # a restarted container


def test_memory_leaves_the_page_cache_out():
    assert memory_bytes(sample("x", 0, memory=10 << 20, inactive_file=4 << 20)) == 6 << 20
    assert memory_bytes({"memory_stats": {"usage": 5, "stats": {"inactive_file": 2}}}) == 3  # cgroup v2


def test_a_tasks_usage_is_a_fraction_of_what_it_reserved():
    pairs = [(sample("2026-12-02T02:00:00Z", 0, 64 << 20), sample("2026-12-02T02:00:01Z", 125_000_000, 128 << 20)),
             (sample("2026-12-02T02:00:00Z", 0), sample("2026-12-02T02:00:01Z", 125_000_000, 128 << 20))]
    usage = usage_of(pairs, cpu_units=256, memory_mib=512, at=1.0)
    assert usage.cpu == pytest.approx(1.0) and usage.cpu_units == pytest.approx(256)
    assert usage.memory == pytest.approx(0.5) and usage.memory_mib == pytest.approx(256)
    assert usage_of([], 256, 512, 1.0) is None


def test_the_average_is_over_the_window_then_over_the_tasks():
    sampler = task_metrics.Sampler()
    sampler._keep({1: Usage(1.0, 0.1, 256, 51, at=100.0)}, {1, 2}, set(), now=100.0)
    sampler._keep({1: Usage(0.5, 0.1, 128, 51, at=110.0), 2: Usage(0.0, 0.3, 0, 153, at=110.0)}, {1, 2}, set(),
                  now=110.0)
    usage, tasks = sampler.average([1, 2], seconds=30, now=115.0)
    assert tasks == 2 and usage.cpu == pytest.approx((0.75 + 0.0) / 2) and usage.memory == pytest.approx(0.2)
    usage, tasks = sampler.average([1, 2], seconds=6, now=115.0)
    assert tasks == 2 and usage.cpu == pytest.approx(0.25)
    sampler._keep({}, {2}, set(), now=120.0)  # task 1 stopped: its history goes
    assert sampler.history(1) == [] and len(sampler.history(2)) == 1


@pytest.fixture
def fast_sampling(settings, lab_id):
    """Sample twice a second (set before the control plane starts)."""
    settings.FARGATE_LAB = {**settings.FARGATE_LAB, "METRICS_SAMPLE_SECONDS": 0.5}


@pytest.mark.docker
def test_it_samples_a_busy_task_at_its_limit_and_an_idle_one_near_zero(fast_sampling, control_plane, lab_rows,
                                                                        wait_until):
    busy = lab_rows.run_task(lab_rows.task_definition(family="busy", command=["sh", "-c", "while :; do :; done"]))
    idle = lab_rows.run_task(lab_rows.task_definition(family="idle", command=["sleep", "3600"]))
    wait_until(lambda: Task.objects.filter(last_status=Task.RUNNING).count() == 2, 60, message="both tasks RUNNING")

    # On a quiet machine the busy task runs at its 0.25 vCPU (1.0); on one saturated by processes
    # outside Docker it gets less, but still far more than the idle one.
    def sampled():
        found = task_metrics.latest([busy.pk, idle.pk])
        return len(found) == 2 and found[busy.pk].cpu > max(0.2, 5 * found[idle.pk].cpu) and found
    found = wait_until(sampled, 30, message="the busy task sampled far above the idle one")
    assert found[busy.pk].cpu < 1.2  # Docker holds it to its reservation (nano_cpus)
    assert found[idle.pk].cpu < 0.1
    assert 0 < found[idle.pk].memory < 0.5 and found[idle.pk].memory_mib > 0
    [container] = busy.containers.all()
    previous, latest = task_metrics.sampler().container_stats(container.docker_id)
    assert previous["read"] < latest["read"] and "memory_stats" in latest
