"""Telling DigitalOcean's CDN to forget an object's old bytes once a job has replaced it: the edge
keeps serving what it cached until its TTL runs out (an hour by default) unless the path is
purged, through DigitalOcean's API (`pydo`, with an API token, not the Spaces key).

A purge that fails is reported, never raised: the upload it follows has succeeded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

from upload_jobs.redaction import redact, register_secrets
from upload_jobs.settings import Settings

# Tries of one purge (azure-core's retry policy, which honours a 429's Retry-After), and the
# longest it may take in all: DigitalOcean rate-limits purges.
PURGE_TRIES = 3
PURGE_TIMEOUT_SECONDS = 60
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


class PurgeOutcome(StrEnum):
    """How the purge after a replacing upload went."""

    PURGED = "purged"
    FAILED = "failed"
    NOT_CONFIGURED = "not_configured"


@dataclass(frozen=True)
class CdnPurge:
    """A purge's outcome and, for people, what it did or why not."""

    outcome: PurgeOutcome
    detail: str


def purge_cdn_paths(settings: Settings, paths: list[str]) -> CdnPurge:
    """Ask DigitalOcean's CDN endpoint `UPLOAD_JOBS_CDN_ENDPOINT_ID` to drop `paths` (object
    keys) from its edge caches, with `UPLOAD_JOBS_DIGITALOCEAN_TOKEN`."""
    token = settings.digitalocean_token.get_secret_value() if settings.digitalocean_token else ""
    if not (token and settings.cdn_endpoint_id):
        return CdnPurge(
            PurgeOutcome.NOT_CONFIGURED,
            "the CDN may serve the old bytes until its TTL runs out (an hour by default): set "
            "UPLOAD_JOBS_DIGITALOCEAN_TOKEN and UPLOAD_JOBS_CDN_ENDPOINT_ID to purge them",
        )
    register_secrets(token)
    api = urlsplit(settings.digitalocean_api_url)
    if api.scheme != "https" and api.hostname not in _LOOPBACK:
        return CdnPurge(
            PurgeOutcome.FAILED,
            f"not sent: UPLOAD_JOBS_DIGITALOCEAN_API_URL is {settings.digitalocean_api_url}, and "
            "the API token only goes over https (or to a stand-in on this machine)",
        )
    try:
        answer = _purge(token, settings.digitalocean_api_url, settings.cdn_endpoint_id, paths)
    except Exception as exc:  # the purge is a courtesy: whatever went wrong, the upload stands
        return CdnPurge(PurgeOutcome.FAILED, redact(_reason(exc))[:500])
    if answer:  # pydo hands some errors (404) back as the error body instead of raising
        message = answer.get("message") if isinstance(answer, dict) else answer
        return CdnPurge(PurgeOutcome.FAILED, redact(f"DigitalOcean answered: {message}")[:500])
    return CdnPurge(PurgeOutcome.PURGED, f"purged {', '.join(paths)} from the CDN's edge caches")


def _purge(token: str, api_url: str, endpoint_id: str, paths: list[str]) -> object:
    # Imported here: pydo's generated client is large, and only replaced objects need it.
    import pydo

    client = pydo.Client(
        token=token,
        endpoint=api_url,
        retry_total=PURGE_TRIES - 1,
        timeout=PURGE_TIMEOUT_SECONDS,
        logging_enable=False,  # with it, azure-core logs the Authorization header as it is
    )
    # azure-core refuses to send a bearer token over http; a loopback stand-in is allowed.
    plain_http = urlsplit(api_url).scheme == "http"
    return client.cdn.purge_cache(endpoint_id, {"files": paths}, enforce_https=not plain_http)


def _reason(exc: Exception) -> str:
    status = getattr(exc, "status_code", None)
    message = str(getattr(exc, "message", None) or exc) or type(exc).__name__
    # azure-core puts the error's code in front, "(None) ..." when the API sent none.
    first_line = re.sub(r"^\(\w*\)\s*", "", message.splitlines()[0])
    return f"HTTP {status}: {first_line}" if status else f"{type(exc).__name__}: {first_line}"
