"""The solution of lab 1, one function per step, as a student would type it (run by
tests/test_classroom_labs_e2e.py against a real lab; ``student`` is tests.support.classroom.Student)."""

TASK_DEFINITION = {
    "family": "web", "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc", "cpu": "256", "memory": "512",
}


def push(student):
    uri = student.ecr.create_repository(repositoryName="web")["repository"]["repositoryUri"]
    student.docker_login()
    student.docker("tag", student.demo_image, f"{uri}:v1")
    student.docker("push", f"{uri}:v1")
    student.uri = uri


def task_definition(student):
    uri = student.ecr.describe_repositories(repositoryNames=["web"])["repositories"][0]["repositoryUri"]
    student.ecs.register_task_definition(**TASK_DEFINITION, containerDefinitions=[{
        "name": "web", "image": f"{uri}:v1", "essential": True, "portMappings": [{"containerPort": 80}]}])


def cluster(student):
    student.ecs.create_cluster(clusterName="demo")


def load_balancer(student):
    elbv2 = student.elbv2
    lb = elbv2.create_load_balancer(Name="web-lb", Subnets=["subnet-a", "subnet-b"])["LoadBalancers"][0]
    tg = elbv2.create_target_group(Name="web-tg", Protocol="HTTP", Port=80, TargetType="ip", VpcId="vpc-lab",
                                   HealthCheckIntervalSeconds=5, HealthyThresholdCount=2)["TargetGroups"][0]
    elbv2.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=student.free_port(),
                          DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}])


def service(student):
    tg = student.elbv2.describe_target_groups(Names=["web-tg"])["TargetGroups"][0]
    student.ecs.create_service(
        cluster="demo", serviceName="web", taskDefinition="web", desiredCount=3, launchType="FARGATE",
        networkConfiguration={"awsvpcConfiguration": {"subnets": ["subnet-a"], "assignPublicIp": "ENABLED"}},
        loadBalancers=[{"targetGroupArn": tg["TargetGroupArn"], "containerName": "web", "containerPort": 80}])
