"""Faststart in process: the source's `moov` rebuilt in memory in front of its media, and the
upload sent straight from byte ranges of the source (no temp file, no ffmpeg, read-only).

Taken when moving the index is all the file needs (whatever its codecs, brand and kinds of
track: text, timecode and subtitle tracks move like the others) and the move can be proven safe:
one `moov` holding no compressed movie (`cmov`), no sample auxiliary offsets (`saio`), no media in
other files, every sample's bytes inside a media box, and top-level boxes of known kinds only.
Everything else goes through the ffmpeg remux, with the reason recorded.

The new layout is `ftyp`, the new `moov`, then every other top-level box of the source in its
order. Each chunk offset moves by what its own `mdat` moved, so several `mdat` boxes and `free`
boxes anywhere are fine (qt-faststart adds one shift to every offset and wants `moov` last).
When an offset would pass 2^32, every `stco` becomes `co64`, which makes `moov` larger: the
shifts are then computed again for that size (qt-faststart never promotes).
"""

from __future__ import annotations

import bisect
import os
from array import array
from dataclasses import dataclass, replace
from pathlib import Path

from upload_jobs.media.boxes import Box
from upload_jobs.media.moov import (
    CHUNK_OFFSET_TYPES,
    Atom,
    MoovUnreadable,
    boxes_named,
    parse_moov,
    self_contained,
    with_chunk_offsets,
)
from upload_jobs.media.mp4 import Mp4Layout, NotAnMp4, read_layout_of
from upload_jobs.media.sample_tables import TrackChunks, track_chunks
from upload_jobs.storage.upload_body import FileIdentity, FileRange, Piece, UploadBody

# A moov is ~0.1% of a recording: 256 MiB in memory is a recording of days.
MAX_MOOV_BYTES = 256 * 1024 * 1024
MOVABLE_TOP_LEVEL = frozenset({"ftyp", "moov", "mdat", "free", "skip", "wide", "uuid"})
# Inside moov, boxes holding file offsets this module does not rewrite, or a movie it cannot read.
UNSAFE_IN_MOOV = frozenset({"cmov", "saio", "mvex"})
# Bytes of each track's first chunk read through the moved body and from the source, end to end
# (every chunk's mapping is checked without reading: a check must not cost a read of the file).
_CHUNK_PROBE_BYTES = 256


class FaststartRefused(Exception):
    """Moving the index is not all this file needs, or is not provably safe; why, for people
    (not a job's error: the ffmpeg remux takes over)."""


@dataclass(frozen=True)
class Relocation:
    """The source with its index in front, as an upload body, and what the move took."""

    body: UploadBody
    moov_bytes: int
    chunk_offsets: int
    promoted_to_co64: bool
    # The moved file's layout, as its check read it back (the measure step needs no other walk).
    layout: Mp4Layout | None = None


@dataclass(frozen=True)
class _MovedMdat:
    """An mdat of the source: where its payload starts and ends, and how far it moves."""

    start: int
    end: int
    delta: int


def plan_faststart(source: Path, layout: Mp4Layout) -> Relocation:
    """The source as `ftyp`, a rebuilt `moov`, then its other boxes, read from the source as it
    is now; checked by walking the result. `FaststartRefused` says why not, when not."""
    ftyp, moov_box = _movable_boxes(layout)
    if moov_box.size > MAX_MOOV_BYTES:
        raise FaststartRefused(
            f"its moov is {moov_box.size / 2**20:.0f} MiB, more than the "
            f"{MAX_MOOV_BYTES // 2**20} MiB the in-process move keeps in memory"
        )
    with source.open("rb") as f:
        identity = FileIdentity.of(os.fstat(f.fileno()))
        f.seek(moov_box.offset)
        data = f.read(moov_box.size)
    if identity.size != layout.file_size or len(data) != moov_box.size:
        raise FaststartRefused("the file changed while its boxes were read")
    try:
        return _relocation(source, layout, identity, ftyp, data)
    except MoovUnreadable as exc:
        raise FaststartRefused(f"its moov cannot be read box by box ({exc})") from exc


def _relocation(
    source: Path, layout: Mp4Layout, identity: FileIdentity, ftyp: Box, moov_data: bytes
) -> Relocation:
    moov = _readable(moov_data)
    chunks = track_chunks(moov)
    media = _media_boxes(layout.boxes)
    for track in chunks:
        _check_inside_media(track, media, "the source")
    others = [box for box in layout.boxes if box is not ftyp and box.type != "moov"]
    new_moov, promoted = _relocated_moov(moov, ftyp, others)
    pieces: list[Piece] = [FileRange(ftyp.offset, ftyp.size), new_moov.serialize()]
    pieces += _merged_ranges(others)
    body = UploadBody(
        source, tuple(pieces), identity, f"{source.name} with its index moved to the front"
    )
    relocation = Relocation(
        body, new_moov.size, sum(len(t.offsets) for t in chunks), promoted_to_co64=promoted
    )
    moved = _check(relocation, layout, moov, chunks)
    return replace(relocation, layout=moved)


