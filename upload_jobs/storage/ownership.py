"""Whose object is at a key: every upload names its job in the object's metadata, and no upload
replaces an object that is not its own job's."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from upload_jobs.errors import KeyConflict
from upload_jobs.storage.objects import OWNER_METADATA_KEY, ExistingObject


@dataclass(frozen=True)
class KeyOwner:
    """The job an upload is for, and the sha256s of what it uploaded before: its objects from
    before uploads named their job carry only those."""

    job_id: int
    uploaded_sha256s: Collection[str] = field(default_factory=frozenset)

    def metadata(self) -> dict[str, str]:
        """The metadata naming this job, sent with every upload."""
        return {OWNER_METADATA_KEY: str(self.job_id)}

    def owns(self, existing: ExistingObject) -> bool:
        """Whether the object is this job's: it names the job, or names none and holds bytes
        this job uploaded (sha256 metadata from before objects named their job)."""
        if existing.owner is not None:
            return existing.owner == str(self.job_id)
        return existing.sha256 is not None and existing.sha256 in self.uploaded_sha256s


def holder_of(existing: ExistingObject) -> str:
    """What holds a key, for people: another job's video, or a file put there otherwise."""
    modified = existing.last_modified
    when = f", last modified {modified:%Y-%m-%d %H:%M} UTC" if modified else ""
    facts = f"({existing.size_bytes} bytes{when})"
    if existing.owner is not None and existing.owner.isdigit():
        return f"upload job {existing.owner}'s video {facts}"
    if existing.owner is None and existing.sha256 is not None:
        return f"an earlier upload-jobs upload that names no job and is not this job's {facts}"
    return f"a file upload-jobs did not upload {facts}"


def key_conflict(existing: ExistingObject, bucket: str, owner: KeyOwner) -> KeyConflict:
    """The refusal to write over `existing`: what holds the key, and what to do."""
    return KeyConflict(
        f"s3://{bucket}/{existing.key} already holds {holder_of(existing)}: it was not "
        f"overwritten. Give upload job {owner.job_id} another key (`upload-jobs set-key "
        f"{owner.job_id} KEY`), or move that object away, then retry."
    )
