"""Prefect's runner as `upload-jobs serve` runs it, stopping without rewriting what happened.

Prefect 3.9.1's runner, told to stop, cancels every flow run it still tracks and forces the
Cancelled state on each: a run that had just completed, whose process was still exiting, showed
Cancelled ("Runner is shutting down.") 3 times out of 3 after a SIGTERM. Here a run whose state
is already final is left alone (its process exits by itself), and a run still going is stopped
the way `upload-jobs retry` stops on Ctrl-C: SIGTERM, its job given back (failed,
`interrupted`, due again at once), the run Cancelled with a message that says so. Ctrl-C stops
serving the same way as SIGTERM; a second one stops at once.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

from prefect.client.schemas.objects import FlowRun
from prefect.runner import Runner

STOPPED_MESSAGE = (
    "Interrupted: `upload-jobs serve` was stopped while this run was going. Its upload job was "
    "given back (failed, interrupted, due again now)."
)
# How long a finished run's process is given to exit before serving ends (it is killed then).
FINISHED_RUN_EXIT_SECONDS = 10.0
EXIT_AT_ONCE = 130

logger = logging.getLogger(__name__)


class ServingRunner(Runner):
    """A runner whose shutdown never changes a finished run's state."""

    def __init__(self, *args: Any, on_stopping: Callable[[str], None] | None = None,
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(*args, **kwargs)
        self._on_stopping = on_stopping

    async def __aenter__(self) -> ServingRunner:
        await super().__aenter__()
        _never_cancel_a_finished_run(self)
        return self

    async def cancel_all(self) -> None:
        """Stop the runs still going (their jobs are given back); leave finished ones be."""
        for flow_run_id in self._process_manager.flow_run_ids():
            try:
                flow_run = await self._client.read_flow_run(flow_run_id)
            except Exception:  # the server went away: its processes are killed on exit anyway
                logger.exception("Could not read flow run %s while stopping", flow_run_id)
                continue
            if _finished(flow_run):
                await self._process_manager.wait_for_exit(
                    flow_run_id, grace_seconds=FINISHED_RUN_EXIT_SECONDS
                )
                continue
            await self._cancellation_manager.cancel(flow_run, state_msg=STOPPED_MESSAGE)

    def handle_sigterm(self, signum: int | None = None, frame: FrameType | None = None,
                       *args: Any) -> None:  # fmt: skip
        """SIGTERM or Ctrl-C: stop polling, stop the runs still going, pause the schedule; a
        second signal exits at once."""
        name = signal.Signals(signum).name if signum else "SIGTERM"
        if self.stopping:
            os._exit(EXIT_AT_ONCE)
        if not self.started or self._loop is None:
            raise SystemExit(0)
        self.stopping = True
        if self._on_stopping is not None:
            self._on_stopping(name)
        self.execute_in_background(self.astop)


def _finished(flow_run: FlowRun) -> bool:
    return flow_run.state is not None and flow_run.state.is_final()


def _never_cancel_a_finished_run(runner: ServingRunner) -> None:
    """The runner's last step of a cancellation forces Cancelled: not over a final state (a run
    that completed between the check above and its process being stopped)."""
    proposer = runner._state_proposer
    force_cancelled = proposer.propose_cancelled

    async def unless_finished(
        flow_run: FlowRun, state_updates: dict[str, Any] | None = None
    ) -> bool:
        current = await runner._client.read_flow_run(flow_run.id)
        if _finished(current):
            return False
        return await force_cancelled(flow_run, state_updates)

    proposer.propose_cancelled = unless_finished  # type: ignore[method-assign]
