"""Every lab's solution against a real lab (``manage.py lab`` on real Docker): a student does the
first half of the steps one by one, and after each exactly the steps done are ticked; then the
rest, and every step ticks. The ticks
are the runner's, on the bus, read from the student's own progress page."""
import importlib.util
import uuid

import pytest

from classroom.labs import all_labs
from tests.support.classroom import Student
from tests.support.common import wait_until
from tests.support.lab import LabProcess, remove_lab_objects

pytestmark = pytest.mark.docker

TICK_TIMEOUT = 180


def solution_of(lab):
    path = lab.folder / "solution.py"
    spec = importlib.util.spec_from_file_location(f"fargate_lab_solutions.{lab.slug.replace('-', '_')}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def do(solution, student, step):
    getattr(solution, step.id.replace("-", "_"))(student)


def wait_ticked(student, slug, wanted):
    """The student's progress once exactly ``wanted`` are ticked (the last one seen in the failure)."""
    seen = []

    def exactly():
        seen[:] = [student.progress(slug)]
        return seen[0] if seen[0]["ticked"] == wanted else None

    try:
        return wait_until(exactly, timeout=TICK_TIMEOUT, interval=0.3, message=f"{slug}: exactly {wanted} ticked")
    except BaseException:
        print("last progress seen:", seen)
        raise


@pytest.mark.parametrize("slug", list(all_labs()))
def test_the_solution_ticks_every_step_and_half_of_it_half(slug, tmp_path, docker_client, lab_demo_image):
    lab = all_labs()[slug]
    solution = solution_of(lab)
    process = LabProcess(tmp_path, f"test-{uuid.uuid4().hex[:8]}", extra_env=getattr(solution, "ENV", {}))
    process.start()
    student = None
    try:
        student = Student(process, "stu", tmp_path)
        quotas = [str(arg) for pair in getattr(solution, "QUOTAS", {}).items() for arg in pair]
        if quotas:  # as the teacher raises them for this lab
            raised = process.manage("setquota", student.account_id, *quotas)
            assert raised.returncode == 0, raised.stderr
        student.start_lab(slug)
        steps = list(lab.steps)
        half = max(1, len(steps) // 2)
        for number, step in enumerate(steps[:half], 1):  # each tick arrives by itself, on the bus
            do(solution, student, step)
            progress = wait_ticked(student, slug, [step.id for step in steps[:number]])
        assert not progress["completed"]
        assert set(progress["notes"]) <= {step.id for step in steps[half:]}

        for step in steps[half:]:
            do(solution, student, step)
        progress = wait_ticked(student, slug, lab.step_ids)
        assert progress["completed"]
    except BaseException:
        print(process.log())
        raise
    finally:
        process.stop()
        remove_lab_objects(docker_client, process.lab_id)
        if student is not None:
            student.cleanup()
