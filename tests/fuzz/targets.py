"""The fuzz targets: each takes a file's bytes and raises `FuzzFinding` for anything but the
project's own refusal (a Python error, a move that changes the source or uploads other bytes)."""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections.abc import Callable
from pathlib import Path

from upload_jobs.media.codec_strings import codec_strings
from upload_jobs.media.faststart import FaststartRefused, plan_faststart
from upload_jobs.media.moov import MoovUnreadable, boxes_named, parse_moov, self_contained
from upload_jobs.media.mp4 import NotAnMp4, read_layout, read_layout_of
from upload_jobs.media.sample_tables import track_chunks
from upload_jobs.media.startup import StartupCost, startup_cost_of

NAME = Path("fuzzed.mp4")


class FuzzFinding(AssertionError):
    """What a target did that it must never do."""


def box_walk(data: bytes) -> None:
    """The top-level walk: a layout, or `NotAnMp4`."""
    with contextlib.suppress(NotAnMp4):
        read_layout_of(io.BytesIO(data), len(data), NAME)


def moov_parser(data: bytes) -> None:
    """The `moov` tree and its sample tables: read, or `MoovUnreadable`."""
    try:
        layout = read_layout_of(io.BytesIO(data), len(data), NAME)
    except NotAnMp4:
        return
    for box in layout.boxes:
        if box.type == "moov" and box.end <= len(data):
            try:
                moov = parse_moov(data[box.offset : box.end])
                track_chunks(moov)
                self_contained(moov)
                boxes_named(moov, frozenset({"cmov", "saio"}))
            except MoovUnreadable:
                pass


def planner(data: bytes) -> None:
    """The in-process move: refused, or a body that reads back as a faststart file holding the
    source's boxes; the source is never changed."""
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / NAME
        source.write_bytes(data)
        try:
            layout = read_layout(source)
            relocation = plan_faststart(source, layout)
        except (NotAnMp4, FaststartRefused):
            return
        finally:
            if source.read_bytes() != data:
                raise FuzzFinding("the planner changed its source")
        with relocation.body.open() as reader:
            moved = reader.read()
        old_moov = next(box for box in layout.boxes if box.type == "moov")
        if len(moved) != len(data) - old_moov.size + relocation.moov_bytes:
            raise FuzzFinding("the moved body is not the source with its index replaced")
        if not read_layout_of(io.BytesIO(moved), len(moved), NAME).is_faststart:
            raise FuzzFinding("the moved body does not read back as faststart")


def startup(data: bytes) -> None:
    """The startup measurement: a cost within the file, or unknown; it never raises."""
    cost = startup_cost_of(io.BytesIO(data), len(data), NAME)
    if cost is not None and not isinstance(cost, StartupCost):
        raise FuzzFinding(f"startup_cost_of returned {cost!r}")
    if cost is not None and cost.startup_bytes > len(data):
        raise FuzzFinding("a startup cost larger than the file")


def codec_string_reader(data: bytes) -> None:
    """The HLS codec strings of an init segment (any file with a `moov`): RFC 6381 strings, one
    per track, or `MoovUnreadable`."""
    try:
        codecs = codec_strings(data)
    except MoovUnreadable:
        return
    for codec in codecs:
        if not isinstance(codec, str) or not codec.isascii() or "," in codec:
            raise FuzzFinding(f"codec string {codec!r} cannot go into CODECS")


TARGETS: dict[str, Callable[[bytes], None]] = {
    "box-walk": box_walk,
    "codec-strings": codec_string_reader,
    "moov-parser": moov_parser,
    "planner": planner,
    "startup": startup,
}
