"""bench_labs.py's baseline for the write lock's priority: tick_timing_settings with every turn at
the write lock taken in the order asked, as before API calls and checks' ticks went first
(``TurnLock``'s ``urgent`` ignored)."""
from tick_timing_settings import *  # noqa: F401,F403

from orchestrator.state_database import base as _engine

_acquire = _engine.TurnLock.acquire
_engine.TurnLock.acquire = lambda self, timeout=-1, urgent=False: _acquire(self, timeout)
