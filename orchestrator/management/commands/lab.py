"""``manage.py lab``: start the whole lab in one process — web server, ECS API, dashboard and
the in-process control plane — after migrating the state database and building the demo image."""
import os
import subprocess
import sys

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Start Fargate Lab: migrate the state database, create the default account (access key "
        "test / secret test) and dashboard user (admin / admin), build the demo image if it is "
        "missing, then serve the ECS API and the dashboard on HOST:PORT (127.0.0.1:8000 by default) "
        "with the control plane running in the same process. Bound to any non-loopback address "
        "(a classroom lab), it refuses to start while the admin user has the default password or the "
        "access key test / test is active (manage.py disablekey test)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default=settings.LAB_HOST, help="address to listen on (env HOST; default 127.0.0.1)")
        parser.add_argument("--port", type=int, default=settings.LAB_PORT, help="port to listen on (env PORT; default 8000)")
        parser.add_argument("--skip-demo-image", action="store_true", help="do not build the demo image")
        parser.add_argument("--no-control-plane", action="store_true", help="serve the API and dashboard only")
        parser.add_argument("--workers", type=int, default=1,
                            help="server processes (default 1; make run WORKERS=N): each serves the API and the "
                                 "live dashboard, and the leader among their control planes (a lease in the state "
                                 "database) reconciles. Use PostgreSQL (DATABASE_URL) for more than one")

    def handle(self, *args, host, port, skip_demo_image, no_control_plane, workers, **options):
        from orchestrator.docker_engine import DockerEngine, EngineUnavailable

        engine = DockerEngine.from_settings()
        try:
            engine.ping()
        except EngineUnavailable as exc:
            raise CommandError(
                f"No Docker engine answers ({exc}). Start Docker (for example `sudo systemctl start docker`, "
                "or `sudo dockerd &`) or point DOCKER_HOST at one, then run `make run` again."
            )
        # Task ports and listeners follow the address the lab listens on (orchestrator/network.py).
        settings.LAB_HOST = host
        call_command("migrate", interactive=False, verbosity=0)
        self.bootstrap(host)
        if not skip_demo_image:
            self.ensure_demo_image(engine)
        if workers < 1:
            raise CommandError("--workers must be 1 or more")
        if no_control_plane:
            settings.FARGATE_LAB["CONTROL_PLANE"] = False
        # Worker processes start afresh from the settings: they learn what was decided here
        # from the environment.
        os.environ["HOST"] = host
        os.environ["FARGATE_LAB_CONTROL_PLANE"] = "1" if settings.FARGATE_LAB["CONTROL_PLANE"] else "0"
        self.banner(host, port, workers)
        import uvicorn

        uvicorn.run("config.asgi:application", host=host, port=port, lifespan="on", log_level="warning",
                    workers=workers)

    def bootstrap(self, host):
        """The default account and admin user; refuse a classroom lab with the default password or key."""
        from dashboard import bootstrap
        from orchestrator.models import Account

        Account.default()
        bootstrap.ensure_admin()
        try:
            bootstrap.refuse_default_password(host)  # a no-op on a loopback address
            bootstrap.refuse_default_key(host)
        except (bootstrap.DefaultPasswordRefused, bootstrap.DefaultKeyRefused) as exc:
            raise CommandError(str(exc))

    def ensure_demo_image(self, engine):
        """Build the demo image once; a second start finds it and skips the build."""
        image = settings.FARGATE_LAB["DEMO_IMAGE"]
        if engine.image_present(image):
            return
        self.stdout.write(f"Building the demo image {image} …")
        result = subprocess.run(["bash", str(settings.BASE_DIR / "demo" / "build.sh"), image], capture_output=True, text=True)
        if result.returncode != 0:
            raise CommandError(f"Could not build the demo image {image}:\n{result.stderr.strip()}")

    def banner(self, host, port, workers=1):
        from orchestrator import network
        from orchestrator.models import served_regions
        from orchestrator.registry import registry_host, start_problem

        url = f"http://{network.url_host(network.advertised_host(host))}:{port}"
        problem = start_problem()
        if problem is None:
            ecr = (f"{registry_host()}  (the lab's own registry: aws ecr get-login-password | docker login -u AWS "
                   f"--password-stdin {registry_host()}; docker push {registry_host()}/<account>/<repository>)")
        else:
            ecr = f"not available: {problem} (the rest of the lab runs)"
        self.stdout.write(
            f"Fargate Lab is up on {url}\n"
            f"  dashboard  {url}/  (user admin / password admin)\n"
            f"  ECS API    aws --endpoint-url {url} ecs list-clusters  (key test / secret test, region "
            f"{settings.FARGATE_LAB['REGION']}; each of {', '.join(served_regions())} has its own objects)\n"
            f"  ECR        {ecr}\n"
            f"  admin      {url}/admin/\n"
            f"  tasks and load balancers publish on {network.publish_address()} and "
            f"{network.listen_address()}; load balancer URLs name {network.load_balancer_domain()}\n"
            + (f"  served by {workers} processes; the leader among their control planes reconciles\n"
               if workers > 1 else "")
            + "Stop with Ctrl-C; running tasks are adopted on the next start."
        )
        sys.stdout.flush()
