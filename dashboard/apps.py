from django.apps import AppConfig


class DashboardConfig(AppConfig):
    """The live dashboard: pages, htmx fragments and Channels consumers."""

    name = "dashboard"
    default_auto_field = "django.db.models.BigAutoField"
