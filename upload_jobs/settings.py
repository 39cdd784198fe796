"""Settings from the environment (prefix `UPLOAD_JOBS_`); credentials are never fields here."""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from upload_jobs.errors import InvalidObjectKey
from upload_jobs.storage.object_keys import DEFAULT_KEY_TEMPLATE, key_template_fields

DEFAULT_HOME = Path.home() / ".upload-jobs"


class Preset(StrEnum):
    """How a video is prepared for streaming before upload (README "Presets"): one MP4 as it is,
    with its index first, or fragmented; HLS segments of its own tracks; or an adaptive ladder."""

    FASTSTART = "faststart"
    FRAGMENTED = "fragmented"
    NONE = "none"
    HLS = "hls"
    ABR = "abr"

    @property
    def fallbacks(self) -> tuple[Preset, ...]:
        """The levels tried, in order, before the original goes up as it is."""
        chains = {Preset.ABR: (Preset.ABR, Preset.HLS, Preset.FASTSTART),
                  Preset.HLS: (Preset.HLS, Preset.FASTSTART)}  # fmt: skip
        return chains.get(self, (self,))

    @property
    def many_objects(self) -> bool:
        """Whether the upload is a set of HLS playlists and segments under a key prefix."""
        return self in (Preset.HLS, Preset.ABR)