def _movable_boxes(layout: Mp4Layout) -> tuple[Box, Box]:
    """The `ftyp` and the one `moov` of a file whose only problem is where its `moov` is."""
    if layout.truncated or layout.fragmented:
        raise FaststartRefused("it is " + ("truncated" if layout.truncated else "fragmented"))
    for box in layout.boxes:
        if box.type not in MOVABLE_TOP_LEVEL:
            raise FaststartRefused(
                f"it has a top-level {box.type!r} box, which the in-process move cannot prove "
                "safe to move"
            )
    if layout.boxes[0].type != "ftyp":
        raise FaststartRefused(f"it starts with a {layout.boxes[0].type!r} box, not ftyp")
    moovs = [box for box in layout.boxes if box.type == "moov"]
    if len(moovs) != 1:
        raise FaststartRefused(f"it has {len(moovs)} moov boxes")
    return layout.boxes[0], moovs[0]


def _readable(data: bytes) -> Atom:
    moov = parse_moov(data)
    if unsafe := boxes_named(moov, UNSAFE_IN_MOOV):
        raise FaststartRefused(f"its moov holds {unsafe[0]}, whose offsets are not rewritten here")
    if not self_contained(moov):
        raise FaststartRefused("a track refers to media in another file (its dref)")
    for _, atom in moov.walk():
        if atom.type == "meta" and b"iloc" in atom.payload:
            raise FaststartRefused("a metadata box in its moov locates items by file offset")
    # Counted, not parsed: track_chunks reads every table once, next.
    traks = [child for child in moov if child.type == "trak"]
    tables = sum(1 for trak in traks for _, box in trak.walk() if box.type in CHUNK_OFFSET_TYPES)
    if tables != len(traks):
        raise FaststartRefused("a track has no chunk offset table, or more than one")
    return moov


def _media_boxes(boxes: list[Box]) -> list[tuple[int, int]]:
    """(payload start, end) of each `mdat`, in file order."""
    return [(box.offset + box.header_size, box.end) for box in boxes if box.type == "mdat"]


def _check_inside_media(track: TrackChunks, media: list[tuple[int, int]], where: str) -> None:
    """Every chunk's whole byte range inside one `mdat` of `where`; else `FaststartRefused`
    (a sample past its media box would go up as other bytes)."""
    starts = [start for start, _ in media]
    for number, (offset, length) in enumerate(track.spans(), start=1):
        index = bisect.bisect_right(starts, offset) - 1
        if index < 0 or offset + length > media[index][1]:
            raise FaststartRefused(
                f"track {track.track_id}'s chunk {number} (bytes {offset}-{offset + length}) "
                f"does not lie inside a media box of {where}"
            )


def _relocated_moov(moov: Atom, ftyp: Box, others: list[Box]) -> tuple[Atom, bool]:
    """The moov whose offsets fit the new layout, promoted to co64 when they must be."""
    for co64 in (False, True):
        size = with_chunk_offsets(moov, lambda offsets: offsets, co64=co64).size
        mdats = _moved_mdats(ftyp.size + size, others)

        def move(offsets: array[int], mdats: list[_MovedMdat] = mdats) -> array[int]:
            return _moved_offsets(offsets, mdats)

        try:
            return with_chunk_offsets(moov, move, co64=co64), co64
        except OverflowError:
            continue  # an offset passes 2^32: again with co64, whose larger moov moves more
    raise AssertionError("co64 holds any offset")  # pragma: no cover


def _moved_mdats(first_offset: int, others: list[Box]) -> list[_MovedMdat]:
    """Each mdat's payload in the source and how far it moves when `others` follow the new moov
    from `first_offset` on."""
    moved, at = [], first_offset
    for box in others:
        if box.type == "mdat":
            moved.append(_MovedMdat(box.offset + box.header_size, box.end, at - box.offset))
        at += box.size
    return moved


def _moved_offsets(offsets: array[int], mdats: list[_MovedMdat]) -> array[int]:
    """`offsets` moved with the mdat each points into; `FaststartRefused` for one outside all."""
    if not offsets:
        return array("Q")
    if len(mdats) == 1:  # the usual file: one shift for all, checked at the ends
        (mdat,) = mdats
        if mdat.start <= min(offsets) and max(offsets) < mdat.end:
            return array("Q", [offset + mdat.delta for offset in offsets])
    starts = [mdat.start for mdat in mdats]
    moved = array("Q")
    for offset in offsets:
        index = bisect.bisect_right(starts, offset) - 1
        if index < 0 or offset >= mdats[index].end:
            raise FaststartRefused(f"a chunk offset ({offset}) points outside the media data")
        moved.append(offset + mdats[index].delta)
    return moved


