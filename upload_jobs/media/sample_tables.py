"""Where each chunk of a track's samples lies, in bytes, from its sample table (`stbl`): the
offsets (`stco`/`co64`), samples per chunk (`stsc`) and sample sizes (`stsz`/`stz2`).

The in-process move needs every sample's whole byte range inside one media box (`mdat`), not only
each chunk's start: a last sample running past its `mdat` would otherwise go up as other bytes.
Every table is read once, in time linear in its size; anything that does not add up is
`MoovUnreadable`, never an exception of Python's.
"""

from __future__ import annotations

import struct
from array import array
from dataclasses import dataclass
from itertools import accumulate

from upload_jobs.media.moov import Atom, MoovUnreadable, chunk_offsets_of, descend, track_id

_SAMPLE_TABLE_PATH = ("mdia", "minf", "stbl")
_STZ2_FIELD_BITS = frozenset({4, 8, 16})


@dataclass(frozen=True)
class TrackChunks:
    """One track's chunks: file offset and byte length of each, in chunk order."""

    track_id: int
    offsets: array[int]
    sizes: array[int]

    def spans(self) -> zip[tuple[int, int]]:
        """(offset, length) of each chunk."""
        return zip(self.offsets, self.sizes, strict=True)


def track_chunks(moov: Atom) -> list[TrackChunks]:
    """Every track's chunks, in track order; `MoovUnreadable` when a table is missing, cut,
    or does not add up, or a track's sample sizes are counted in audio frames (QuickTime PCM
    with size 1: the bytes per frame are in its sample description, not read here)."""
    tracks = []
    for trak in (child for child in moov if child.type == "trak"):
        number = track_id(trak)
        stbl = descend(trak, _SAMPLE_TABLE_PATH)
        if stbl is None:
            raise MoovUnreadable(f"track {number} has no sample table")
        tables = {child.type: child for child in stbl if child.children is None}
        offset_box = tables.get("stco") or tables.get("co64")
        if offset_box is None or "stsc" not in tables:
            raise MoovUnreadable(f"track {number} has no chunk offsets or no sample-to-chunk table")
        offsets = chunk_offsets_of(offset_box)
        per_chunk = _samples_per_chunk(tables["stsc"].payload, len(offsets), number)
        sizes = _chunk_sizes(tables, per_chunk, number)
        tracks.append(TrackChunks(number, offsets, sizes))
    return tracks


def _samples_per_chunk(stsc: bytes, chunks: int, track: int) -> array[int]:
    """How many samples each of `chunks` chunks holds, from the runs of `stsc`."""
    count = _u32(stsc, 4, "stsc", track)
    if len(stsc) < 8 + 12 * count:
        raise MoovUnreadable(f"track {track}'s stsc declares {count} entries but holds fewer")
    per_chunk = array("Q")
    runs = [struct.unpack_from(">II", stsc, 8 + 12 * i) for i in range(count)]
    for index, (first, samples) in enumerate(runs):
        following = runs[index + 1][0] if index + 1 < count else chunks + 1
        if first < 1 or following <= first:
            raise MoovUnreadable(f"track {track}'s stsc runs are out of order")
        if first > chunks:
            break
        per_chunk.extend([samples] * (min(following, chunks + 1) - first))
    if len(per_chunk) != chunks or (chunks and runs[0][0] != 1):
        raise MoovUnreadable(f"track {track}'s stsc does not cover its {chunks} chunks")
    return per_chunk


def _chunk_sizes(tables: dict[str, Atom], per_chunk: array[int], track: int) -> array[int]:
    """The byte length of each chunk: the sum of its samples' sizes."""
    uniform, sizes = _sample_sizes(tables, track)
    placed = sum(per_chunk)
    if uniform is not None:
        if uniform == 1 and placed:
            raise MoovUnreadable(
                f"track {track} counts its sample sizes in audio frames (QuickTime sound), "
                "whose bytes this check does not read"
            )
        return array("Q", (samples * uniform for samples in per_chunk))
    if placed > len(sizes):
        raise MoovUnreadable(
            f"track {track}'s chunks hold {placed} samples but its sizes table has {len(sizes)}"
        )
    ends = array("Q", accumulate(sizes, initial=0))
    chunk_sizes, first = array("Q"), 0
    for samples in per_chunk:
        chunk_sizes.append(ends[first + samples] - ends[first])
        first += samples
    return chunk_sizes


def _sample_sizes(tables: dict[str, Atom], track: int) -> tuple[int | None, array[int]]:
    """The one size of every sample (then no table), or each sample's size."""
    if (stsz := tables.get("stsz")) is not None:
        payload = stsz.payload
        uniform, count = _u32(payload, 4, "stsz", track), _u32(payload, 8, "stsz", track)
        if uniform:
            return uniform, array("Q")
        if len(payload) < 12 + 4 * count:
            raise MoovUnreadable(f"track {track}'s stsz declares {count} sizes but holds fewer")
        sizes = array("I")
        sizes.frombytes(payload[12 : 12 + 4 * count])
        if array("I", [1]).tobytes()[0] == 1:
            sizes.byteswap()
        return None, array("Q", sizes)
    if (stz2 := tables.get("stz2")) is not None:
        return None, _compact_sizes(stz2.payload, track)
    raise MoovUnreadable(f"track {track} has no sample size table")


def _compact_sizes(payload: bytes, track: int) -> array[int]:
    """The sizes of an `stz2` table: 4, 8 or 16 bits each."""
    bits, count = (payload[7] if len(payload) > 7 else 0), _u32(payload, 8, "stz2", track)
    if bits not in _STZ2_FIELD_BITS or len(payload) < 12 + (count * bits + 7) // 8:
        raise MoovUnreadable(f"track {track}'s stz2 is cut or has {bits}-bit sizes")
    packed = payload[12 : 12 + (count * bits + 7) // 8]
    if bits == 8:
        return array("Q", packed)
    if bits == 16:
        pairs = range(0, 2 * count, 2)
        return array("Q", (int.from_bytes(packed[i : i + 2], "big") for i in pairs))
    nibbles = (n for byte in packed for n in (byte >> 4, byte & 0x0F))
    return array("Q", (size for _, size in zip(range(count), nibbles, strict=False)))


def _u32(payload: bytes, at: int, box: str, track: int) -> int:
    if len(payload) < at + 4:
        raise MoovUnreadable(f"track {track}'s {box} is cut short")
    return int(struct.unpack_from(">I", payload, at)[0])
