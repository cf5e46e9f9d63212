"""Recognise media by its bytes, never by extension or Content-Type."""

from __future__ import annotations

IMAGE_FORMATS = ("png", "jpeg", "webp")
AUDIO_FORMATS = ("mp3", "wav", "m4a", "aac", "ogg")

MIME = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "mp3": "audio/mpeg",
    "wav": "audio/wav",
    "m4a": "audio/mp4",
    "aac": "audio/aac",
    "ogg": "audio/ogg",
}


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


def sniff(data: bytes, kind: str) -> str | None:
    """The format of `data` if it is a supported `kind` ("image" or "audio")."""
    return sniff_image(data) if kind == "image" else sniff_audio(data)
