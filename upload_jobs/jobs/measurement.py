"""The measure step: the size of what goes up, and the startup cost of the source and of the
upload (what the optimization bought, recorded on the attempt)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from upload_jobs.jobs.files import upload_size_bytes
from upload_jobs.media.hls import HlsPackage
from upload_jobs.media.mp4 import Mp4Layout
from upload_jobs.media.startup import StartupCost, startup_cost, startup_cost_of_body
from upload_jobs.storage.upload_body import UploadBody


@dataclass(frozen=True)
class MeasuredLayouts:
    """The layouts of the source and of the upload as the optimize step read them (either may
    be unknown, then the measure step walks that file itself)."""

    source: Mp4Layout | None = None
    upload: Mp4Layout | None = None


NOTHING_KNOWN = MeasuredLayouts()


@dataclass(frozen=True)
class UploadMeasurement:
    """The upload's size, and what a player fetches before the first frame, before and after."""

    size_bytes: int
    source_startup: StartupCost | None
    uploaded_startup: StartupCost | None
    # Why a startup cost is missing, when one is: it is measured, never a reason to fail.
    unmeasured: str | None = None


def measure_upload(
    source: Path,
    body: UploadBody,
    known: MeasuredLayouts = NOTHING_KNOWN,
    package: HlsPackage | None = None,
) -> UploadMeasurement:
    """Measure `body` (`SourceChanged` if its file changed since it was made), or every file of
    an HLS `package`, and the startup cost of `source` and of the upload, from the `known`
    layouts where given; an unreadable index leaves a cost unknown, nothing more."""
    if package is not None:
        return _measure_package(source, package, known)
    size = upload_size_bytes(body)
    try:
        uploaded = startup_cost_of_body(body, known.upload)
        same = body.is_whole_file and body.path == source
        before = uploaded if same else startup_cost(source, known.source)
    except OSError as exc:
        return UploadMeasurement(size, None, None, f"cannot read it: {exc.strerror or exc}")
    return UploadMeasurement(size, before, uploaded)


# An HLS player's requests before the first frame: master, media playlist, init, first segment.
HLS_STARTUP_REQUESTS = 4


def _measure_package(
    source: Path, package: HlsPackage, known: MeasuredLayouts
) -> UploadMeasurement:
    try:
        size = package.total_bytes
        first = package.first_offered
        init_bytes = (package.directory / first.name / first.playlist.init_uri).stat().st_size
        uploaded = StartupCost(package.startup_bytes, 0, init_bytes, HLS_STARTUP_REQUESTS)
        before = startup_cost(source, known.source)
    except OSError as exc:
        return UploadMeasurement(0, None, None, f"cannot read it: {exc.strerror or exc}")
    return UploadMeasurement(size, before, uploaded)
