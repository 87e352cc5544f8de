"""The lab's settings with the check runner's timing log on (``classroom.runner.timing`` at INFO,
whatever FARGATE_LAB_LOG says): bench_labs.py splits each tick's latency with it; and every turn at
the write lock logged (``orchestrator.state_database.turns``), which it counts by who asked."""
from config.settings import *  # noqa: F401,F403
from config.settings import LOGGING

LOGGING["loggers"]["classroom.runner.timing"] = {"handlers": ["console"], "level": "INFO", "propagate": False}
LOGGING["loggers"]["orchestrator.state_database.turns"] = {"handlers": ["console"], "level": "INFO", "propagate": False}
