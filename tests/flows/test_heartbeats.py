"""In-process runs skip Prefect's heartbeat thread (its join costs up to 1 s per run)."""

from __future__ import annotations

import threading

from prefect.settings import get_current_settings

from flows.heartbeats import without_heartbeats


def heartbeat_seconds() -> int | None:
    """The heartbeat interval a flow run started now would use (None: no heartbeat thread)."""
    return get_current_settings().flows.heartbeat_frequency


def test_runs_started_inside_send_no_heartbeats_and_others_still_do() -> None:
    before = heartbeat_seconds()
    seen_elsewhere: list[int | None] = []
    with without_heartbeats():
        inside = heartbeat_seconds()
        # Another thread (another run of the web page's pool, say) keeps the default.
        other = threading.Thread(target=lambda: seen_elsewhere.append(heartbeat_seconds()))
        other.start()
        other.join()
    assert before is not None and inside is None
    assert seen_elsewhere == [before] and heartbeat_seconds() == before
