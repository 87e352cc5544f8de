"""The fuzzer of issue 10: thousands of signed, mutated requests to every API the lab serves
find no 5xx and no hang, every error is in its API's own shape, and the lab's state reads
back consistent afterwards.

``FUZZ_REQUESTS`` sets the count (5,000 by default, what CI runs); ``FUZZ_SEED`` replays a run.
A new AWS API plugs in with one line in ``SERVED_APIS``.
"""
import collections
import contextlib
import os
import random
import re
import signal
import time

import pytest
from django.apps import apps
from django.db import connection
from django.test import Client

from orchestrator import registry
from orchestrator.elbv2 import operations as elbv2_operations
from orchestrator.frontend import catalog
from orchestrator.frontend.application_autoscaling import operations as application_autoscaling_operations
from orchestrator.frontend import operations as ecs_operations
from orchestrator.frontend.logs import operations as logs_operations
from orchestrator.frontend.secretsmanager import operations as secretsmanager_operations
from orchestrator.frontend.servicediscovery import operations as servicediscovery_operations
from orchestrator.frontend.ssm import operations as ssm_operations
from tests.support.fuzz import Fuzzer, ServedApi, check_answer, parse, send

SERVED_APIS = [
    ServedApi("ecs", lambda: ecs_operations.OPERATIONS, refused=lambda: frozenset(catalog.refusals())),
    ServedApi("elbv2", lambda: {**elbv2_operations.OPERATIONS, **elbv2_operations.REFUSED},
              need_a_filter=frozenset({"DescribeListeners", "DescribeRules"}),
              refused=lambda: frozenset(elbv2_operations.REFUSED)),
    ServedApi("ecr", lambda: registry.OPERATIONS),
    ServedApi("logs", lambda: logs_operations.OPERATIONS, need_a_filter=frozenset({"DescribeLogStreams"})),
    ServedApi("ssm", lambda: ssm_operations.OPERATIONS),
    ServedApi("secretsmanager", lambda: secretsmanager_operations.OPERATIONS),
    ServedApi("servicediscovery", lambda: servicediscovery_operations.OPERATIONS),
    ServedApi("application-autoscaling", lambda: application_autoscaling_operations.OPERATIONS),
]
REQUESTS = int(os.environ.get("FUZZ_REQUESTS", "5000"))
# A request slower than this is a hang (the slowest honest one, a >1 MiB body, takes milliseconds).
HANG_SECONDS = 10


class Hang(Exception):
    """A request that did not answer within HANG_SECONDS."""


