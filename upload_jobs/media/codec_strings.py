"""RFC 6381 codec strings (`avc1.64001f`, `mp4a.40.2`) read from an fMP4 init segment, for the
`CODECS` attribute of an HLS master playlist: a player skips a variant it cannot decode by it."""

from __future__ import annotations

import struct

from upload_jobs.media.moov import Atom, MoovUnreadable, descend, parse_boxes

# Visual and audio sample entries: fixed fields after the box header, before their child boxes.
_VISUAL_ENTRY_FIELDS = 78
_AUDIO_ENTRY_FIELDS = 28
_STSD_PATH = ("mdia", "minf", "stbl", "stsd")


def codec_strings(init_segment: bytes) -> list[str]:
    """The codec string of each track of the init segment (video first), as HLS wants them;
    MoovUnreadable when it has no readable `moov` or a codec with no known string."""
    top = parse_boxes(init_segment, 0, len(init_segment))
    moov = next((box for box in top if box.type == "moov"), None)
    if moov is None or moov.children is None:
        raise MoovUnreadable("the init segment has no moov")
    found = [_codec_of(trak) for trak in moov if trak.type == "trak"]
    found.sort(key=lambda codec: not codec.startswith(("avc", "hvc", "av01", "vp09")))
    return found


def _codec_of(trak: Atom) -> str:
    stsd = descend(trak, _STSD_PATH)
    if stsd is None or len(stsd.payload) < 16:
        raise MoovUnreadable("a track of the init segment has no sample description")
    entry = stsd.payload[8:]
    size, kind = struct.unpack(">I4s", entry[:8])
    fourcc = kind.decode("latin-1")
    body = entry[8 : max(8, min(size, len(entry)))]
    if fourcc in ("avc1", "avc3"):
        avcc = _child(body[_VISUAL_ENTRY_FIELDS:], "avcC")
        if len(avcc) < 4:
            raise MoovUnreadable(f"the {fourcc} track has no avcC")
        return f"{fourcc}.{avcc[1]:02x}{avcc[2]:02x}{avcc[3]:02x}"
    if fourcc == "mp4a":
        return f"mp4a.{_mp4a_profile(_child(body[_AUDIO_ENTRY_FIELDS:], 'esds'))}"
    raise MoovUnreadable(f"no HLS codec string is known for {fourcc!r}")


def _child(data: bytes, wanted: str) -> bytes:
    """The payload of the first box `wanted` among the boxes laid out in `data`."""
    for box in parse_boxes(data, 0, len(data)):
        if box.type == wanted:
            return box.payload
    return b""


def _mp4a_profile(esds: bytes) -> str:
    """`40.2` for AAC-LC: the object type indication, then the audio object type."""
    at, object_type, audio_type = 4, None, None  # version and flags first
    while at + 2 <= len(esds):
        tag = esds[at]
        length, at = _descriptor_length(esds, at + 1)
        if tag == 0x03:  # ES_Descriptor: ES_ID, flags, optional fields, then its children
            flags = esds[at + 2] if at + 2 < len(esds) else 0
            at += 3 + (2 if flags & 0x80 else 0) + (2 if flags & 0x20 else 0)
            if flags & 0x40 and at < len(esds):
                at += 1 + esds[at]
        elif tag == 0x04:  # DecoderConfigDescriptor: 13 bytes, then DecoderSpecificInfo
            object_type = esds[at] if at < len(esds) else None
            at += 13
        elif tag == 0x05:
            audio_type = esds[at] >> 3 if at < len(esds) else None
            break
        else:
            at += length
    if object_type is None:
        raise MoovUnreadable("the mp4a track's esds has no decoder configuration")
    return f"{object_type:x}.{audio_type}" if audio_type else f"{object_type:x}"


def _descriptor_length(data: bytes, at: int) -> tuple[int, int]:
    length = 0
    for _ in range(4):
        if at >= len(data):
            break
        byte = data[at]
        at += 1
        length = (length << 7) | (byte & 0x7F)
        if not byte & 0x80:
            break
    return length, at
