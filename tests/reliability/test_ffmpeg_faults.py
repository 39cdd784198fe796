"""Real ffmpeg killed mid-remux, and real ffmpeg out of disk space: the run falls back to the
original file, the job completes, the temp folder is gone and the source is unchanged."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from flows.retry_upload import retry_upload_job
from tests.conftest import one_database, sha256_of
from tests.support.bucket_audit import one_job_outcome
from tests.support.s3_backends import S3Backend
from upload_jobs.jobs.models import JobStatus
from upload_jobs.jobs.store import JobStore
from upload_jobs.settings import Settings, get_settings
from upload_jobs.storage.objects import find_existing_object
from upload_jobs.storage.spaces import make_s3_client

# What these test (ffmpeg dying) does not depend on S3: moto only.
pytestmark = [
    pytest.mark.flow,
    pytest.mark.usefixtures("prefect_server"),
    one_database,
    pytest.mark.moto_only,
]

# Real ffmpeg, reading its input at the video's own pace (`-re`: the 2 s clip takes 2 s however
# busy the machine is), SIGKILLed half a second after its output got its first bytes, as the OOM
# killer would; the wrapper then dies the same way so the caller sees the signal. KILL_LOG gets
# ffmpeg's exit status (137: killed before it finished) and how much it had written.
KILLED_MID_REMUX = r"""#!/usr/bin/env bash
out="${@: -1}"; out="${out#file:}"
args=(); paced=""
for arg in "$@"; do
  if [ "$arg" = "-i" ] && [ -z "$paced" ]; then args+=(-re); paced=1; fi
  args+=("$arg")
done
"$REAL_FFMPEG" "${args[@]}" &
pid=$!
for _ in $(seq 1 1000); do [ -s "$out" ] && break; sleep 0.01; done
sleep 0.5
kill -KILL "$pid"
wait "$pid"; status=$?
echo "$status $(stat -c %s "$out")" >> "$KILL_LOG"
[ "$status" = 137 ] && kill -KILL $$
exit "$status"
"""
# Real ffmpeg allowed to write at most FSIZE_KB KiB per file, with SIGXFSZ ignored so a write
# past it fails with EFBIG, the way a full disk fails with ENOSPC.
OUT_OF_DISK = r"""#!/usr/bin/env bash
trap '' XFSZ
ulimit -f "$FSIZE_KB"
exec "$REAL_FFMPEG" "$@"
"""


def wrapped_ffmpeg(
    tmp_path: Path, script: str, real_ffmpeg: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Make the runs use `script` as ffmpeg, with the real binary in $REAL_FFMPEG."""
    wrapper = tmp_path / "ffmpeg-wrapper"
    wrapper.write_text(script)
    wrapper.chmod(0o755)
    monkeypatch.setenv("REAL_FFMPEG", real_ffmpeg)
    monkeypatch.setenv("UPLOAD_JOBS_FFMPEG", str(wrapper))
    get_settings.cache_clear()


def run_and_audit(
    settings: Settings, s3_server: S3Backend, source: Path, name: str, fault: str
) -> str:
    """Run the job's flow; check nothing was lost; return the recorded fallback reason."""
    store = JobStore(settings.database_url)
    original = sha256_of(source)
    job = store.add_job(str(source), f"videos/{source.name}", JobStatus.FAILED)
    assert job.id is not None

    state = retry_upload_job(job.id, return_state=True)

    job = store.get_job(job.id)
    [attempt] = store.list_attempts(job.id)
    stored = find_existing_object(make_s3_client(settings), settings.bucket, job.object_key)
    outcome = one_job_outcome(
        fault,
        settings=settings,
        server=s3_server,
        job=job,
        source=source,
        original_sha256=original,
        details={
            "fallback_reason": attempt.fallback_reason,
            "optimized": job.optimized_for_streaming,
        },
    )
    outcome.save(name)
    assert state.is_completed() and job.status == JobStatus.COMPLETED
    assert job.optimized_for_streaming is False
    # What went up is the original, byte for byte.
    assert stored is not None and stored.sha256 == original
    assert stored.size_bytes == source.stat().st_size == job.uploaded_size_bytes
    assert (outcome.temp_files_left, outcome.sources_changed, outcome.parts_left) == (0, 0, 0)
    return attempt.fallback_reason or ""


def test_ffmpeg_killed_mid_remux_falls_back_to_the_original(
    settings: Settings,
    s3_server: S3Backend,
    clip: Callable[[str, str], Path],
    ffmpeg: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kill_log = tmp_path / "kills"
    monkeypatch.setenv("KILL_LOG", str(kill_log))
    wrapped_ffmpeg(tmp_path, KILLED_MID_REMUX, ffmpeg, monkeypatch)
    source = clip("mov_pcm", "killed mid-remux.MOV")  # QuickTime with PCM: ffmpeg remuxes it

    reason = run_and_audit(
        settings, s3_server, source, "ffmpeg-killed", "ffmpeg SIGKILLed mid-remux"
    )

    status, written = kill_log.read_text().split()
    assert status == "137", "ffmpeg was killed before it finished"
    assert 0 < int(written) < source.stat().st_size, "it had written part of the output"
    assert "killed by SIGKILL" in reason


def test_ffmpeg_out_of_disk_falls_back_to_the_original(
    settings: Settings,
    s3_server: S3Backend,
    clip: Callable[[str, str], Path],
    ffmpeg: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = clip("mov_pcm", "disk full.MOV")  # QuickTime with PCM: ffmpeg remuxes it
    # Half the video fits: ffmpeg fails while writing media, not while opening the file.
    monkeypatch.setenv("FSIZE_KB", str(source.stat().st_size // 2 // 1024))
    wrapped_ffmpeg(tmp_path, OUT_OF_DISK, ffmpeg, monkeypatch)

    reason = run_and_audit(
        settings, s3_server, source, "ffmpeg-out-of-disk", "ffmpeg out of disk (RLIMIT_FSIZE)"
    )

    # The product's words, whichever ffmpeg: 9.0.2 exits non-zero, 5.1 exits 0 leaving an
    # output without its index, which the validation refuses.
    assert reason.startswith(
        ("ffmpeg failed with exit status", "remuxed output failed validation")
    ), reason
