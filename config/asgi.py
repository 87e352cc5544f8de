"""ASGI entry point: HTTP (Django), WebSockets (Channels) and the lifespan that starts the
in-process control plane with the web server (uvicorn sends lifespan events)."""
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from dashboard.origin import LabOriginValidator  # noqa: E402
from dashboard.routing import websocket_urlpatterns  # noqa: E402
from dashboard.view_as import ViewAsWebsocketMiddleware  # noqa: E402
from orchestrator.frontend.asgi import ApiFastPath  # noqa: E402
from orchestrator.lifespan import ControlPlaneLifespan  # noqa: E402

api = ApiFastPath(django_asgi_app)  # signed API calls skip the dashboard's middleware
application = ProtocolTypeRouter(
    {
        "http": api,
        "websocket": LabOriginValidator(AuthMiddlewareStack(ViewAsWebsocketMiddleware(URLRouter(websocket_urlpatterns)))),
        "lifespan": ControlPlaneLifespan(warm=api.warm),  # the API's connections open at the start
    }
)
