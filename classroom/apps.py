from django.apps import AppConfig


class ClassroomConfig(AppConfig):
    """Guided labs (folders under ``labs/``), their checks on the bus, and the teacher's class page."""

    name = "classroom"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from classroom import fragments  # noqa: F401  (registers the live fragments and pages)
