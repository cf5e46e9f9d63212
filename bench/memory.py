"""Benchmark: peak RSS of each CPU engine rendering a clip, against a bare PyAV x264 encode
of the same number of frames at the same size.

Every measurement is a fresh `python -m bench.memory child ...` process, so its imports and
its peak are its own: the engine child imports the engine, calls `load()` (what a worker
does once at start) and `generate()` through `kinema.testing.FakeContext` on the inputs
the timing benchmarks use (bench/motion.py's picture, the astronaut photo with speech,
bench/morph.py's moved pair); the baseline child imports numpy and av only and encodes
that many frames of that size (windows sliding over a picture, handed to PyAV as rgb24)
with the engine's x264 settings, and muxes the same audio the engine's clip carries (its
track decoded back from the clip, encoded as the engine encodes it: AAC at 128 kb/s),
so both sides write the same streams. The peak is the kernel's high-water mark of the
process's resident set (`VmHWM` in /proc/self/status), read as the child exits; not
`ru_maxrss`, which a child started by vfork inherits from the parent across exec.
Informational rows also give each peak less what the process held before the job (after
its imports and `load()`), against the bare encode's peak less numpy + av: the part that
comes with the job and grows with the picture.

The clips are 5 s: x264's buffers (lookahead, frame threads) are all allocated within
the first second, and a streaming engine's peak does not grow with the length (the
motion row at 10 s checks that). Informational rows: motion in a process set up as
`kinema worker` is (its modules imported, every default engine loaded, face models and
all), and each process's resident set after its imports and `load()`, against numpy + av
alone: the part of every peak that does not scale with the picture, and why the small
sizes have the highest ratios.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

SECONDS = 5.0
FPS = 25
SIZES = (480, 720, 1080)
ENGINES = ("motion", "talking_head", "speaking", "morph", "testcard", "dubbing")
LONG = ("motion", 1080, 10.0)  # a longer clip: the peak must not grow with the length
WORKER = ("worker:motion", 1080, SECONDS)  # what `kinema worker` holds serving motion
TARGET = 1.4
TEXT = "Hello and welcome. Today we look at the stars, and the stars look back at us."


def peak_mb() -> float:
    """This process's peak resident set so far, in MB (10^6 bytes)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError("no VmHWM in /proc/self/status")


# ---- the children ---------------------------------------------------------------------


