"""Checks of lab 1, "From image to URL": one per step of the article."""
from classroom.checks import not_yet, passed
from orchestrator import registry

MIN_TASKS = 3


def _pushed(facts):
    """{repository name: its tags} for the account's repositories holding at least one image."""
    found = {}
    for repository in facts.repositories():
        try:
            tags = registry.tags(repository)
        except Exception:  # the registry is not up (yet): nothing pushed as far as we can see
            tags = []
        if tags:
            found[repository.name] = tags
    return found


def image_pushed(facts):
    pushed = _pushed(facts)
    if pushed:
        name, tags = next(iter(pushed.items()))
        return passed(f"{name}:{tags[0]} is in the registry")
    if facts.repositories().exists():
        return not_yet("your repository holds no image yet: docker push it")
    return not_yet("no repository yet: create one (ECR)")


def task_definition_of_pushed_image(facts):
    repositories = [r.name for r in facts.repositories()]
    seen_other = False
    for definition in facts.task_definitions().order_by("-registered_at"):
        for container in definition.container_definitions:
            image = str(container.get("image", ""))
            ports = container.get("portMappings") or []
            if any(f"/{name}:" in image or image.endswith(f"/{name}") for name in repositories) and ports:
                return passed(f"{definition.family}:{definition.revision} runs {image}")
            seen_other = True
    if seen_other:
        return not_yet("a task definition exists, but none runs your pushed image with a port mapping")
    return not_yet("no task definition yet")


def cluster_exists(facts):
    cluster = facts.clusters().first()
    return passed(f"cluster {cluster.name}") if cluster else not_yet("no cluster yet")


def listener_forwards(facts):
    for listener in facts.listeners():
        if listener.target_groups.exists():
            return passed(f"{listener.load_balancer.name}:{listener.port} forwards to "
                          f"{listener.target_groups.first().name}")
    if facts.load_balancers().exists():
        return not_yet("your load balancer has no listener forwarding to a target group yet")
    return not_yet("no load balancer yet")


def service_answers(facts):
    best = None
    for service in facts.services():
        running = facts.running_tasks(service=service).count()
        if not service.load_balancers:
            best = best or f"service {service.name} is not behind a load balancer"
            continue
        if running < MIN_TASKS:
            best = f"service {service.name} has {running} of {MIN_TASKS} tasks RUNNING"
            continue
        url = facts.url_of_service(service)
        if url:
            return passed(f"{service.name}: {running} tasks RUNNING, {url} answers 200")
        best = f"service {service.name}: its listener's URL does not answer 200 yet (targets still getting healthy?)"
    return not_yet(best or "no service yet")
