# Each region's objects are its own: the rows of the regional models get a region, the existing
# ones the lab's default region (FARGATE_LAB["REGION"], what orchestrator.models.region() names
# outside any call), and their names are unique per account and region.

import orchestrator.models
from django.db import migrations, models

# (model, its name constraint, the constraint's fields with the region)
REGIONAL = [
    ("cluster", "uniq_cluster_name", ("account", "region", "name")),
    ("loadbalancer", "uniq_load_balancer_name", ("account", "region", "name")),
    ("repository", "uniq_repository_per_account", ("account", "region", "name")),
    ("targetgroup", "uniq_target_group_name", ("account", "region", "name")),
    ("taskdefinition", "uniq_taskdef_revision", ("account", "region", "family", "revision")),
]


class Migration(migrations.Migration):

    dependencies = [
        ('orchestrator', '0022_task_sandbox'),
    ]

    operations = [
        *(migrations.RemoveConstraint(model_name=model, name=name) for model, name, _ in REGIONAL),
        *(migrations.AddField(model_name=model, name='region',
                              field=models.CharField(default=orchestrator.models.region, max_length=32))
          for model, _, _ in REGIONAL),
        *(migrations.AddConstraint(model_name=model, constraint=models.UniqueConstraint(fields=fields, name=name))
          for model, name, fields in REGIONAL),
    ]