def resident_mb() -> float:
    """This process's resident set now, in MB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError("no VmRSS in /proc/self/status")


def _engine_child(engine_name: str, short_side: int, seconds: float, inputs: Path) -> None:
    """Render one clip with `engine_name` and report its size and this process's peak.
    "worker:NAME" renders with NAME in a process set up as `kinema worker` sets itself up
    (its modules imported, every default engine configured and loaded)."""
    from kinema.engines.base import Engine
    from kinema.render_request import (
        FIRST_LAST_FRAME,
        IMAGE_TO_VIDEO,
        LIP_SYNC_TTS,
        TALKING_HEAD,
        VIDEO_DUBBING,
        MediaRef,
        RenderRequest,
    )
    from kinema.testing.context import FakeContext

    image = MediaRef("image_url", "data:")
    engine: Engine
    worker_engine: Engine | None = None
    if engine_name.startswith("worker:"):
        import kinema.worker.loop  # noqa: F401  (what a worker process has imported)
        from kinema.engines.registry import EngineSet
        from kinema.settings import Settings

        engine_name = engine_name.removeprefix("worker:")
        engines = EngineSet.configure(Settings().engines, {}, environ={})
        engines.load()
        worker_engine = engines.engines[engine_name]
    if engine_name == "motion":
        from kinema.engines.motion import MotionEngine

        engine = MotionEngine()
        request = RenderRequest(
            model="bench", capability=IMAGE_TO_VIDEO, prompt="slow zoom in on the scene",
            image=image, duration=seconds, short_side=short_side, aspect="16:9",
            generate_audio=True, seed=7,
        )  # fmt: skip
        files = {"image_url": "picture.jpg"}
    elif engine_name == "talking_head":
        from kinema.engines.talking_head import TalkingHeadEngine

        engine = TalkingHeadEngine()
        request = RenderRequest(
            model="veed/fabric-1.0", capability=TALKING_HEAD, image=image,
            audio=MediaRef("audio_url", "data:", "audio"), max_audio_seconds=30.0,
            short_side=short_side, generate_audio=True, seed=7,
        )  # fmt: skip
        files = {"image_url": "face.png", "audio_url": f"speech-{seconds:g}.wav"}
    elif engine_name == "speaking":
        from kinema.engines.speaking import SpeakingEngine

        engine = SpeakingEngine()
        request = RenderRequest(
            model="bench", capability=LIP_SYNC_TTS, image=image, tts_text=TEXT,
            tts_speaker="Chloe", duration=seconds, short_side=short_side, seed=7,
            generate_audio=True,
        )  # fmt: skip
        files = {"image_url": "face.jpg"}
    elif engine_name == "morph":
        from kinema.engines.morph import MorphEngine

        engine = MorphEngine()
        request = RenderRequest(
            model="bench", capability=FIRST_LAST_FRAME, image=image,
            last_image=MediaRef("last_image_url", "data:"), duration=seconds,
            short_side=short_side, aspect="16:9", generate_audio=True, seed=7,
        )  # fmt: skip
        files = {"image_url": "picture.jpg", "last_image_url": "moved.jpg"}
    elif engine_name == "dubbing":
        from kinema.engines.dubbing import DubbingEngine

        engine = DubbingEngine()
        request = RenderRequest(
            model="pixverse/lip-sync", capability=VIDEO_DUBBING,
            video=MediaRef("video_url", "data:", "video"), max_video_seconds=30.0,
            audio=MediaRef("audio_url", "data:", "audio"), max_audio_seconds=30.0,
            short_side=short_side, generate_audio=True, seed=7,
        )  # fmt: skip
        files = {"video_url": f"talking-{short_side}.mp4", "audio_url": f"speech-{seconds:g}.wav"}
    elif engine_name == "testcard":
        from kinema.engines.testcard import TestcardEngine

        engine = TestcardEngine()
        request = RenderRequest(
            model="bench", capability=IMAGE_TO_VIDEO, prompt="a test card over the picture",
            image=image, duration=seconds, short_side=short_side, aspect="16:9",
            generate_audio=True, seed=7,
        )  # fmt: skip
        files = {"image_url": "picture.jpg"}
    else:
        raise SystemExit(f"unknown engine {engine_name!r}")
    if worker_engine is not None:
        engine = worker_engine
    else:
        engine.load()
    loaded = resident_mb()
    with tempfile.TemporaryDirectory() as tmp:
        data = {field: (inputs / name).read_bytes() for field, name in files.items()}
        ctx = FakeContext(Path(tmp), data, output_name="clip.mp4")
        del data
        engine.generate(request, ctx)
        peak = peak_mb()  # before the audio is read back below
        from kinema.media.encode import probe_mp4

        info = probe_mp4(ctx.output_path)
        frames = round(info.duration * info.fps)
        audio = _save_audio(ctx.output_path, inputs, f"{engine_name}-{short_side}-{seconds:g}")
    print(json.dumps({"width": info.width, "height": info.height, "frames": frames,
                      "audio": audio, "peak_mb": peak, "loaded_mb": loaded}))  # fmt: skip


def _save_audio(clip: Path, folder: Path, name: str) -> str:
    """The clip's audio track decoded to `folder/audio-NAME.npy` (float32, planar), for
    the baseline to encode the same streams; "" when the clip has none."""
    import av
    import numpy as np

    with av.open(str(clip)) as container:
        if not container.streams.audio:
            return ""
        rate = container.streams.audio[0].rate
        chunks = [frame.to_ndarray() for frame in container.decode(audio=0)]
    planar = np.ascontiguousarray(np.concatenate(chunks, axis=1), np.float32)
    np.save(folder / f"audio-{name}.npy", planar)
    (folder / f"audio-{name}.rate").write_text(str(rate))
    return name


def _bare_child(width: int, height: int, frames: int, audio: str, inputs: Path) -> None:
    """Encode `frames` frames of `width`x`height` with PyAV alone, and the engine's audio
    track `audio` (as the engine muxes it: AAC, 128 kb/s, 1024-sample frames
    interleaved with the video) when it is not ""; report the peak."""
    from fractions import Fraction

    import av
    import numpy as np

    # The picture, pre-sized by the parent to (height + frames, width + frames): frame i
    # is the window at (i, i), so the encoder tracks a diagonal pan.
    loaded = resident_mb()
    wide = np.load(inputs / f"wide-{width}x{height}-{frames}.npy")
    samples = np.load(inputs / f"audio-{audio}.npy") if audio else None
    rate = int((inputs / f"audio-{audio}.rate").read_text()) if audio else 0
    with (
        tempfile.TemporaryDirectory() as tmp,
        av.open(str(Path(tmp) / "bare.mp4"), mode="w", format="mp4") as container,
    ):
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "23", "x264-params": "deterministic=1"}
        stream.thread_type = "AUTO"
        stream.thread_count = 0
        sound: Any = None
        if samples is not None:
            sound = container.add_stream("aac", rate=rate)
            sound.layout = "mono" if samples.shape[0] == 1 else "stereo"
            sound.bit_rate = 128_000
        sent = 0
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(
                wide[index : index + height, index : index + width], format="rgb24"
            )
            frame.pts = index
            container.mux(stream.encode(frame))
            if samples is not None:
                upto = min((index + 1) * rate // FPS, samples.shape[1])
                while sent < upto and (sent + 1024 <= upto or index == frames - 1):
                    chunk = av.AudioFrame.from_ndarray(
                        np.ascontiguousarray(samples[:, sent : sent + 1024]),
                        format="fltp",
                        layout=sound.layout,
                    )
                    chunk.sample_rate, chunk.pts = rate, sent
                    chunk.time_base = Fraction(1, rate)
                    container.mux(sound.encode(chunk))
                    sent += chunk.samples
        if sound is not None:
            container.mux(sound.encode(None))
        container.mux(stream.encode(None))
    print(json.dumps({"width": width, "height": height, "frames": frames,
                      "peak_mb": peak_mb(), "loaded_mb": loaded}))  # fmt: skip


# ---- the parent -----------------------------------------------------------------------


def _child(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.memory", "child", *args],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"bench.memory child {args} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _talking_clip(folder: Path, short_side: int) -> None:
    """A talking-head clip of the astronaut for the dubbing engine to re-voice."""
    from kinema.engines.talking_head import TalkingHeadEngine
    from kinema.render_request import TALKING_HEAD, MediaRef, RenderRequest
    from kinema.testing.context import FakeContext

    request = RenderRequest(
        model="veed/fabric-1.0", capability=TALKING_HEAD, image=MediaRef("image_url", "data:"),
        audio=MediaRef("audio_url", "data:", "audio"), max_audio_seconds=30.0,
        short_side=short_side, generate_audio=True, seed=3,
    )  # fmt: skip
    data = {"image_url": (folder / "face.png").read_bytes()}
    data["audio_url"] = (folder / f"speech-{SECONDS:g}.wav").read_bytes()
    ctx = FakeContext(folder, data, output_name=f"talking-{short_side}.mp4")
    engine = TalkingHeadEngine()
    engine.load()
    engine.generate(request, ctx)


def _inputs(folder: Path, engines: tuple[str, ...], sizes: tuple[int, ...]) -> None:
    """The engines' inputs, written once for every child."""
    import io

    import cv2
    import numpy as np
    import skimage.data
    from PIL import Image

    from bench.motion import _picture
    from bench.talking_head import _speech, _wav

    def save(image: Any, name: str, fmt: str) -> None:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
        (folder / name).write_bytes(buffer.getvalue())

    picture = _picture()
    height, width = picture.shape[:2]
    zoom = 1.06  # bench/morph.py's pair: the camera moved right, down and in
    matrix = np.array(
        [[zoom, 0, -0.04 * width - (zoom - 1) * width / 2],
         [0, zoom, -0.03 * height - (zoom - 1) * height / 2]]
    )  # fmt: skip
    moved = cv2.warpAffine(picture, matrix, (width, height), borderMode=cv2.BORDER_REFLECT_101)
    save(picture, "picture.jpg", "JPEG")
    save(moved, "moved.jpg", "JPEG")
    face = np.ascontiguousarray(skimage.data.astronaut())
    save(face, "face.png", "PNG")
    save(face, "face.jpg", "JPEG")
    speech = _speech()
    (folder / f"speech-{SECONDS:g}.wav").write_bytes(_wav(speech))
    np.save(folder / "picture.npy", picture)
    if "dubbing" in engines:
        for size in sizes:
            _talking_clip(folder, size)


