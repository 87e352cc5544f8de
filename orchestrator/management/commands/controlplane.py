"""``manage.py controlplane``: run the control plane alone, in the foreground.

Useful when the web server runs with FARGATE_LAB_CONTROL_PLANE=0 (or several web processes
share one database): this process then reconciles, hearing the frontend through the
database. With several control planes, the lease lets one act at a time.
"""
import signal
import threading

from django.core.management.base import BaseCommand, CommandError

from orchestrator.docker_engine import DockerEngine, EngineUnavailable


class Command(BaseCommand):
    help = (
        "Run the Fargate Lab control plane (cluster manager, capacity manager and Fargate agent) "
        "in the foreground until SIGINT or SIGTERM. It reconciles the state database with the "
        "Docker engine: places PROVISIONING tasks, starts and stops containers, keeps services "
        "at their desired count. Several may run; a lease in the database elects one leader."
    )

    def add_arguments(self, parser):
        parser.add_argument("--workers", type=int, default=None,
                            help="the agents' worker threads, which start and stop containers (default: "
                                 "FARGATE_LAB['WORKERS'], env FARGATE_LAB_WORKERS, 8)")

    def handle(self, *args, **options):
        from orchestrator.controlplane import ControlPlane

        engine = DockerEngine.from_settings()
        try:
            engine.ping()
        except EngineUnavailable as exc:
            raise CommandError(str(exc))
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        from orchestrator.registry import start_lab_registry

        registry = start_lab_registry()
        plane = ControlPlane(workers=options["workers"])
        plane.start()
        self.stdout.write(f"control plane {plane.identity} running "
                          f"({'leader' if plane.is_leader else 'standby'}); Ctrl-C to stop")
        try:
            while not stop.wait(1):
                pass
        finally:
            plane.stop()
            if registry is not None:
                registry.stop()
            self.stdout.write("control plane stopped")
