"""The deployment triggers that retry a job after a transient failure, on its event.

Prefect's run-deployment action waits a fixed `schedule_after`, and the backoff doubles per
attempt, so there is one trigger per backoff a retry can follow (1, 2, 4 and 8 minutes for the
default five attempts): each matches the failures labelled with its backoff
(`upload-job.retry-after-seconds`, README "Job events") and schedules the run that long after
the event, when the job is due. A failure that is permanent, or leaves no attempt, is labelled
"never" and matches none. `prefect.yaml` holds the same triggers for the default policy.
"""

from __future__ import annotations

from datetime import timedelta

from prefect.events.schemas.automations import Posture
from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger

from upload_jobs.jobs.events import JOB_FAILED, JOB_RESOURCE_PREFIX, RETRY_AFTER_LABEL
from upload_jobs.jobs.retry_policy import RetryPolicy, seconds_label

# The triggered run's only parameter, from the event (rendered as text; the flow makes it an int).
JOB_ID_FROM_EVENT = "{{ event.payload.job_id }}"


def retry_trigger_name(backoff: timedelta) -> str:
    """The automation's name in the Prefect UI."""
    return f"retry-upload-job: retry {seconds_label(backoff)} s after a transient failure"


def retry_triggers(policy: RetryPolicy) -> list[DeploymentEventTrigger]:
    """One trigger per backoff after which `policy` retries a transient failure."""
    return [
        DeploymentEventTrigger(
            name=retry_trigger_name(backoff),
            description=(
                "Retries an upload job whose attempt failed transiently, once its backoff has "
                "passed; the scheduled sweep stays the safety net."
            ),
            match={
                "prefect.resource.id": f"{JOB_RESOURCE_PREFIX}*",
                RETRY_AFTER_LABEL: seconds_label(backoff),
            },
            expect={JOB_FAILED},
            posture=Posture.Reactive,
            threshold=1,
            within=timedelta(0),
            parameters={"job_id": JOB_ID_FROM_EVENT},
            schedule_after=backoff,
        )
        for backoff in policy.backoffs_with_a_retry_left()
    ]
