from django.apps import AppConfig


class DashboardConfig(AppConfig):
    """The live dashboard: pages, htmx fragments and Channels consumers."""

    name = "dashboard"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Only the write recorder starts here; the broadcaster needs the server's event
        # loop and starts with the first WebSocket consumer (dashboard.broadcast).
        from dashboard import announcements, broadcast  # noqa: F401  (announcements registers its page)

        broadcast.install()
