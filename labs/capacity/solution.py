"""The solution of lab 6 (run by tests/test_classroom_labs_e2e.py; ``student``: tests.support.classroom.Student)."""

SLUG = "capacity"
# A fleet of one instance of 1 vCPU: one big task fills it.
ENV = {"FARGATE_LAB_WARM_POOL": "1", "FARGATE_LAB_INSTANCE_CPU": "1024", "FARGATE_LAB_INSTANCE_BOOT_SECONDS": "1"}
# Two tasks of 1 vCPU: more than a student's default quota of Fargate On-Demand vCPU.
QUOTAS = {"--fargate-on-demand-vcpu": 2}
NETWORK = {"awsvpcConfiguration": {"subnets": ["subnet-a"]}}


def predict(student):
    student.answer(SLUG, "predict", 2)


def _run_big(student):
    return student.ecs.run_task(cluster="demo", taskDefinition="big", launchType="FARGATE",
                                networkConfiguration=NETWORK)["tasks"][0]["taskArn"]


def big_task(student):
    student.ecs.create_cluster(clusterName="demo")
    student.ecs.register_task_definition(
        family="big", requiresCompatibilities=["FARGATE"], networkMode="awsvpc", cpu="1024", memory="2048",
        containerDefinitions=[{"name": "web", "image": student.demo_image, "essential": True}])
    arn = _run_big(student)
    student.wait(lambda: any(t["taskArn"] == arn for t in student.running_tasks("demo")), "the big task to run")


def waits(student):
    _run_big(student)


def launched(student):
    """Nothing to do: the capacity manager launches the instance by itself."""
