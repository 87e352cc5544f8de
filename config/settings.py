"""Settings for Fargate Lab.

Everything a user may want to change comes from the environment, with defaults that give
a working lab on one machine: SQLite in ./var, the in-memory channel layer, the local
Docker engine, and the server on 127.0.0.1.
"""
import os
import secrets
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("FARGATE_LAB_VAR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _env_int(name, default):
    """An integer setting from the environment, or its default."""
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def _env_float(name, default):
    """A float setting from the environment, or its default."""
    value = os.environ.get(name)
    return float(value) if value not in (None, "") else default


def _secret_key():
    """The secret key from the environment, else one generated once and kept in var/."""
    if os.environ.get("DJANGO_SECRET_KEY"):
        return os.environ["DJANGO_SECRET_KEY"]
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = os.environ.get("DJANGO_DEBUG", "0") == "1"

# The address the lab listens on. 127.0.0.1 by default; any other address is a classroom
# lab, which refuses to start while the admin user still has the default password.
LAB_HOST = os.environ.get("HOST", "127.0.0.1")
LAB_PORT = _env_int("PORT", 8000)
ALLOWED_HOSTS = [h for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "").split(",") if h] or ["*"]
# Tasks call the lab's APIs at the task endpoint's address (orchestrator/task_metadata.py).
ALLOWED_HOSTS += [] if "*" in ALLOWED_HOSTS else ["169.254.170.2"]
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if o]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "orchestrator",
    "dashboard",
    "classroom",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "dashboard.view_as.ViewAsMiddleware",
    "dashboard.region.RegionMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "dashboard.region.regions",
            ],
        },
    },
]

# The state database. By default the embedded SQLite, in WAL mode with IMMEDIATE transactions:
# the control plane's worker threads and the web server write concurrently, and IMMEDIATE
# avoids lock-upgrade deadlocks between them. The engine (orchestrator/state_database) is
# Django's SQLite with one writer at a time per process, handed over by a lock instead of
# SQLite's sleeping busy wait; reads take no write lock. DATABASE_URL (postgres://user:pass@host/name)
# selects PostgreSQL instead, for a school's lab or several server processes.
DATABASE_URL = os.environ.get("DATABASE_URL", "")
if DATABASE_URL:
    import dj_database_url
    from django.core.exceptions import ImproperlyConfigured

    _database = dj_database_url.parse(DATABASE_URL, conn_max_age=None, conn_health_checks=True)
    if _database["ENGINE"] != "django.db.backends.postgresql":
        raise ImproperlyConfigured(
            f"DATABASE_URL selects PostgreSQL (postgres://user:password@host:5432/name), not {_database['ENGINE']}; "
            "leave it unset for the embedded SQLite (FARGATE_LAB_DB)")
    # One test database per test process (test_<name>_<pid>), so that test runs sharing a
    # server never share a database.
    _database["TEST"] = {"NAME": os.environ.get("FARGATE_LAB_TEST_DB", f"test_{_database['NAME']}_{os.getpid()}")}
    DATABASES = {"default": _database}
else:
    DATABASES = {
        "default": {
            "ENGINE": "orchestrator.state_database",
            "NAME": os.environ.get("FARGATE_LAB_DB", str(VAR_DIR / "lab.sqlite3")),
            # Keep connections open: the control plane's threads would otherwise reconnect (and
            # rerun the PRAGMAs below) on every pass.
            "CONN_MAX_AGE": None,
            "OPTIONS": {
                "timeout": 30,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
            # One test database per test process, so that parallel test runs never share one.
            "TEST": {"NAME": os.environ.get("FARGATE_LAB_TEST_DB", str(VAR_DIR / f"test-{os.getpid()}.sqlite3"))},
        }
    }

# The channel layer: in memory by default (one process). REDIS_URL (redis://host:6379/0) selects
# channels-redis, and the change bus between server processes goes over the same Redis
# (orchestrator/bus.py); without it, on PostgreSQL, the bus uses LISTEN/NOTIFY.
REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {
        # A consumer waits on Redis in 5 s blocking pops: redis-py's own 5 s read timeout (its
        # default since 6.x) must not end that wait first, which would close the page's socket.
        "hosts": [{"address": REDIS_URL, "socket_timeout": 30}],
        # Labs sharing a Redis server keep apart by their id; a burst of changes must not fill a
        # page's channel (channels-redis drops messages beyond its capacity, 100 by default).
        "prefix": f"fargatelab:{os.environ.get('FARGATE_LAB_ID', 'lab')}:",
        "capacity": 1000,
        "expiry": 30,
    }}}
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