class Settings(BaseSettings):
    """Everything configurable, read from `UPLOAD_JOBS_*` variables (and `.env`)."""

    model_config = SettingsConfigDict(env_prefix="UPLOAD_JOBS_", env_file=".env", extra="ignore")

    # Out of repr: a PostgreSQL URL may carry a password, and reprs end up in tracebacks.
    database_url: str = Field(default=f"sqlite:///{DEFAULT_HOME / 'jobs.db'}", repr=False)
    bucket: str = "videos"
    endpoint_url: str | None = None
    region: str = "nyc3"
    public_base_url: str | None = None
    preset: Preset = Preset.FASTSTART
    work_dir: Path = DEFAULT_HOME / "work"
    acl: str = "public-read"
    cache_control: str = "public, max-age=86400"
    key_prefix: str = "videos/"
    # How `add` names a job's object: README "Object keys"; fields {name} {stem} {ext} {parent}
    # {job_id} {sha8}. The default keeps the folder, so same-named files of different days differ.
    key_template: str = DEFAULT_KEY_TEMPLATE
    ffmpeg: str | None = None
    # Faststart for a file whose only problem is its index at the end: moved in process and sent
    # from the source, no temp file (README "Streaming optimization"); false: ffmpeg remuxes all.
    faststart_in_process: bool = True
    ffmpeg_timeout_seconds: float = Field(default=3600, gt=0)
    # Video or audio browsers do not decode (HEVC, Motion JPEG, ProRes, AC-3, PCM...) becomes
    # H.264/AAC for faststart and hls, instead of going up in a form that will not play.
    transcode_unplayable: bool = True
    # Transcodes (and HLS ladders) running at once in one process, and the threads each gives
    # x264 (0: x264 decides): CPU work that must not starve the uploads beside it.
    transcode_concurrency: int = Field(default=1, ge=1, le=16)
    transcode_threads: int = Field(default=0, ge=0, le=64)
    # The length HLS segments are cut to (at keyframes: a player needs a whole one before its
    # first frame; media.hls.DEFAULT_SEGMENT_SECONDS says what 2 s buys), and how much of each
    # rendition is compared with the source for PSNR/SSIM (0: none; all of it costs a decode).
    hls_segment_seconds: float = Field(default=2.0, ge=1, le=30)
    quality_sample_seconds: float = Field(default=60.0, ge=0)
    multipart_threshold_bytes: int = Field(default=64 * 1024 * 1024, ge=5 * 1024 * 1024)
    multipart_chunk_bytes: int = Field(default=16 * 1024 * 1024, ge=5 * 1024 * 1024)
    upload_concurrency: int = Field(default=4, ge=1, le=32)
    s3_max_attempts: int = Field(default=3, ge=1)
    # Every PUT and part carries its Content-MD5, which the endpoint verifies: the payload is sent
    # as UNSIGNED-PAYLOAD instead of being read once more to SHA-256-sign it (botocore signs it
    # over plain HTTP otherwise). True for an endpoint that refuses unsigned payloads
    # (`upload-jobs check-endpoint` says whether it does).
    s3_sign_payload: bool = False
    # A failed job is due again after this, doubled per failed attempt up to an hour, and runs
    # at most max_attempts times on its own (sweeps and event-triggered retries; README
    # "Retries and events").
    retry_backoff_seconds: float = Field(default=60, gt=0)
    max_attempts: int = Field(default=5, ge=1)
    # A job added and never run (pending) this long is taken by the next sweep: `add` plus the
    # schedule is enough. Long enough that a pipeline adding and then retrying it itself wins.
    pending_grace_seconds: float = Field(default=300, ge=0)
    # The name of a prefect-aws AwsCredentials block holding the Spaces key (and, if it sets
    # them, region and endpoint): every S3 client uses it instead of boto3's environment chain.
    aws_credentials_block: str | None = None
    upload_retries: int = Field(default=3, ge=0)
    upload_retry_delay_seconds: float = Field(default=2.0, ge=0)
    # A claim holds a job this long unless its run renews it, which it does every
    # lease_renew_seconds (default: a quarter of the lease) while it lives: a run that dies frees
    # its job within the lease, a slow upload keeps it however long it takes (README "Stop,
    # cancel, crash").
    lease_seconds: float = Field(default=120, gt=0)
    lease_renew_seconds: float | None = Field(default=None, gt=0)
    # A step's progress artifact in the Prefect UI is made once the step has run this long:
    # for a step that ends sooner it would cost 2-3 server round trips (~40 ms each measured
    # under a sweep, README "Benchmarks") to show a bar that is already full.
    progress_artifact_after_seconds: float = Field(default=1.0, ge=0)
    # Prefect global concurrency limits (created by `upload-jobs setup`). Off by default: each
    # slot is a server round trip (median ~50 ms, with 2-3 s stalls on a busy SQLite-backed
    # Prefect server, measured in Prefect 3.8.8; 3.9.1's concurrency code is the same), worth it
    # when several workers share Spaces and CPUs.
    use_concurrency_limits: bool = False
    ffmpeg_slots_limit: str = "ffmpeg-slots"
    upload_slots_limit: str = "upload-slots"
    # The jobs web page (`upload-jobs web`). Bound to anything but loopback it needs the token,
    # and every request must then carry it.
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=8080, ge=0, le=65535)
    web_token: SecretStr | None = None
    web_retry_workers: int = Field(default=2, ge=1, le=16)
    # DigitalOcean's CDN keeps an object's old bytes until its TTL runs out: with both of these,
    # a job that replaces its object purges the path (README "Object keys"). The token is a
    # DigitalOcean API token (not the Spaces key); the API URL changes only for a stand-in.
    digitalocean_token: SecretStr | None = None
    cdn_endpoint_id: str | None = None
    digitalocean_api_url: str = "https://api.digitalocean.com"
    # Without PREFECT_API_URL, a Prefect server answering here is used instead of starting a
    # temporary one (a retry takes ~2 s instead of ~7, README "Every-day commands"); empty: never.
    local_prefect_api_url: str = "http://127.0.0.1:4200/api"

    @property
    def lease_renew_interval(self) -> float:
        """How often a running attempt renews its lease: the setting, else a quarter of it."""
        return self.lease_renew_seconds or self.lease_seconds / 4

    @model_validator(mode="after")
    def _renewed_within_the_lease(self) -> Settings:
        if self.lease_renew_seconds is not None and self.lease_renew_seconds >= self.lease_seconds:
            raise ValueError(
                f"lease_renew_seconds ({self.lease_renew_seconds:g}) must be shorter than "
                f"lease_seconds ({self.lease_seconds:g}): the lease would run out between renewals"
            )
        return self

    @field_validator("key_template")
    @classmethod
    def _a_template_add_can_use(cls, template: str) -> str:
        try:
            key_template_fields(template)
        except InvalidObjectKey as exc:
            raise ValueError(str(exc)) from None
        return template

    def resolved_public_base_url(self) -> str:
        """The base of public links: the setting, else the bucket's Spaces CDN host."""
        if self.public_base_url:
            return self.public_base_url.rstrip("/")
        return f"https://{self.bucket}.{self.region}.cdn.digitaloceanspaces.com"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; `get_settings.cache_clear()` re-reads the environment."""
    return Settings()