def _merged_ranges(boxes: list[Box]) -> list[Piece]:
    """The boxes as file ranges, neighbours in the source joined into one."""
    ranges: list[FileRange] = []
    for box in boxes:
        if ranges and ranges[-1].offset + ranges[-1].length == box.offset:
            ranges[-1] = FileRange(ranges[-1].offset, ranges[-1].length + box.size)
        else:
            ranges.append(FileRange(box.offset, box.size))
    return list(ranges)


def _check(
    relocation: Relocation, source: Mp4Layout, source_moov: Atom, before: list[TrackChunks]
) -> Mp4Layout:
    """Read the new layout back as a player would: its index must hold every box of the
    source's byte for byte but the chunk offsets, place every chunk of every track, with the
    same sizes, inside its media boxes, and every chunk must be sent from the source's bytes of
    that chunk. Any difference is a refusal (and the ffmpeg remux runs instead)."""
    body = relocation.body
    try:
        with body.open() as reader:
            layout = read_layout_of(reader, body.size, source.path)
            moov_box = next(box for box in layout.boxes if box.type == "moov")
            reader.seek(moov_box.offset)
            new_moov = parse_moov(reader.read(moov_box.size))
            after = track_chunks(new_moov)
    except (NotAnMp4, StopIteration) as exc:  # pragma: no cover - only a bug here gets there
        raise FaststartRefused(f"the moved layout does not read back: {exc}") from exc
    problems = []
    if not layout.is_faststart or layout.truncated:
        problems.append("it does not read back as a whole faststart file")
    if layout.tracks != source.tracks or layout.duration_seconds != source.duration_seconds:
        problems.append("its tracks or duration differ from the source's")
    if [t.sizes for t in after] != [t.sizes for t in before]:
        problems.append("its chunks differ in number or size from the source's")
    if _without_offsets(new_moov) != _without_offsets(source_moov):
        problems.append("a box of its index other than the chunk offsets changed")
    if problems:
        raise FaststartRefused("the moved layout failed its check: " + "; ".join(problems))
    media = _media_boxes(layout.boxes)
    for old, new in zip(before, after, strict=True):
        _check_inside_media(new, media, "the moved layout")
        _check_sent_from_source(body, old, new)
    _check_first_bytes(body, source.path, before, after)
    return layout


def _check_sent_from_source(body: UploadBody, old: TrackChunks, new: TrackChunks) -> None:
    """Every chunk of the new layout is sent from the source's bytes of the same chunk: the
    body piece holding it is a range of the source that maps its new offset to its old one and
    holds it whole. Arithmetic only, for every chunk: no byte is read."""
    for number, (was, now, size) in enumerate(
        zip(old.offsets, new.offsets, new.sizes, strict=True), 1
    ):
        index = body.piece_at(now)
        piece = body.pieces[index]
        into = now - body.piece_start(index)
        if (
            not isinstance(piece, FileRange)
            or piece.offset + into != was
            or (into + size > piece.length)
        ):
            raise FaststartRefused(
                f"the moved layout failed its check: track {old.track_id}'s chunk {number} "
                "would not be sent from the source's bytes of that chunk"
            )


def _check_first_bytes(
    body: UploadBody, source: Path, before: list[TrackChunks], after: list[TrackChunks]
) -> None:
    """Read each track's first chunk start through the body and from the source, end to end
    (a few hundred bytes; the mapping of every chunk is checked above)."""
    with open(source, "rb", buffering=0) as original:
        for old, new in zip(before, after, strict=True):
            if not old.offsets:
                continue
            original.seek(old.offsets[0])
            expected = original.read(min(old.sizes[0], _CHUNK_PROBE_BYTES))
            with body.open(new.offsets[0], len(expected)) as moved:
                if moved.read() != expected:
                    raise FaststartRefused(
                        f"the moved layout failed its check: track {old.track_id}'s first "
                        "chunk does not hold the source's bytes"
                    )


def _without_offsets(moov: Atom) -> list[tuple[tuple[str, ...], str, bytes]]:
    """Every box of `moov` (path, type, payload), chunk offset tables as their type alone."""
    return [
        (path, "chunk offsets" if atom.type in ("stco", "co64") else atom.type,
         b"" if atom.type in ("stco", "co64") or atom.children is not None else atom.payload)
        for path, atom in moov.walk()
    ]  # fmt: skip
