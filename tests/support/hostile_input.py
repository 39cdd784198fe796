"""Hostile input for property tests: hypothesis strategies and settings the modules share."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

# Fixtures such as `settings` hold for every example of a test: jobs pile up, which is fine here.
EXAMPLES = hypothesis_settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
"""Hypothesis settings for most tests: 150 examples, no deadline."""
# For tests where no hostile text reaches the database, one database kind is enough.
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
"""Run a test on SQLite only."""
FLOW_RUNS = hypothesis_settings(
    max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
"""Hypothesis settings for tests that run a flow: a few slow examples."""

# An `ftyp` box: the first 16 bytes of a real MP4, enough for the CLI's source check.
MP4_HEADER = struct.pack(">I4s4sI", 16, b"ftyp", b"isom", 0x200)
"""The 16 bytes a file needs to pass the CLI's check for an MP4."""

NASTY_PIECES = [
    "..",
    ".",
    "",
    " ",
    "~",
    "\x00",
    "\n",
    "\r",
    "\t",
    "\x1b[31m",
    "\x7f",
    "\x85",
    "\u202eevil\u202c",  # right-to-left override
    "e\u0301\u0301",  # combining marks
    "\ufeff",
    "東京 2024",
    "clip.MP4",
    "x.mp4s",
    "%2e%2e",
    "..\\..",
    "[red]markup[/red]",
    ":smile:",
    "videos",
]
"""Pieces of text known to trip up paths, keys, terminals and queries."""
piece = st.one_of(st.sampled_from(NASTY_PIECES), st.text(max_size=12))
"""One nasty piece or a short random text."""
# Text of about 4 KB: a short random text repeated (hypothesis is slow to draw 4096 characters).
four_kb = st.text(min_size=1, max_size=8).map(lambda t: (t * 4096)[:4096])
"""Text of exactly 4096 characters."""
# Mostly the awkward characters: plain st.text() draws NUL or '..' too rarely to find much.
awkward_chars = st.text(st.sampled_from("\x00\n\r\t\x1b\x7f\u2028\u202e./\\%_ é東"), max_size=12)
"""Short text of control, path and non-ASCII characters only."""
hostile_text = st.one_of(
    st.lists(piece, max_size=6).map("/".join), awkward_chars, four_kb, st.text()
)
"""Hostile text: '/'-joined pieces, awkward characters, 4 KB runs or any text."""
huge_ints = st.integers(min_value=2**31 - 2, max_value=10**40) | st.integers(max_value=0)
"""Integers at or past the 32-bit limit, or not positive: ids no job has."""
job_ids = st.one_of(huge_ints.map(str), st.integers(1, 5).map(str), hostile_text)
"""A job id as typed: a huge or non-positive number, a small one, or hostile text."""
