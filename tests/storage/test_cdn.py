"""The CDN purge through pydo, against the DigitalOcean API stand-in (tests/support): the request
the real API expects, a rate limit honoured with a retry, failures as outcomes, never raised."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from tests.support.digitalocean_api import PURGE_PATH, DigitalOceanApi
from upload_jobs.settings import Settings
from upload_jobs.storage.cdn import PurgeOutcome, purge_cdn_paths

TOKEN = "dop_v1_leakcheck0123456789abcdef"
ENDPOINT = "19f06b6a-3ace-4315-b086-499a0e521b76"


@pytest.fixture
def api() -> Iterator[DigitalOceanApi]:
    with DigitalOceanApi(TOKEN, {ENDPOINT}) as stand_in:
        yield stand_in


def configured(api: DigitalOceanApi, **overrides: str) -> Settings:
    values = {"digitalocean_token": TOKEN, "cdn_endpoint_id": ENDPOINT} | overrides
    return Settings(digitalocean_api_url=api.url, **values)  # type: ignore[arg-type]


def test_a_purge_is_the_request_the_api_expects(api: DigitalOceanApi) -> None:
    purge = purge_cdn_paths(configured(api), ["videos/2026-11-23/merged.mp4"])

    assert purge.outcome is PurgeOutcome.PURGED, purge.detail
    [request] = api.requests
    assert (request.method, request.path) == ("DELETE", PURGE_PATH.format(endpoint_id=ENDPOINT))
    assert request.authorization == f"Bearer {TOKEN}"
    assert request.body == {"files": ["videos/2026-11-23/merged.mp4"]}
    assert request.status == 204


def test_a_rate_limit_is_waited_out_and_the_purge_sent_once_more(api: DigitalOceanApi) -> None:
    api.rate_limit_next(1, retry_after_seconds=0.2)

    purge = purge_cdn_paths(configured(api), ["videos/a.mp4"])

    assert purge.outcome is PurgeOutcome.PURGED, purge.detail
    assert [r.status for r in api.requests] == [429, 204]
    assert len(api.purges()) == 1


def test_a_purge_that_keeps_failing_is_an_outcome_not_an_error(
    api: DigitalOceanApi, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    api.rate_limit_next(3, retry_after_seconds=0.1)
    limited = purge_cdn_paths(configured(api), ["videos/a.mp4"])
    assert limited.outcome is PurgeOutcome.FAILED and "429" in limited.detail
    assert len(api.requests) == 3, "three tries in all"

    wrong_token = purge_cdn_paths(
        configured(api, digitalocean_token="dop_v1_wrong0000000000"), ["v"]
    )
    assert wrong_token.outcome is PurgeOutcome.FAILED and "401" in wrong_token.detail
    no_such_endpoint = purge_cdn_paths(configured(api, cdn_endpoint_id="nope"), ["videos/a.mp4"])
    assert no_such_endpoint.outcome is PurgeOutcome.FAILED
    assert "could not be found" in no_such_endpoint.detail
    everything = " ".join(
        [limited.detail, wrong_token.detail, no_such_endpoint.detail, caplog.text]
    )
    assert TOKEN not in everything


def test_without_a_token_or_endpoint_there_is_no_purge(api: DigitalOceanApi) -> None:
    for missing in ({"digitalocean_token": ""}, {"cdn_endpoint_id": ""}):
        purge = purge_cdn_paths(configured(api, **missing), ["videos/a.mp4"])
        assert purge.outcome is PurgeOutcome.NOT_CONFIGURED
        assert "until its TTL runs out" in purge.detail
    assert api.requests == []


def test_the_token_only_travels_over_https_or_to_this_machine(api: DigitalOceanApi) -> None:
    settings = configured(api).model_copy(update={"digitalocean_api_url": "http://api.example"})
    purge = purge_cdn_paths(settings, ["videos/a.mp4"])
    assert purge.outcome is PurgeOutcome.FAILED and "only goes over https" in purge.detail
