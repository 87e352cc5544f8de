"""Dashboard URLs (the map itself is "/", routed by config.urls.root)."""
from django.urls import path, re_path

from dashboard import logs_views, quotas, region, views

app_name = "dashboard"

urlpatterns = [
    path("region/", region.choose, name="region"),
    path("clusters/", views.clusters, name="clusters"),
    path("clusters/<str:name>/", views.cluster, name="cluster"),
    path("clusters/<str:name>/tasks/", views.cluster_tasks, name="cluster_tasks"),
    path("clusters/<str:name>/delete/", views.cluster_delete, name="cluster_delete"),
    path("clusters/<str:name>/run-task/", views.run_task, name="run_task"),
    path("clusters/<str:name>/services/", views.service_create, name="service_create"),
    path("services/<int:pk>/", views.service, name="service"),
    path("services/<int:pk>/tasks/", views.service_tasks, name="service_tasks"),
    path("services/<int:pk>/scale/", views.service_scale, name="service_scale"),
    path("services/<int:pk>/update/", views.service_update, name="service_update"),
    path("services/<int:pk>/delete/", views.service_delete, name="service_delete"),
    path("tasks/<str:task_id>/", views.task, name="task"),
    path("tasks/<str:task_id>/stop/", views.task_stop, name="task_stop"),
    path("tasks/<str:task_id>/kill/", views.task_kill, name="task_kill"),
    path("tasks/<str:task_id>/interrupt/", views.task_interrupt, name="task_interrupt"),
    path("task-definitions/", views.task_definitions, name="task_definitions"),
    path("task-definitions/<str:family>/<int:revision>/", views.task_definition, name="task_definition"),
    path("repositories/", views.repositories, name="repositories"),
    path("repositories/<path:name>/", views.repository, name="repository"),
    path("load-balancers/", views.load_balancers, name="load_balancers"),
    path("load-balancers/create/", views.load_balancer_create, name="load_balancer_create"),
    path("target-groups/create/", views.target_group_create, name="target_group_create"),
    path("listeners/create/", views.listener_create, name="listener_create"),
    path("instances/", views.instances, name="instances"),
    path("instances/<str:name>/", views.instance, name="instance"),
    path("logs/", logs_views.log_groups, name="log_groups"),
    path("logs/<path:name>/", logs_views.log_group, name="log_group"),
    path("accounts/<str:account_id>/quotas/", quotas.account_quotas, name="account_quotas"),
    path("traces/<str:trace_id>.json", views.trace_json, name="trace_json"),
    path("traces/<str:trace_id>/", views.trace, name="trace"),
    # The lab serves its own static files (htmx, CSS): one process, no separate web server.
    re_path(r"^static/(?P<path>.*)$", views.static_file),
]
