"""The task page's terminal (ECS Exec ↔ ``kubectl exec -it``): keystrokes in, terminal output out.

Only the task's account reaches it (staff too), never a teacher's read-only "view as". Output is
read by a thread of its own (a ``recv`` blocks until the shell writes) and sent as binary frames;
the page sends JSON text frames: ``{"type": "input", "data": …}`` and ``{"type": "resize",
"rows": …, "cols": …}``.
"""
import asyncio
import json
import threading
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from dashboard.consumers import CLOSE_NOT_FOUND, CLOSE_UNAUTHENTICATED
from orchestrator.models import Account, Task

CLOSE_READ_ONLY = 4403
MAX_INPUT = 64 * 1024
MAX_SIZE = 500  # rows or columns


@database_sync_to_async
def _reachable_task(user, key):
    """The task ``key`` if ``user`` may open a terminal in it (its account's member, or staff), else None."""
    task = Task.objects.select_related("account", "container_instance").filter(pk=key).first()
    if task is None:
        return None
    if user.is_staff or user.is_superuser or task.account_id == Account.of_user(user).pk:
        return task
    return None


def _size(message, name, default):
    """A terminal dimension from a message, clamped to 1..MAX_SIZE."""
    value = message.get(name, default)
    return min(max(value, 1), MAX_SIZE) if isinstance(value, int) and not isinstance(value, bool) else default


class TaskExecConsumer(AsyncWebsocketConsumer):
    """One terminal: a ``docker exec -it /bin/sh`` in a container of the task."""

    session = None

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if self.scope.get("teacher") is not None:  # a read-only look at a student's pages
            await self.close(code=CLOSE_READ_ONLY)
            return
        task = await _reachable_task(user, int(self.scope["url_route"]["kwargs"]["key"]))
        if task is None:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        query = parse_qs(self.scope.get("query_string", b"").decode("ascii", "replace"))
        container = (query.get("container") or [""])[0]
        await self.accept()
        from orchestrator.docker_engine import EngineError
        from orchestrator.task_exec import ExecRefused, open_session

        try:
            if not container:
                container = await database_sync_to_async(
                    lambda: task.containers.order_by("-essential", "id").values_list("name", flat=True).first())()
            self.session = await asyncio.to_thread(open_session, task, container or "", 24, 100)
        except (ExecRefused, EngineError) as exc:
            await self.send(text_data=json.dumps({"type": "refused", "message": str(exc)}))
            await self.close()
            return
        self.output = asyncio.Queue()
        loop = asyncio.get_running_loop()
        threading.Thread(target=self.read, args=(self.session, loop), daemon=True, name="task-exec").start()
        self.forwarder = asyncio.create_task(self.forward())

    def read(self, session, loop):
        """Thread: hand each chunk of terminal output to the loop; None when the shell ended."""
        while True:
            data = session.recv(4096)
            if loop.is_closed():
                return
            loop.call_soon_threadsafe(self.output.put_nowait, data or None)
            if not data:
                return

    async def forward(self):
        """Send the output as it comes; say so and close when the shell exits."""
        while True:
            data = await self.output.get()
            if data is None:
                await self.send(text_data=json.dumps({"type": "exit"}))
                await self.close()
                return
            await self.send(bytes_data=data)

    async def receive(self, text_data=None, bytes_data=None):
        if self.session is None or text_data is None or len(text_data) > MAX_INPUT:
            return
        try:
            message = json.loads(text_data)
        except ValueError:
            return
        if not isinstance(message, dict):
            return
        if message.get("type") == "input" and isinstance(message.get("data"), str):
            await asyncio.to_thread(self.session.send, message["data"].encode("utf-8", "replace"))
        elif message.get("type") == "resize":
            await asyncio.to_thread(self.session.resize, _size(message, "rows", 24), _size(message, "cols", 100))

    async def disconnect(self, code):
        if self.session is not None:
            self.session.close()
        forwarder = getattr(self, "forwarder", None)
        if forwarder is not None:
            forwarder.cancel()