AUTH_PASSWORD_VALIDATORS = []
# Failed logins are counted here (dashboard/login_throttle.py); the default cache stays unused.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "default"},
    "login-throttle": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "login-throttle"},
}
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Request bodies: the API accepts up to 1 MiB (a large task definition is ~64 KiB).
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "orchestrator": {"handlers": ["console"], "level": os.environ.get("FARGATE_LAB_LOG", "INFO")},
        "dashboard": {"handlers": ["console"], "level": os.environ.get("FARGATE_LAB_LOG", "INFO")},
        "classroom": {"handlers": ["console"], "level": os.environ.get("FARGATE_LAB_LOG", "INFO")},
        # Every turn at the write lock (thousands a minute under a class): for bench_labs.py only.
        "orchestrator.state_database.turns": {"level": "WARNING"},
    },
}

# --- Fargate Lab -------------------------------------------------------------------------
# Every container the lab starts carries the label fargatelab.lab=<FARGATE_LAB_ID>; the lab
# acts on no other container. Two labs on one engine need two ids.
FARGATE_LAB = {
    "LAB_ID": os.environ.get("FARGATE_LAB_ID", "lab"),
    "REGION": os.environ.get("FARGATE_LAB_REGION", "us-east-1"),
    # The regions served (the default REGION always among them): a call acts in the region of its
    # signature's credential scope, and each region's objects are its own. FARGATE_LAB_REGIONS is
    # a comma-separated list.
    "REGIONS": [name.strip() for name in os.environ.get(
        "FARGATE_LAB_REGIONS", "us-east-1,us-east-2,us-west-2,eu-west-1,eu-central-1,ap-southeast-1").split(",")
        if name.strip()],
    "DEFAULT_ACCOUNT": "000000000000",
    # Run the control plane inside the web server process (the lifespan of the ASGI app).
    "CONTROL_PLANE": os.environ.get("FARGATE_LAB_CONTROL_PLANE", "1") == "1",
    # The warm pool: instances kept ready, each as big as its Docker engine (see INSTANCE_CPU).
    # FARGATE_LAB_WARM_POOL (or the older name FARGATE_LAB_FLEET_INSTANCES) sets it.
    "FLEET_INSTANCES": _env_int("FARGATE_LAB_WARM_POOL", _env_int("FARGATE_LAB_FLEET_INSTANCES", 4)),
    # The fleet grows beyond the warm pool when tasks fit nowhere, up to this many instances;
    # a launched instance boots this long; one idle this long beyond the pool is recycled.
    "MAX_INSTANCES": _env_int("FARGATE_LAB_MAX_INSTANCES", 16),
    "INSTANCE_BOOT_SECONDS": _env_float("FARGATE_LAB_INSTANCE_BOOT_SECONDS", 2.0),
    "INSTANCE_IDLE_SECONDS": _env_float("FARGATE_LAB_INSTANCE_IDLE_SECONDS", 30.0),
    # More Docker engines for the fleet (comma-separated URLs: unix:///…, tcp://host:2376 with
    # ?tlscacert=…&tlscert=…&tlskey=…, ssh://user@host); instances spread over DOCKER_URL and these.
    "ENGINES": [u.strip() for u in os.environ.get("FARGATE_LAB_ENGINES", "").split(",") if u.strip()],
    # An instance's CPU units and MiB; None (the default): the engine's own CPUs x 1024 and
    # memory, as `docker info` reports them. Either way no task gets more than its engine has.
    "INSTANCE_CPU": _env_int("FARGATE_LAB_INSTANCE_CPU", None),
    "INSTANCE_MEMORY": _env_int("FARGATE_LAB_INSTANCE_MEMORY", None),
    # The addresses of the lab's networks, a /24 each (one per account and cluster); "" leaves
    # them to Docker's default pools, which hold about 30 networks.
    "NETWORK_POOL": os.environ.get("FARGATE_LAB_NETWORK_POOL", "10.224.0.0/12"),
    # Docker engine URL for the fleet ("" = DOCKER_HOST or the local socket).
    "DOCKER_URL": os.environ.get("FARGATE_LAB_DOCKER_URL", ""),
    # Host address that task ports are published on ("": the lab's HOST; see orchestrator/network.py).
    "PUBLISH_ADDRESS": os.environ.get("FARGATE_LAB_PUBLISH_ADDRESS", ""),
    # The address students reach the lab at, in URLs and load balancer DNS names ("": HOST, or
    # with HOST=0.0.0.0 this machine's address on its default route).
    "ADVERTISE_ADDRESS": os.environ.get("FARGATE_LAB_ADVERTISE_ADDRESS", ""),
    # Worker threads of the agents (parallel container starts and stops).
    "WORKERS": _env_int("FARGATE_LAB_WORKERS", 8),
    # The most of those workers one account's tasks take at once (the rest stay free for the
    # other accounts' tasks); default three quarters of them, and no more than this machine's
    # CPUs: a container start is CPU-bound in Docker, so one account starting more containers
    # at once than there are cores only makes another account's start wait (bench_noisy_neighbour).
    # The same number bounds one account's container operations in progress on an engine
    # (orchestrator/docker_gate.py), and its fair share of it while others start tasks.
    "TENANT_WORKERS": _env_int("FARGATE_LAB_TENANT_WORKERS", max(1, min(_env_int("FARGATE_LAB_WORKERS", 8) * 3 // 4,
                                                                       os.cpu_count() or 1))),
    # Worker threads of the cluster and capacity managers (service and placement passes).
    "SCHEDULER_WORKERS": _env_int("FARGATE_LAB_SCHEDULER_WORKERS", 2),
    # Full relist of desired and observed state, in case an event was missed.
    "RESYNC_SECONDS": _env_float("FARGATE_LAB_RESYNC_SECONDS", 10.0),
    # How often the leader samples each RUNNING task's CPU and memory from Docker (task_metrics).
    "METRICS_SAMPLE_SECONDS": _env_float("FARGATE_LAB_METRICS_SAMPLE_SECONDS", 5.0),
    # The service autoscaler's metric window: target tracking scales out once the average over it
    # passes the target, and in once the average over five of them is below 90 % of it (AWS: 3
    # and 15 one-minute datapoints).
    "SCALING_METRIC_WINDOW_SECONDS": _env_float("FARGATE_LAB_SCALING_METRIC_WINDOW_SECONDS", 60.0),
    # Leader election among several server processes (a lease in the state database).
    "LEASE_SECONDS": _env_float("FARGATE_LAB_LEASE_SECONDS", 15.0),
    # A task without a health check counts as healthy this long after RUNNING (ECS: 40 s).
    "HEALTH_GRACE_SECONDS": _env_float("FARGATE_LAB_HEALTH_GRACE_SECONDS", 40.0),
    # Fargate Spot (orchestrator/spot.py): interruptions drawn per FARGATE_SPOT task and hour
    # (0: only a teacher's, from the task page), and how long each one's warning lasts (ECS: 120 s).
    "SPOT_INTERRUPTION_RATE": _env_float("FARGATE_LAB_SPOT_INTERRUPTION_RATE", 0.0),
    "SPOT_WARNING_SECONDS": _env_float("FARGATE_LAB_SPOT_WARNING_SECONDS", 120.0),
    # The warm pool of task sandboxes (orchestrator/sandbox_pool.py): pause containers kept ready
    # per Docker engine and cluster network, whose network a task's containers join (0: none).
    # Not FARGATE_LAB_WARM_POOL, which is the fleet's warm pool of instances.
    "SANDBOX_POOL": _env_int("FARGATE_LAB_SANDBOX_POOL", 0),
    # Default stopTimeout when a container definition gives none (ECS: 30 s).
    "STOP_TIMEOUT_SECONDS": _env_int("FARGATE_LAB_STOP_TIMEOUT", 30),
    # What one task may take of the host (a classroom shares it): port mappings (each one a
    # docker-proxy process of a few MB) per container and per task, processes per container
    # (Docker's PidsLimit), a json-file container's output kept on disk (rotated at TASK_LOG_MAX_SIZE,
    # keeping TASK_LOG_MAX_FILE files), and the bytes a second the paced log reader takes from
    # each container of a local engine before the container's writes wait (0: no pacing, every
    # container on json-file; orchestrator/paced_logs.py).
    "MAX_CONTAINER_PORTS": _env_int("FARGATE_LAB_MAX_CONTAINER_PORTS", 10),
    "MAX_TASK_PORTS": _env_int("FARGATE_LAB_MAX_TASK_PORTS", 20),
    "TASK_PIDS_LIMIT": _env_int("FARGATE_LAB_TASK_PIDS_LIMIT", 1024),
    "TASK_LOG_MAX_SIZE": os.environ.get("FARGATE_LAB_TASK_LOG_MAX_SIZE", "10m"),
    "TASK_LOG_MAX_FILE": _env_int("FARGATE_LAB_TASK_LOG_MAX_FILE", 3),
    "TASK_LOG_PACE": _env_int("FARGATE_LAB_TASK_LOG_PACE", 65536),
    "DEMO_IMAGE": os.environ.get("FARGATE_LAB_DEMO_IMAGE", "fargate-lab/demo:latest"),
    # ECR: the lab's own OCI registry (Debian's docker-registry, started by the lab), reached
    # through its token-checking gate on <REGISTRY_LISTEN_ADDRESS>:<REGISTRY_PORT> ("": the lab's
    # HOST; always on 127.0.0.1 too, where the lab's own engine pulls). Not 5000: that is where
    # the Debian package's system service listens, which the lab never uses.
    "REGISTRY_PORT": _env_int("FARGATE_LAB_REGISTRY_PORT", 5055),
    "REGISTRY_LISTEN_ADDRESS": os.environ.get("FARGATE_LAB_REGISTRY_LISTEN_ADDRESS", ""),
    "REGISTRY_ROOT": os.environ.get("FARGATE_LAB_REGISTRY_ROOT", ""),
    "REGISTRY_BIN": os.environ.get("FARGATE_LAB_REGISTRY_BIN", ""),
    # Load balancers: the address listeners bind, and a new target group's deregistration
    # delay (AWS: 300 s; ModifyTargetGroupAttributes changes it per group).
    "ELB_LISTEN_ADDRESS": os.environ.get("FARGATE_LAB_ELB_LISTEN_ADDRESS", ""),  # "": the lab's HOST
    "ELB_DEREGISTRATION_DELAY": _env_int("FARGATE_LAB_ELB_DEREGISTRATION_DELAY", 300),
    # Login throttling: this many failed logins for one user name, or from one address, within
    # the window refuse every login for it until the window ends.
    "LOGIN_FAILURES_PER_USER": _env_int("FARGATE_LAB_LOGIN_FAILURES_PER_USER", 5),
    "LOGIN_FAILURES_PER_ADDRESS": _env_int("FARGATE_LAB_LOGIN_FAILURES_PER_ADDRESS", 20),
    "LOGIN_THROTTLE_SECONDS": _env_int("FARGATE_LAB_LOGIN_THROTTLE_SECONDS", 300),
    # Traces (a request's steps through the control plane) are pruned when older than this
    # many seconds or beyond this many, the oldest first.
    "TRACE_RETENTION_SECONDS": _env_float("FARGATE_LAB_TRACE_RETENTION_SECONDS", 86400.0),
    "TRACE_RETENTION_COUNT": _env_int("FARGATE_LAB_TRACE_RETENTION_COUNT", 5000),
    # The activity feed is pruned the same way (orchestrator/retention.py), and a STOPPED task
    # is forgotten this long after it stopped, as ECS forgets it after about an hour.
    "ACTIVITY_RETENTION_SECONDS": _env_float("FARGATE_LAB_ACTIVITY_RETENTION_SECONDS", 86400.0),
    "ACTIVITY_RETENTION_COUNT": _env_int("FARGATE_LAB_ACTIVITY_RETENTION_COUNT", 50000),
    # AWS's pace for task launches (orchestrator/pacing.py): off by default, so the lab starts
    # tasks as fast as the machine allows; on, RunTask beyond the bucket is ThrottlingException.
    "AWS_PACING": _env_int("FARGATE_LAB_AWS_PACING", 0),
    "TASK_LAUNCH_RATE": _env_float("FARGATE_LAB_TASK_LAUNCH_RATE", 20.0),
    "TASK_LAUNCH_BURST": _env_int("FARGATE_LAB_TASK_LAUNCH_BURST", 100),
    "STOPPED_TASK_RETENTION_SECONDS": _env_float("FARGATE_LAB_STOPPED_TASK_RETENTION_SECONDS", 3600.0),
    # Service quotas of every account but the default one (which keeps AWS's defaults), sized
    # so that 30 students fit on one machine of 2 cores (see orchestrator/quotas.py); a teacher
    # changes them per account.
    "QUOTA_FARGATE_ON_DEMAND_VCPU": _env_float("FARGATE_LAB_QUOTA_FARGATE_ON_DEMAND_VCPU", 1.0),
    "QUOTA_FARGATE_SPOT_VCPU": _env_float("FARGATE_LAB_QUOTA_FARGATE_SPOT_VCPU", 1.0),
    "QUOTA_CLUSTERS": _env_int("FARGATE_LAB_QUOTA_CLUSTERS", 5),
    "QUOTA_SERVICES_PER_CLUSTER": _env_int("FARGATE_LAB_QUOTA_SERVICES_PER_CLUSTER", 5),
    "QUOTA_TASKS_PER_SERVICE": _env_int("FARGATE_LAB_QUOTA_TASKS_PER_SERVICE", 10),
    # The cluster manager's passes kept per service (the service page's reconcile loop).
    "RECONCILE_PASSES_KEPT": _env_int("FARGATE_LAB_RECONCILE_PASSES_KEPT", 20),
    # CloudWatch Logs: what the lab stores, so that no stream fills the disk. A stream keeps at
    # most LOGS_STREAM_MAX_BYTES of events and a group LOGS_GROUP_MAX_BYTES (as CloudWatch counts
    # them: UTF-8 bytes + 26 each), the oldest going first; an account has at most LOGS_MAX_GROUPS
    # groups per region and a group LOGS_MAX_STREAMS streams (LimitExceededException beyond).
    "LOGS_STREAM_MAX_BYTES": _env_int("FARGATE_LAB_LOGS_STREAM_MAX_BYTES", 8 * 1024 * 1024),
    "LOGS_GROUP_MAX_BYTES": _env_int("FARGATE_LAB_LOGS_GROUP_MAX_BYTES", 64 * 1024 * 1024),
    "LOGS_MAX_GROUPS": _env_int("FARGATE_LAB_LOGS_MAX_GROUPS", 500),
    "LOGS_MAX_STREAMS": _env_int("FARGATE_LAB_LOGS_MAX_STREAMS", 5000),
    # The most lines a second the agent ships from one awslogs container (the rest are dropped
    # and counted in the stream), so that one task's flood cannot take the state database.
    "LOGS_SHIP_LINES_PER_SECOND": _env_int("FARGATE_LAB_LOGS_SHIP_LINES_PER_SECOND", 1000),
}
