"""The solution of lab 3 (run by tests/test_classroom_labs_e2e.py; ``student``: tests.support.classroom.Student)."""

# A small fleet, so that a few tasks fill it: 3 instances of 1 vCPU (4 tasks of 256 CPU units each).
ENV = {"FARGATE_LAB_WARM_POOL": "3", "FARGATE_LAB_INSTANCE_CPU": "1024", "FARGATE_LAB_INSTANCE_BOOT_SECONDS": "1"}
# 16 tasks of 0.25 vCPU: more than a student's default quota of Fargate On-Demand vCPU.
QUOTAS = {"--fargate-on-demand-vcpu": 4}
NETWORK = {"awsvpcConfiguration": {"subnets": ["subnet-a"]}}


def _service(student, name, count, strategy):
    student.ecs.create_service(cluster="demo", serviceName=name, taskDefinition="web", desiredCount=count,
                               launchType="FARGATE", networkConfiguration=NETWORK, placementStrategy=[strategy])
    student.wait(lambda: len(student.running_tasks("demo", name)) == count, f"{count} RUNNING tasks of {name}")


def binpack(student):
    student.ecs.create_cluster(clusterName="demo")
    student.ecs.register_task_definition(
        family="web", requiresCompatibilities=["FARGATE"], networkMode="awsvpc", cpu="256", memory="512",
        containerDefinitions=[{"name": "web", "image": student.demo_image, "essential": True}])
    _service(student, "packed", 3, {"type": "binpack", "field": "memory"})


def spread(student):
    _service(student, "spread", 3, {"type": "spread", "field": "instanceId"})


def fleet_grows(student):
    # 3 + 3 tasks leave 6 of the 12 places: 7 more cannot all fit, so an instance is launched.
    student.ecs.update_service(cluster="demo", service="packed", desiredCount=10)
