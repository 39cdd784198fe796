"""What a file that is not MP4 or QuickTime is, from its first bytes: a refusal names the kind
("a Matroska (or WebM) file") instead of showing raw bytes to a person."""

from __future__ import annotations

# Enough for an MPEG transport stream's second sync byte (packets of 188 or 192 bytes).
SNIFF_BYTES = 512
_TS_SYNC = 0x47

# (signature at offset 0, what the file is), the first match wins.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x1a\x45\xdf\xa3", "a Matroska (or WebM) file"),
    (b"FLV", "a Flash video (FLV) file"),
    (b"OggS", "an Ogg file"),
    (b"\x00\x00\x01\xba", "an MPEG program stream (VOB/MPG) file"),
    (b"\x00\x00\x01\xb3", "an MPEG video elementary stream"),
    (b"\x30\x26\xb2\x75\x8e\x66\xcf\x11", "a Windows Media (ASF/WMV) file"),
    (b"ID3", "an MP3 audio file"),
    (b"fLaC", "a FLAC audio file"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x1f\x8b", "a gzip archive"),
)
_RIFF_FORMS = {b"AVI ": "an AVI file", b"WAVE": "a WAV audio file", b"WEBP": "a WebP image"}


def describe_file_kind(header: bytes) -> str | None:
    """What the file starting with `header` (its first `SNIFF_BYTES` or fewer) is, as a noun
    phrase ("a Matroska (or WebM) file"); None when its first bytes match no known format."""
    for signature, kind in _SIGNATURES:
        if header.startswith(signature):
            return kind
    if header.startswith(b"RIFF") and len(header) >= 12:
        return _RIFF_FORMS.get(header[8:12], "a RIFF file")
    if _is_transport_stream(header):
        return "an MPEG transport stream (TS) file"
    if header and _looks_like_text(header):
        return "a text file"
    return None


def _is_transport_stream(header: bytes) -> bool:
    return any(
        len(header) > 2 * packet and all(header[i * packet] == _TS_SYNC for i in range(3))
        for packet in (188, 192)
    )


def _looks_like_text(header: bytes) -> bool:
    try:
        text = header.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(ch.isprintable() or ch in "\r\n\t" for ch in text)
