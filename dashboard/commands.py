"""A dashboard form's request as the aws CLI would send it, and the kubectl command that does
the same job: shown beside every form, so the console teaches the CLI and Kubernetes."""
import json
import shlex

from orchestrator import activity, kubernetes


def aws_cli(service, operation, params, endpoint):
    """``aws <service> <operation> --flag value … --endpoint-url <the lab>``."""
    return f"{kubernetes.aws_cli_for(operation, params, service)} --endpoint-url {endpoint}"


def for_form(form, account, endpoint, **context):
    """{"aws", "kubectl"} for what ``form`` would send now (empty strings when it cannot say)."""
    params = form.example(**context)
    if not params:
        return {"aws": "", "kubectl": ""}
    if form.operation == "RegisterTaskDefinition":
        aws = (f"aws ecs register-task-definition --cli-input-json {shlex.quote(json.dumps(params, separators=(',', ':')))}"
               f" --endpoint-url {endpoint}")
    else:
        aws = aws_cli(form.service, form.operation, params, endpoint)
    if form.service == "ecs":
        request = activity.api_request(account, form.operation, params)
        kubectl = kubernetes.kubectl_for(form.operation, request["params"], request["known"])
    else:
        kubectl = kubernetes.kubectl_for(form.operation, params)
    return {"aws": aws, "kubectl": kubectl}