@contextlib.contextmanager
def hang_guard(seconds):
    """Raise Hang in this (the main) thread if the block runs longer than ``seconds``."""
    def expired(signum, frame):
        raise Hang(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def strings_in(value):
    """Every string in a parsed answer (names and ARNs later requests can reuse)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)


def fuzz(fuzzer, client, count):
    """Send ``count`` requests; returns the problems found, each with its replayable request."""
    problems = []
    for number in range(count):
        request = fuzzer.next_request()
        try:
            with hang_guard(HANG_SECONDS):
                response = send(client, request)
        except Hang as exc:
            problems.append(f"#{number}: {exc}\n  {request.describe()}")
            continue
        if request.refused and response.status_code < 400:
            problem = f"HTTP {response.status_code} to a request that must be refused"
        elif request.identifiable:
            problem = check_answer(request, response)
        else:
            problem = f"HTTP {response.status_code}" if response.status_code >= 500 else None
        if problem:
            problems.append(f"#{number}: {problem}\n  {request.describe()}")
        elif response.status_code == 200 and request.identifiable:
            operation = request.api.model.operation_model(request.operation)
            for text in strings_in(parse(request.api, operation, response)):
                fuzzer.generator.remember(text)
    return problems


def read_back(fuzzer, client):
    """Every List*/Describe* of every API, for every object they list, answers 2xx and parses."""
    problems = []

    def call(api, operation, params):
        request = fuzzer.build(api, operation, params, "read-back")
        response = send(client, request)
        problem = check_answer(request, response)
        if problem is None and response.status_code != 200:
            problem = f"HTTP {response.status_code}: {response.content[:300]!r}"
        if problem:
            problems.append(f"{request.describe()}\n  {problem}")
            return {}
        return parse(api, api.model.operation_model(operation), response)

    ecs, elbv2, ecr, logs = SERVED_APIS[:4]
    clusters = call(ecs, "ListClusters", {}).get("clusterArns", [])
    # Without a cluster parameter ECS reads the "default" cluster, which the fuzzer may have deleted
    # (ECS then answers ClusterNotFoundException, rightly); those are read back per cluster below.
    has_default = any(arn.endswith(":cluster/default") for arn in clusters)
    for api in SERVED_APIS:
        for operation in api.served():
            shape = api.model.operation_model(operation).input_shape
            if (operation.startswith(("List", "Describe")) and not (shape and shape.required_members)
                    and operation not in api.need_a_filter and operation not in api.refused()
                    and (api is not ecs or has_default or "cluster" not in shape.members)):
                call(api, operation, {})
    for cluster in clusters:
        call(ecs, "ListContainerInstances", {"cluster": cluster})
        services = call(ecs, "ListServices", {"cluster": cluster, "maxResults": 100}).get("serviceArns", [])
        for start in range(0, len(services), 10):
            call(ecs, "DescribeServices", {"cluster": cluster, "services": services[start:start + 10]})
        tasks = call(ecs, "ListTasks", {"cluster": cluster, "maxResults": 100}).get("taskArns", [])
        if tasks:
            call(ecs, "DescribeTasks", {"cluster": cluster, "tasks": tasks})
    for family in call(ecs, "ListTaskDefinitions", {}).get("taskDefinitionArns", []):
        call(ecs, "DescribeTaskDefinition", {"taskDefinition": family})
    for lb in call(elbv2, "DescribeLoadBalancers", {}).get("LoadBalancers", []):
        call(elbv2, "DescribeLoadBalancerAttributes", {"LoadBalancerArn": lb["LoadBalancerArn"]})
        for listener in call(elbv2, "DescribeListeners", {"LoadBalancerArn": lb["LoadBalancerArn"]}).get("Listeners", []):
            rules = call(elbv2, "DescribeRules", {"ListenerArn": listener["ListenerArn"]}).get("Rules", [])
            call(elbv2, "DescribeListenerAttributes", {"ListenerArn": listener["ListenerArn"]})
            call(elbv2, "DescribeTags", {"ResourceArns": [lb["LoadBalancerArn"], listener["ListenerArn"]]
                                         + [r["RuleArn"] for r in rules if not r["IsDefault"]][:18]})
    for tg in call(elbv2, "DescribeTargetGroups", {}).get("TargetGroups", []):
        call(elbv2, "DescribeTargetHealth", {"TargetGroupArn": tg["TargetGroupArn"]})
        call(elbv2, "DescribeTargetGroupAttributes", {"TargetGroupArn": tg["TargetGroupArn"]})
    for repository in call(ecr, "DescribeRepositories", {}).get("repositories", []):
        call(ecr, "ListImages", {"repositoryName": repository["repositoryName"]})
        call(ecr, "DescribeImages", {"repositoryName": repository["repositoryName"]})
    for group in call(logs, "DescribeLogGroups", {}).get("logGroups", []):
        call(logs, "DescribeLogStreams", {"logGroupName": group["logGroupName"]})
        call(logs, "FilterLogEvents", {"logGroupName": group["logGroupName"]})
    cloud_map = next(api for api in SERVED_APIS if api.model_name == "servicediscovery")
    for namespace in call(cloud_map, "ListNamespaces", {}).get("Namespaces", []):
        call(cloud_map, "GetNamespace", {"Id": namespace["Id"]})
    for service in call(cloud_map, "ListServices", {}).get("Services", []):
        call(cloud_map, "GetService", {"Id": service["Id"]})
        call(cloud_map, "ListInstances", {"ServiceId": service["Id"]})
    return problems


def database_problems():
    """SQLite's own integrity and foreign key checks (PostgreSQL enforces both at every commit),
    and every row valid by its model's fields."""
    problems = []
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA integrity_check")
            problems += [f"integrity: {row}" for row in cursor.fetchall() if row != ("ok",)]
            cursor.execute("PRAGMA foreign_key_check")
            problems += [f"foreign key: {row}" for row in cursor.fetchall()]
    for model in apps.get_app_config("orchestrator").get_models():
        for row in model.objects.all():
            try:
                row.clean_fields()
            except Exception as exc:  # a ValidationError names the field and the bad value
                problems.append(f"{model.__name__} #{row.pk}: {exc}")
    return problems


def test_the_apis_survive_fuzzing(default_account, lab_registry, capsys):
    seed = int(os.environ.get("FUZZ_SEED") or random.SystemRandom().randrange(2**32))
    with capsys.disabled():
        print(f"\nfuzzing {REQUESTS} requests with FUZZ_SEED={seed}")
    client = Client()
    fuzzer = Fuzzer(seed, SERVED_APIS)
    started = time.monotonic()

    problems = fuzz(fuzzer, client, REQUESTS)

    kinds = collections.Counter(next(iter(re.findall(r"HTTP ([0-9]{3})", problem.split("\n")[0])), "hang")
                                for problem in problems)
    with capsys.disabled():
        print(f"fuzzed {REQUESTS} requests in {time.monotonic() - started:.1f} s, {len(problems)} problems "
              f"(by HTTP status: {dict(kinds)})")
    assert not problems, f"FUZZ_SEED={seed}: {len(problems)} problems, the first 10:\n" + "\n".join(problems[:10])
    assert not read_back(fuzzer, client), f"FUZZ_SEED={seed}: the state does not read back"
    assert not database_problems(), f"FUZZ_SEED={seed}"
