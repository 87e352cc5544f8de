"""The lab's settings with Django's stock SQLite engine: bench_labs.py's baseline, to measure
the state database's own engine (orchestrator/state_database) against in the same run."""
from config.settings import *  # noqa: F401,F403
from config.settings import DATABASES

DATABASES["default"]["ENGINE"] = "django.db.backends.sqlite3"
