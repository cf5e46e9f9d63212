"""kinema.media: sniffing, image checks and decoding, audio decoding, MP4 writing.

Everything runs on real bytes: images saved by Pillow, audio encoded by PyAV, MP4s read
back with PyAV.
"""

from __future__ import annotations

import io
import struct
import wave
import zlib
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image, ImageFile

from kinema.errors import InputError
from kinema.media.audio import audio_duration, decode_audio
from kinema.media.encode import probe_mp4, write_mp4
from kinema.media.images import (
    ImageInfo,
    decode_image,
    fit_image,
    inspect_image,
    output_size,
)
from kinema.media.sniff import sniff_audio, sniff_image
from kinema.render_request import ImageRules
from kinema.specs.minimax import VIDEO01_IMAGE_RULES
from tests.engine_context import encode_image, luma_psnr, picture, psnr

MAX_PIXELS = 50_000_000
MAX_BYTES = 20 * 1024 * 1024
ANY = ImageRules()


def inspect(data: bytes, rules: ImageRules = ANY, max_pixels: int = MAX_PIXELS) -> ImageInfo:
    return inspect_image(data, "image_url", rules, max_pixels, MAX_BYTES)


def decode(data: bytes, rules: ImageRules = ANY) -> np.ndarray:
    return decode_image(data, "image_url", rules, MAX_PIXELS, MAX_BYTES)


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims `width`x`height`: a decompression bomb's shape."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\0" * 1000)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    """16-bit PCM WAV; `samples` is (n,) mono or (n, channels)."""
    frames = samples if samples.ndim == 2 else samples[:, None]
    out = io.BytesIO()
    with wave.open(out, "wb") as handle:
        handle.setnchannels(frames.shape[1])
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes((np.clip(frames, -1, 1) * 32767).astype("<i2").tobytes())
    return out.getvalue()


