"""WebSocket routes: one live consumer for every page, one for a task's logs, one for its terminal."""
from django.urls import re_path

from dashboard.consumers import LiveConsumer, TaskLogsConsumer
from dashboard.exec_consumer import TaskExecConsumer

websocket_urlpatterns = [
    re_path(r"^ws/tasks/(?P<key>[0-9]+)/logs/\Z", TaskLogsConsumer.as_asgi()),
    re_path(r"^ws/tasks/(?P<key>[0-9]+)/exec/\Z", TaskExecConsumer.as_asgi()),
    re_path(r"^ws/(?P<page>[a-z-]+)/(?:(?P<key>[0-9]+)/)?\Z", LiveConsumer.as_asgi()),
]
