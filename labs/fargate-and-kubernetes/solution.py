"""The solution of lab 5 (run by tests/test_classroom_labs_e2e.py; ``student``: tests.support.classroom.Student)."""

SLUG = "fargate-and-kubernetes"
NETWORK = {"awsvpcConfiguration": {"subnets": ["subnet-a"]}}


def cluster(student):
    student.ecs.create_cluster(clusterName="demo")
    student.answer(SLUG, "cluster", 1)


def task_definition(student):
    student.ecs.register_task_definition(
        family="web", requiresCompatibilities=["FARGATE"], networkMode="awsvpc", cpu="256", memory="512",
        containerDefinitions=[{"name": "web", "image": student.demo_image, "essential": True}])
    student.answer(SLUG, "task-definition", 0)  # a wrong answer first: the step stays unticked
    student.answer(SLUG, "task-definition", 2)


def task(student):
    student.ecs.run_task(cluster="demo", taskDefinition="web", launchType="FARGATE", networkConfiguration=NETWORK)
    student.answer(SLUG, "task", 0)


def service(student):
    student.ecs.create_service(cluster="demo", serviceName="web", taskDefinition="web", desiredCount=1,
                               launchType="FARGATE", networkConfiguration=NETWORK)
    student.answer(SLUG, "service", 2)


def components(student):
    student.answer(SLUG, "components", 3)
