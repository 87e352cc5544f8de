from django.apps import AppConfig


class OrchestratorConfig(AppConfig):
    """The control plane: frontend, state database, cluster and capacity managers, agent."""

    name = "orchestrator"
    verbose_name = "Fargate Lab control plane"
    default_auto_field = "django.db.models.BigAutoField"