def _wide(folder: Path, width: int, height: int, frames: int) -> None:
    import cv2
    import numpy as np

    path = folder / f"wide-{width}x{height}-{frames}.npy"
    if not path.exists():
        picture = np.load(folder / "picture.npy")
        size = (width + frames, height + frames)
        np.save(path, cv2.resize(picture, size, interpolation=cv2.INTER_AREA))


def _row(name: str, value: float, baseline: float, target: str = f"≤ {TARGET}×") -> dict[str, Any]:
    return {
        "benchmark": name,
        "value": round(value),
        "unit": "MB",
        "baseline": round(baseline),
        "ratio": round(value / baseline, 2),
        "target": target,
    }


def run(engines: tuple[str, ...] = ENGINES, sizes: tuple[int, ...] = SIZES) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    bares: dict[tuple[int, int, int], dict[str, Any]] = {}
    loaded: dict[str, float] = {}
    growth: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _inputs(folder, engines, sizes)
        plan = [(name, size, SECONDS) for name in engines for size in sizes]
        if LONG[0] in engines and LONG[1] in sizes:
            plan.append(LONG)
        if WORKER[0].removeprefix("worker:") in engines and WORKER[1] in sizes:
            plan.append(WORKER)
        for name, size, seconds in plan:
            engine = _child("engine", name, str(size), str(seconds), str(folder))
            key = (engine["width"], engine["height"], engine["frames"])
            _wide(folder, *key)
            # The same streams as the engine's clip: its picture size and length, and
            # its own audio track encoded alongside (AAC's encoder and the interleaving
            # are part of any clip with sound).
            bare = _child("bare", *(str(k) for k in key), engine["audio"], str(folder))
            bares[key] = bare
            loaded.setdefault(name, engine["loaded_mb"])
            clip = f"{key[0]}x{key[1]}, {key[2] / FPS:g} s"
            if name.startswith("worker:"):
                label = f"peak RSS {name.removeprefix('worker:')} {size}p in a worker with "
                label += f"every default engine loaded ({clip})"
                rows.append(_row(label, engine["peak_mb"], bare["peak_mb"], "informational"))
            else:
                label = f"peak RSS {name} {size}p ({clip})"
                rows.append(_row(label, engine["peak_mb"], bare["peak_mb"]))
                # The part of the peak that comes with the job: above what the process
                # held after its imports and load(), against the bare encode's above
                # numpy + av (what a second job at once, or a bigger picture, adds).
                label = f"peak RSS above imports + load(), {name} {size}p ({clip}; "
                label += "baseline: bare encode above numpy + av)"
                growth.append(
                    _row(label, engine["peak_mb"] - engine["loaded_mb"],
                         bare["peak_mb"] - bare["loaded_mb"], "informational")
                )  # fmt: skip
            print(rows[-1], file=sys.stderr, flush=True)
        # What a process holds before its first frame: the share of each peak that does
        # not grow with the resolution (interpreter, libraries, models), against numpy +
        # av alone.
        imported = min(bare["loaded_mb"] for bare in bares.values())
        for name, value in loaded.items():
            label = f"RSS after imports + load(), {name.replace('worker:', 'worker with ')}"
            rows.append(_row(label + " (baseline: numpy + av)", value, imported, "informational"))
    return rows + growth


def main(argv: list[str]) -> None:
    if argv[:1] == ["child"]:
        kind, *args = argv[1:]
        if kind == "engine":
            _engine_child(args[0], int(args[1]), float(args[2]), Path(args[3]))
        else:
            _bare_child(int(args[0]), int(args[1]), int(args[2]), args[3], Path(args[4]))
        return
    # `python -m bench.memory [engine ...]`: some engines only, all sizes.
    for row in run(tuple(argv) or ENGINES):
        print(row)


if __name__ == "__main__":
    main(sys.argv[1:])
