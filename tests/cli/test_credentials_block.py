"""The Spaces key in a prefect-aws `AwsCredentials` block: `upload-jobs setup
--credentials-block` saves it from the environment, and a run with no key (nor endpoint) of its
own uploads with it, on a real Prefect server and moto's S3 over HTTP."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from prefect_aws import AwsCredentials

# Imported before the first CliRunner call (Prefect binds its console handler at import).
from flows.retry_upload import retry_upload_job
from tests.conftest import TEST_ACCESS_KEY, TEST_SECRET_KEY
from tests.support.command_line import invoke
from upload_jobs.jobs.models import JobStatus
from upload_jobs.jobs.store import JobStore
from upload_jobs.settings import Settings, get_settings
from upload_jobs.storage.credentials import forget_credentials_blocks

# What these test (the CLI's answers) does not depend on S3: moto only.
pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_server"), pytest.mark.moto_only]
one_database = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def without_aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No key anywhere boto3's chain would find one."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def use_block(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv("UPLOAD_JOBS_AWS_CREDENTIALS_BLOCK", name)
    get_settings.cache_clear()
    forget_credentials_blocks()


def block_row(output: str) -> dict[str, str]:
    [row] = [r for r in json.loads(output) if r["kind"] == "AWS credentials block"]
    return row


@one_database
def test_setup_saves_the_key_and_a_run_with_no_key_of_its_own_uploads_with_it(
    settings: Settings, clip: Callable[[str, str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"spaces-{uuid.uuid4().hex[:8]}"
    code, output = invoke("setup", "--credentials-block", name, "--json")
    assert code == 0, output
    assert block_row(output)["action"] == "created"
    assert TEST_ACCESS_KEY not in output and TEST_SECRET_KEY not in output
    code, output = invoke("setup", "--credentials-block", name, "--json")
    assert block_row(output)["action"] == "unchanged"
    code, text = invoke("setup", "--credentials-block", name)
    assert f"UPLOAD_JOBS_AWS_CREDENTIALS_BLOCK={name}" in text and TEST_SECRET_KEY not in text

    block = AwsCredentials.load(name, _sync=True)
    assert block.aws_access_key_id == TEST_ACCESS_KEY
    assert block.aws_secret_access_key is not None
    assert block.aws_secret_access_key.get_secret_value() == TEST_SECRET_KEY
    assert block.aws_client_parameters.endpoint_url == settings.endpoint_url
    assert TEST_SECRET_KEY not in repr(block)

    # A worker that has only the block's name: no AWS_* variable, no endpoint setting.
    without_aws_environment(monkeypatch)
    monkeypatch.delenv("UPLOAD_JOBS_ENDPOINT_URL")
    use_block(monkeypatch, name)
    job = JobStore(settings.database_url).add_job(str(clip("faststart", "a.mp4")), "videos/a.mp4")
    assert job.id is not None
    retry_upload_job(job.id, return_state=True)
    done = JobStore(settings.database_url).get_job(job.id)
    assert done.status == JobStatus.COMPLETED, done.last_error

    # A rotated key saved again is "updated", and the next client uses it.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAROTATEDKEY00001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "rotated-secret-0123456789")
    code, output = invoke("setup", "--credentials-block", name, "--json")
    assert block_row(output)["action"] == "updated"
    assert AwsCredentials.load(name, _sync=True).aws_access_key_id == "AKIAROTATEDKEY00001"


@one_database
def test_a_block_that_is_not_there_fails_the_job_saying_what_to_do(
    settings: Settings, clip: Callable[[str, str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    without_aws_environment(monkeypatch)
    use_block(monkeypatch, "no-such-block-here")
    job = JobStore(settings.database_url).add_job(str(clip("faststart", "b.mp4")), "videos/b.mp4")
    assert job.id is not None
    retry_upload_job(job.id, return_state=True)
    failed = JobStore(settings.database_url).get_job(job.id)
    assert (failed.status, failed.error_kind) == (JobStatus.FAILED, "credentials_unavailable")
    assert "upload-jobs setup --credentials-block no-such-block-here" in (failed.last_error or "")
    code, output = invoke("reconcile")
    assert code == 1 and "No AWS credentials block 'no-such-block-here'" in output, output


def test_setup_without_a_lasting_key_in_the_environment_says_what_to_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    without_aws_environment(monkeypatch)
    code, output = invoke("setup", "--credentials-block", "empty-handed")
    assert code == 1, output
    assert "No AWS credentials in this environment to save as 'empty-handed'" in output
    assert "Traceback" not in output

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIATEMPORARYKEY0001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "temporary-secret-0123456789")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "temporary-session-token-0123456789")
    code, output = invoke("setup", "--credentials-block", "temporary")
    assert code == 1 and "This environment's key is temporary" in output, output
    assert "temporary-session-token-0123456789" not in output