def tone(seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def encoded_audio(codec: str, container_format: str, seconds: float = 1.0) -> bytes:
    """A mono 440 Hz tone encoded by PyAV (mp3, raw ADTS AAC, M4A, Opus in Ogg)."""
    rate = 48000
    out = io.BytesIO()
    with av.open(out, "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.layout = "mono"
        signal = tone(seconds, rate)
        size = stream.codec_context.frame_size or 1024
        for start in range(0, signal.size, size):
            frame = av.AudioFrame.from_ndarray(
                signal[None, start : start + size], format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts = rate, start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return out.getvalue()


# ------------------------------------------------------------------------------ sniffing
def test_sniffing_recognises_formats_by_their_bytes() -> None:
    image = picture(32, 24)
    assert sniff_image(encode_image(image, "PNG")) == "png"
    assert sniff_image(encode_image(image, "JPEG")) == "jpeg"
    assert sniff_image(encode_image(image, "WEBP")) == "webp"
    assert sniff_image(encode_image(image, "GIF")) is None
    assert sniff_image(b"<html>") is None
    assert sniff_audio(wav_bytes(tone(0.1, 8000), 8000)) == "wav"
    assert sniff_audio(encoded_audio("libmp3lame", "mp3", 0.2)) == "mp3"
    assert sniff_audio(encoded_audio("aac", "adts", 0.2)) == "aac"
    assert sniff_audio(encoded_audio("aac", "ipod", 0.2)) == "m4a"
    assert sniff_audio(encoded_audio("libopus", "ogg", 0.2)) == "ogg"
    assert sniff_audio(b"fLaC\0\0\0\x22") is None


# --------------------------------------------------------------------------- image rules
def test_video01_rules() -> None:
    ok = inspect(encode_image(picture(400, 301), "PNG"), VIDEO01_IMAGE_RULES)
    assert (ok.format, ok.width, ok.height) == ("png", 400, 301)
    with pytest.raises(InputError, match="expected a PNG or JPEG image, got WebP") as info:
        inspect(encode_image(picture(400, 320), "WEBP"), VIDEO01_IMAGE_RULES)
    assert info.value.field_name == "image_url"
    with pytest.raises(InputError, match="shorter side must be larger than 300 px"):
        inspect(encode_image(picture(400, 300), "JPEG"), VIDEO01_IMAGE_RULES)
    for width, height in ((1000, 400), (400, 1000)):  # exactly 5:2 and 2:5
        with pytest.raises(InputError, match="aspect ratio"):
            inspect(encode_image(picture(width, height), "PNG"), VIDEO01_IMAGE_RULES)
    assert inspect(encode_image(picture(999, 400), "PNG"), VIDEO01_IMAGE_RULES).width == 999


def test_unrecognised_and_oversized_images_are_refused() -> None:
    with pytest.raises(InputError, match=r"not a recognised image \(PNG, JPEG or WebP\)"):
        inspect(encode_image(picture(40, 30), "GIF"))
    data = encode_image(picture(40, 30), "PNG")
    with pytest.raises(InputError, match="limit is 100 bytes"):
        inspect_image(data, "image_url", ANY, MAX_PIXELS, 100)
    with pytest.raises(InputError, match="could not be decoded"):
        inspect(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)


def test_decompression_bombs_are_refused_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def never(self: object) -> None:
        raise AssertionError("a bomb reached Pillow's decoder")

    monkeypatch.setattr(ImageFile.ImageFile, "load", never)
    for width, height in ((100_000, 100_000), (10_000, 10_000), (8_000, 7_000)):
        bomb = png_claiming(width, height)
        assert len(bomb) < 200
        with pytest.raises(InputError, match="pixels"):
            inspect(bomb)
        with pytest.raises(InputError, match="pixels"):
            decode(bomb)
    with pytest.raises(InputError, match="the limit is 500,000"):
        inspect(png_claiming(1000, 1000), max_pixels=500_000)
    assert inspect(png_claiming(1000, 1000)).width == 1000


def test_exif_orientation_sets_the_dimensions() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, displayed rotated 90° clockwise
    data = encode_image(picture(320, 200), "JPEG", exif=exif.tobytes())
    info = inspect(data)
    assert (info.width, info.height) == (200, 320)
    assert decode(data).shape == (320, 200, 3)


# ------------------------------------------------------------------------ image decoding
def test_every_mode_decodes_to_rgb() -> None:
    source = picture(64, 48)
    cases = {
        "L": encode_image(source, "PNG", "L"),
        "1": encode_image(source, "PNG", "1"),
        "P": encode_image(source, "PNG", "P"),
        "LA": encode_image(source, "PNG", "LA"),
        "RGBA": encode_image(source, "PNG", "RGBA"),
        "CMYK": encode_image(source, "JPEG", "CMYK", quality=95),
        "YCbCr": encode_image(source, "JPEG", quality=95),
        "webp": encode_image(source, "WEBP", lossless=True),
    }
    for name, data in cases.items():
        rgb = decode(data)
        assert rgb.shape == (48, 64, 3) and rgb.dtype == np.uint8, name
        assert rgb.flags["C_CONTIGUOUS"], name
    assert psnr(decode(cases["CMYK"]), source) > 30
    assert psnr(decode(cases["webp"]), source) == float("inf")


def test_transparency_is_composited_on_white() -> None:
    rgba = np.zeros((10, 20, 4), np.uint8)
    rgba[:, :10] = (255, 0, 0, 0)  # fully transparent red
    rgba[:, 10:] = (0, 0, 0, 128)  # half-transparent black
    out = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(out, "PNG")
    rgb = decode(out.getvalue())
    assert (rgb[:, :10] == 255).all()
    assert np.abs(rgb[:, 10:].astype(int) - 127).max() <= 1

    palette = Image.new("P", (8, 8), 0)
    palette.putpalette([0, 0, 255] + [0, 255, 0] * 255)
    palette.info["transparency"] = 0
    out = io.BytesIO()
    palette.save(out, "PNG", transparency=0)
    assert (decode(out.getvalue()) == 255).all()


def test_16_bit_grayscale_is_scaled_not_clipped() -> None:
    levels = np.array([[0, 257 * 64, 257 * 128, 65535]], dtype=np.uint16).repeat(4, axis=0)
    out = io.BytesIO()
    Image.fromarray(levels).save(out, "PNG")
    rgb = decode(out.getvalue())
    assert rgb[0, :, 0].tolist() == [0, 64, 128, 255]
    assert (rgb[..., 0] == rgb[..., 2]).all()


def test_corrupt_and_truncated_images_are_input_errors() -> None:
    png = encode_image(picture(200, 150, seed=3), "PNG")
    jpeg = encode_image(picture(200, 150, seed=3), "JPEG")
    damaged = png[:100] + bytes(b ^ 0x5A for b in png[100:200]) + png[200:]
    for data in (png[: len(png) // 2], jpeg[: len(jpeg) // 2], damaged):
        with pytest.raises(InputError, match="could not be decoded") as info:
            decode(data)
        assert info.value.name == "InvalidInput"


# ---------------------------------------------------------------------- sizing & fitting
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((720, "16:9", (), 500, 500), (1280, 720)),
        ((1080, "9:16", (), 500, 500), (1080, 1920)),
        ((480, "4:3", (), 100, 900), (640, 480)),
        ((720, "1:1", (), 300, 200), (720, 720)),
        ((720, None, ("16:9", "9:16"), 1000, 800), (1280, 720)),
        ((720, None, ("16:9", "9:16"), 800, 1000), (720, 1280)),
        ((720, None, (), 1000, 1000), (720, 720)),
        ((720, None, (), 641, 480), (962, 720)),
        ((720, None, (), 5000, 1000), (1680, 720)),  # clamped to 21:9
        ((720, None, (), 1000, 5000), (720, 1680)),  # clamped to 9:21
    ],
)
def test_output_size(
    args: tuple[int, str | None, tuple[str, ...], int, int], expected: tuple[int, int]
) -> None:
    width, height = output_size(*args)
    assert (width, height) == expected
    assert width % 2 == 0 and height % 2 == 0


def test_fit_image_covers_by_centre_crop() -> None:
    wide = np.zeros((100, 300, 3), np.uint8)
    wide[:, 100:200] = 200  # the centre third
    fitted = fit_image(wide, 50, 50)
    assert fitted.shape == (50, 50, 3)
    assert (fitted == 200).all()
    enlarged = fit_image(picture(64, 36), 1280, 720)
    assert enlarged.shape == (720, 1280, 3) and enlarged.dtype == np.uint8
    same = picture(64, 48)
    assert (fit_image(same, 64, 48) == same).all()


# --------------------------------------------------------------------------------- audio
def test_wav_decodes_to_mono_at_the_target_rate() -> None:
    stereo = np.stack([tone(2.0, 44100), tone(2.0, 44100)], axis=1)
    data = wav_bytes(stereo, 44100)
    samples = decode_audio(data, "audio_url", 30)
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert samples.size == 96000
    assert abs(float(np.abs(samples).max()) - 0.5) < 0.01  # channels averaged, not summed
    assert audio_duration(data, "audio_url") == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("codec", "container_format"),
    [("libmp3lame", "mp3"), ("aac", "adts"), ("aac", "ipod"), ("libopus", "ogg")],
)
def test_compressed_audio_decodes(codec: str, container_format: str) -> None:
    data = encoded_audio(codec, container_format, seconds=1.0)
    samples = decode_audio(data, "audio_url", 30, sample_rate=16000)
    assert abs(samples.size - 16000) < 16000 * 0.05  # codec priming/padding only
    middle = samples[4000:12000]
    assert np.sqrt(np.mean(middle**2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.1)
    assert audio_duration(data, "audio_url") == pytest.approx(1.0, abs=0.05)


def test_too_long_audio_is_refused_and_a_hair_over_is_trimmed() -> None:
    long = wav_bytes(tone(31.2, 8000, 0.1), 8000)
    with pytest.raises(InputError) as info:
        decode_audio(long, "audio_url", 30, sample_rate=8000)
    assert info.value.message == "audio_url: audio is 31.2 s long; this model accepts at most 30 s"
    close = decode_audio(wav_bytes(tone(30.05, 8000), 8000), "audio_url", 30, sample_rate=8000)
    assert close.size == 30 * 8000
    unlimited = decode_audio(long, "audio_url", None, sample_rate=8000)
    assert unlimited.size == round(31.2 * 8000)


def test_bad_audio_is_refused() -> None:
    with pytest.raises(InputError, match=r"not a recognised audio file \(MP3, WAV, M4A, AAC or"):
        decode_audio(b"not audio at all", "audio_url", 30)
    good = wav_bytes(tone(1.0, 8000), 8000)
    with pytest.raises(InputError, match="could not be decoded as WAV audio"):
        decode_audio(good[:12] + b"\xff" * 64, "audio_url", 30)
    with pytest.raises(InputError, match="no audio samples"):
        decode_audio(wav_bytes(np.zeros(0, np.float32), 8000), "audio_url", 30)
    mp3 = encoded_audio("libmp3lame", "mp3", 1.0)
    with pytest.raises(InputError, match="MP3"):
        decode_audio(mp3[:10] + bytes(range(256)) * 8, "audio_url", 30)


# ---------------------------------------------------------------------------- MP4 output
def sliding_frames(count: int, width: int, height: int) -> Iterator[np.ndarray]:
    canvas = picture(width + count, height, seed=5)
    for index in range(count):
        yield np.ascontiguousarray(canvas[:, index : index + width])


def streams(path: Path) -> dict[str, object]:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        packets = [(p.stream.type, p.pos) for p in container.demux() if p.size]
        container.seek(0)
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        return {
            "codec": video.codec_context.name,
            "pix_fmt": video.codec_context.pix_fmt,
            "fps": float(video.average_rate or 0),
            "duration": float(video.duration * video.time_base),
            "audio": audio.codec_context.name if audio else None,
            "audio_duration": float(audio.duration * audio.time_base) if audio else None,
            "audio_channels": audio.codec_context.channels if audio else None,
            "packets": packets,
            "frames": frames,
        }


def test_write_mp4_round_trip_without_audio(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    seen: list[int] = []
    frames = list(sliding_frames(30, 160, 96))
    info = write_mp4(
        path, iter(frames), fps=25, width=160, height=96, audio=None, on_frame=seen.append
    )
    assert seen == list(range(1, 31))
    got = streams(path)
    assert (got["codec"], got["pix_fmt"], got["fps"], got["audio"]) == ("h264", "yuv420p", 25, None)
    assert abs(got["duration"] - 1.2) < 0.04  # type: ignore[operator]
    decoded = got["frames"]
    assert isinstance(decoded, list) and len(decoded) == 30
    assert min(luma_psnr(a, b) for a, b in zip(decoded, frames, strict=True)) > 35
    # Colours survive (the stream is tagged with the BT.601 matrix it was converted with).
    mean_error = np.abs(decoded[0].mean(axis=(0, 1)) - frames[0].mean(axis=(0, 1)))
    assert mean_error.max() < 3
    assert info == probe_mp4(path)
    assert (info.width, info.height, info.fps, info.has_audio) == (160, 96, 25.0, False)
    assert info.video_codec == "h264" and info.audio_codec is None
    assert info.duration == pytest.approx(1.2, abs=0.04) and info.file_size == path.stat().st_size
    head = path.read_bytes()
    assert head.find(b"moov") < head.find(b"mdat")  # +faststart


@pytest.mark.parametrize(("seconds", "channels"), [(0.5, 1), (3.0, 2)])
def test_write_mp4_audio_is_padded_or_trimmed_and_interleaved(
    tmp_path: Path, seconds: float, channels: int
) -> None:
    path = tmp_path / "clip.mp4"
    samples = tone(seconds, 48000)
    audio = samples if channels == 1 else np.stack([samples, samples], axis=1)
    info = write_mp4(
        path, sliding_frames(50, 96, 64), fps=25, width=96, height=64, audio=audio,
        preset="ultrafast",
    )  # fmt: skip
    got = streams(path)
    assert got["audio"] == "aac" and got["audio_channels"] == channels
    assert abs(got["audio_duration"] - 2.0) < 0.04  # type: ignore[operator]
    assert info.has_audio and info.audio_codec == "aac" and info.duration == pytest.approx(2.0)
    packets = got["packets"]
    assert isinstance(packets, list)
    first_audio = min(pos for kind, pos in packets if kind == "audio")
    last_video = max(pos for kind, pos in packets if kind == "video")
    assert first_audio < last_video


def test_write_mp4_stops_when_on_frame_raises(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"

    def stop_at_five(count: int) -> None:
        if count == 5:
            raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        write_mp4(
            path, sliding_frames(20, 64, 64), fps=25, width=64, height=64, audio=None,
            on_frame=stop_at_five,
        )  # fmt: skip
    assert not path.exists()
    with pytest.raises(ValueError, match="even"):
        write_mp4(path, sliding_frames(2, 63, 64), fps=25, width=63, height=64, audio=None)
