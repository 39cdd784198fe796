"""Where a profiled run's time went: py-spy's collapsed stacks summed per job step.

Samples are taken from every thread, waiting or not, 100 a second, so a step's share is
thread-seconds: with two jobs at a time, two threads add up. The rest of the stacks are summed by
the outermost frame of the project's own code, which says which line of a flow or task was
waiting or working.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

SAMPLES_PER_SECOND = 100
# The step functions, as task runs call them (tasks/*.py), plus the Prefect engine around them.
STEPS = (
    "claim_job", "check_source_file", "optimize_for_streaming", "measure_file_size",
    "upload_to_spaces", "mark_job_completed", "mark_job_failed", "cleanup_temp_file",
)  # fmt: skip
_FRAME = re.compile(r"^(?P<function>[^ ]+) \((?P<file>[^:]+):(?P<line>\d+)\)$")


def step_seconds(raw_profile: Path) -> dict[str, float]:
    """Thread-seconds inside each step's function, and in the task engine around the steps."""
    totals: Counter[str] = Counter()
    for stack, samples in _stacks(raw_profile):
        functions = [_function(frame) for frame in stack]
        step = next((name for name in functions if name in STEPS), None)
        if step is not None:
            totals[step] += samples
        elif "run_upload_steps" in functions:
            # In a job's thread but outside every step: Prefect starting and ending task runs.
            totals["task engine between steps"] += samples
    return {name: count / SAMPLES_PER_SECOND for name, count in totals.most_common()}


def _stacks(raw_profile: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in raw_profile.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            # The first entry names the thread ("thread (123): name"), the rest are frames.
            stacks.append((stack.split(";")[1:], int(count)))
    return stacks


def _function(frame: str) -> str:
    match = _FRAME.match(frame)
    return match.group("function").rsplit(".", 1)[-1] if match else frame
