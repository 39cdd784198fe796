"""Which job a step's task run belongs to, in its name: a sweep runs many jobs' steps in its
own flow run, and the Prefect UI still shows each step of each job (`claim_job-job-7`).

A name, not a tag: tagged task runs ask the server for tag concurrency slots (tasks/__init__.py);
a tag per job brought back those 1-2 s stalls, measured again with bench/.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from prefect.runtime import task_run

_current_job: ContextVar[int | None] = ContextVar("upload_job_being_run", default=None)


@contextmanager
def steps_of_job(job_id: int) -> Iterator[None]:
    """Task runs started inside the block (in this context) are named after `job_id`."""
    token = _current_job.set(job_id)
    try:
        yield
    finally:
        _current_job.reset(token)


def step_run_name() -> str:
    """`optimize_for_streaming-job-7`: the task's name and the job it works on."""
    job_id = _current_job.get()
    name = str(task_run.task_name)
    return name if job_id is None else f"{name}-job-{job_id}"
