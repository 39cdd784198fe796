"""The fuzz targets in the suite: a bounded number of structure-aware mutants of ffmpeg's clips
per target (hypothesis, derandomized so that a run repeats). A finding is a failure; its seed and
mutations are in hypothesis' report, and it becomes a file of `tests/support/hostile_mp4.py`."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.mutations import KINDS, boxes_in, mutate
from tests.fuzz.seeds import make_seeds
from tests.fuzz.targets import TARGETS
from upload_jobs.media.remux import resolve_ffmpeg

EXAMPLES_PER_TARGET = 1000
SEED_NAMES = ["moov-at-end", "faststart", "fragmented", "quicktime-pcm", "two-audio"]

mutation = st.tuples(st.integers(0, len(KINDS) - 1), st.integers(0, 2**16), st.integers(0, 2**32))


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    return make_seeds(tmp_path_factory.mktemp("fuzz-seeds"), resolve_ffmpeg())


@pytest.mark.parametrize("target", list(TARGETS))
@settings(
    max_examples=EXAMPLES_PER_TARGET,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(seed=st.sampled_from(SEED_NAMES), mutations=st.lists(mutation, min_size=1, max_size=3))
def test_mutated_clips_get_a_refusal_or_a_right_answer(
    seeds: dict[str, bytes], target: str, seed: str, mutations: list[tuple[int, int, int]]
) -> None:
    TARGETS[target](mutate(seeds[seed], mutations))


def test_the_mutations_reach_deep_boxes(seeds: dict[str, bytes]) -> None:
    assert sorted(seeds) == sorted(SEED_NAMES)
    types = {box.type for box in boxes_in(seeds["moov-at-end"])}
    assert {"moov", "trak", "stbl", "stco", "stsz", "dref"} <= types
