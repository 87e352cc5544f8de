"""The ASGI lifespan app: the control plane and the image registry (ECR) start and stop with
the web server.

With several server processes each one starts a control plane, and the lease in the state
database lets only one of them reconcile at a time (see ``controlplane``).
"""
import asyncio
import logging

from django.conf import settings

log = logging.getLogger(__name__)


class ControlPlaneLifespan:
    """Start the control plane on lifespan.startup, stop it on lifespan.shutdown."""

    def __init__(self, warm=None):
        self.control_plane = None
        self.registry = None
        self.warm = warm  # called first at startup (the API's threads open their connections)

    async def __call__(self, scope, receive, send):
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await asyncio.to_thread(self._start)
                except Exception as exc:  # tell the server, which then exits with the reason
                    log.exception("control plane failed to start")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await asyncio.to_thread(self._stop)
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _start(self):
        from classroom import runner
        from orchestrator import bus
        from orchestrator.registry import start_lab_registry

        if self.warm is not None:
            self.warm()
        bus.share()  # hear the other server processes' changes (REDIS_URL or PostgreSQL)
        self.registry = start_lab_registry()
        runner.start()  # the labs' checks, re-run on the bus as the students' objects change
        if not settings.FARGATE_LAB["CONTROL_PLANE"]:
            log.info("control plane disabled (FARGATE_LAB_CONTROL_PLANE=0)")
            return
        from orchestrator.controlplane import ControlPlane

        self.control_plane = ControlPlane()
        self.control_plane.start()

    def _stop(self):
        from classroom import runner

        runner.stop()
        if self.control_plane is not None:
            self.control_plane.stop()
            self.control_plane = None
        if self.registry is not None:
            self.registry.stop()
            self.registry = None
