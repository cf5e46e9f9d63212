"""Recognise media by its bytes, never by extension or Content-Type."""

from __future__ import annotations

IMAGE_FORMATS = ("png", "jpeg", "webp")
AUDIO_FORMATS = ("mp3", "wav", "m4a", "aac", "ogg")
VIDEO_FORMATS = ("mp4", "mov", "webm")

MIME = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "mp3": "audio/mpeg",
    "wav": "audio/wav",
    "m4a": "audio/mp4",
    "aac": "audio/aac",
    "ogg": "audio/ogg",
    "mp4": "video/mp4",
    "mov": "video/quicktime",
    "webm": "video/webm",
}
# QuickTime files from before the `ftyp` box start with one of these top-level atoms.
_QUICKTIME_ATOMS = (b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot")


def sniff_image(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def sniff_audio(data: bytes) -> str | None:
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "wav"
    if data.startswith(b"OggS"):
        return "ogg"
    if len(data) >= 12 and data[4:8] == b"ftyp":
        return "m4a"
    if data.startswith(b"ID3"):
        return "mp3"
    if len(data) >= 2 and data[0] == 0xFF:
        # ADTS AAC: 12-bit sync, layer bits 00. MPEG audio layer III: 11-bit sync, layer 01.
        if data[1] & 0xF6 == 0xF0:
            return "aac"
        if data[1] & 0xE0 == 0xE0 and (data[1] >> 1) & 0x03 == 0x01:
            return "mp3"
    return None


def sniff_video(data: bytes) -> str | None:
    """MP4 and MOV (ISO base media: an `ftyp` box, brand `qt  ` for QuickTime, or an old
    QuickTime atom) and WebM (an EBML header whose DocType is "webm")."""
    if len(data) >= 12 and data[4:8] == b"ftyp":
        return "mov" if data[8:12] == b"qt  " else "mp4"
    if len(data) >= 8 and data[4:8] in _QUICKTIME_ATOMS:
        return "mov"
    if data.startswith(b"\x1a\x45\xdf\xa3"):
        # DocType element (0x4282), a 1-byte size, then the name, within the header.
        header = data[:64]
        at = header.find(b"\x42\x82")
        if at >= 0 and header[at + 3 : at + 7] == b"webm":
            return "webm"
    return None


def sniff(data: bytes, kind: str) -> str | None:
    """The format of `data` if it is a supported `kind` ("image", "audio" or "video")."""
    if kind == "video":
        return sniff_video(data)
    return sniff_image(data) if kind == "image" else sniff_audio(data)
