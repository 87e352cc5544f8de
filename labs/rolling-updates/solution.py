"""The solution of lab 4 (run by tests/test_classroom_labs_e2e.py; ``student``: tests.support.classroom.Student)."""

# Tasks without a health check count as healthy after this grace (40 s by default, as on ECS).
ENV = {"FARGATE_LAB_HEALTH_GRACE_SECONDS": "2", "FARGATE_LAB_STOP_TIMEOUT": "2"}


def _register(student, **container):
    return student.ecs.register_task_definition(
        family="web", requiresCompatibilities=["FARGATE"], networkMode="awsvpc", cpu="256", memory="512",
        containerDefinitions=[{"name": "web", "image": student.demo_image, "essential": True,
                               "portMappings": [{"containerPort": 80}], **container}],
    )["taskDefinition"]["taskDefinitionArn"]


def _primary(student):
    service = student.ecs.describe_services(cluster="demo", services=["web"])["services"][0]
    return next(d for d in service["deployments"] if d["status"] == "PRIMARY")


def service(student):
    student.ecs.create_cluster(clusterName="demo")
    _register(student)
    student.ecs.create_service(
        cluster="demo", serviceName="web", taskDefinition="web:1", desiredCount=2, launchType="FARGATE",
        networkConfiguration={"awsvpcConfiguration": {"subnets": ["subnet-a"]}},
        deploymentConfiguration={"minimumHealthyPercent": 50, "maximumPercent": 150,
                                 "deploymentCircuitBreaker": {"enable": True, "rollback": True}})
    student.wait(lambda: _primary(student)["rolloutState"] == "COMPLETED", "revision 1 to be COMPLETED")


def rollout(student):
    _register(student, environment=[{"name": "REVISION", "value": "2"}])
    student.ecs.update_service(cluster="demo", service="web", taskDefinition="web:2")
    student.wait(lambda: _primary(student)["rolloutState"] == "COMPLETED" and _primary(student)["taskDefinition"]
                 .endswith(":2"), "revision 2 to be COMPLETED")


def breaker(student):
    _register(student, command=["sh", "-c", "exit 3"])
    student.ecs.update_service(cluster="demo", service="web", taskDefinition="web:3")


def rollback(student):
    """Nothing to do: the circuit breaker rolls back by itself."""
