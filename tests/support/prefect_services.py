"""Prefect server services the tests never need, switched off on the servers they start."""

from __future__ import annotations

# Schedules, automations, late and paused runs, worker health, cleanups: no test waits for any of
# them, and on a SQLite-backed server each is one more writer contending for the database lock
# (Prefect's server, 3.8.8 as 3.9.1, then stalls and answers 503; PrefectHQ/prefect#23051). Runs,
# task runs, events and logs are still recorded as on any server.
UNUSED_SERVER_SERVICES = (
    "SCHEDULER",
    "TRIGGERS",
    "LATE_RUNS",
    "PAUSE_EXPIRATIONS",
    "CANCELLATION_CLEANUP",
    "FOREMAN",
    "REPOSSESSOR",
    "CLEANUP_RECONCILER",
)


def unused_services_off() -> dict[str, str]:
    """Environment variables that switch the unused services off on a server started with them."""
    return {f"PREFECT_SERVER_SERVICES_{name}_ENABLED": "false" for name in UNUSED_SERVER_SERVICES}
