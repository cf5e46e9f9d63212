"""Benchmark: what Kinema adds around a diffusers pipeline, per job (`python -m bench.diffusion`).

The wan engine runs a tiny random-weight Wan 2.2 TI2V-5B layout (`tests.tiny_diffusion`)
on the CPU at 81 frames (5 s at 16 fps, Wan's usual clip); inside the pipeline call its
frames are upscaled to 832x480, so everything after the call handles exactly what a real
Wan model hands over at 480p. Loading is excluded. Per job the engine's own clock splits:

- prepare: input fetch (a data: URI here; an HTTP fetch adds the network), decode and
  fit, and the sound (room tone, or speech synthesis + the mouth track);
- pipeline: the diffusers call (text encoder, denoising, VAE decode) — the tiny model's
  time here, meaningless in itself, so shares are also given against reference times;
- deliver: frames to bytes on the host, retiming to 25 fps, fitting to the output size,
  lip-sync when words are spoken, H.264 encode and AAC mux;
- upload: checking the MP4 and putting it in (local) blob storage, as the worker does.

The CPU time of the overhead (the whole job's, less the pipeline call's, every thread
counted) is given too: on a shared machine it moves much less than the wall clock.

Kinema's overhead is prepare + deliver + upload. It is shown as a share of reference
pipeline times (`--pipeline-seconds`, default 240 s: Wan 2.1 T2V-1.3B's figure for a 5 s
480p clip on an RTX 4090 in Wan's README; and 60 s, a fast GPU/model) against the issue's
target of 5 %. Medians of RUNS rounds.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from bench.common import RUNS
from kinema.engines.diffusion import DiffusionOptions
from kinema.engines.wan import WanEngine
from kinema.render_request import DIALOGUE, IMAGE_TO_VIDEO, TEXT_TO_VIDEO, MediaRef, RenderRequest

MODEL_SIZE = (480, 832)  # (height, width) of a real Wan 480p clip
SECONDS = 5.0  # 81 frames at 16 fps
REFERENCE_SECONDS = (240.0, 60.0)
TARGET = 0.05

SCENARIOS = (
    # (name, capability, short side delivered, prompt)
    ("t2v 480p", TEXT_TO_VIDEO, 480, "A red fox runs through fresh snow."),
    ("i2v 720p", IMAGE_TO_VIDEO, 720, "The camera slowly pushes in."),
    ("i2v 720p + speech", DIALOGUE, 720, "She smiles and says: 'Welcome to the show.'"),
)


class UpscaledWan(WanEngine):
    """The tiny model's frames upscaled to a real model's size inside the pipeline call,
    so the upscale counts as pipeline time and Kinema's work sees real-size frames."""

    pipeline_cpu = 0.0  # CPU seconds of the last call

    def call(self, pipe: Any, arguments: dict[str, Any]) -> Any:
        import torch.nn.functional as functional

        started = cpu_seconds()
        output = super().call(pipe, arguments)
        frames = functional.interpolate(output.frames[0], size=MODEL_SIZE, mode="bilinear")
        self.pipeline_cpu = cpu_seconds() - started
        return SimpleNamespace(frames=frames[None].clamp(0, 1))


def cpu_seconds() -> float:
    """CPU time of this process, every thread (x264's included): steadier than the wall
    clock on a shared machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _jpeg(width: int, height: int) -> bytes:
    import io

    from PIL import Image

    from tests.support import make_face

    face = Image.open(io.BytesIO(make_face(height)))
    canvas = Image.new("RGB", (width, height), (90, 110, 140))
    canvas.paste(face, ((width - height) // 2, 0))
    out = io.BytesIO()
    canvas.save(out, "JPEG", quality=90)
    return out.getvalue()


def measure(
    engine: UpscaledWan, scenario: tuple[str, str, int, str], work: Path
) -> dict[str, float]:
    """Median seconds of each part of one job over RUNS runs."""
    from kinema.media.encode import probe_mp4
    from kinema.settings import Settings
    from kinema.storage import open_storage
    from kinema.testing.context import FakeContext

    name, capability, short_side, prompt = scenario
    storage = open_storage(Settings(data_dir=work / "data"))
    image = _jpeg(1280, 720) if capability != TEXT_TO_VIDEO else None
    request = RenderRequest(
        model="bench", capability=capability, prompt=prompt, duration=SECONDS,
        short_side=short_side, aspect="16:9", generate_audio=True, seed=1,
        image=MediaRef("image_url", "https://example.invalid/i.jpg") if image else None,
    )  # fmt: skip
    samples: dict[str, list[float]] = {
        "prepare": [], "pipeline": [], "deliver": [], "upload": [], "overhead_cpu": [],
    }  # fmt: skip
    for run in range(RUNS):
        folder = work / f"{name.replace(' ', '-')}-{run}"
        folder.mkdir(parents=True)
        ctx = FakeContext(folder, inputs={"image_url": image} if image else {})
        cpu = cpu_seconds()
        engine.generate(request, ctx)
        started = time.perf_counter()
        probe_mp4(ctx.output_path)
        storage.put(f"videos/{folder.name}.mp4", ctx.output_path, "video/mp4")
        samples["upload"].append(time.perf_counter() - started)
        samples["overhead_cpu"].append(cpu_seconds() - cpu - engine.pipeline_cpu)
        timings = engine.timings
        samples["prepare"].append(timings.prepare)
        samples["pipeline"].append(timings.pipeline)
        samples["deliver"].append(timings.deliver)
    return {key: statistics.median(values) for key, values in samples.items()}


def run(pipeline_seconds: tuple[float, ...] = REFERENCE_SECONDS) -> list[dict[str, Any]]:
    from tests import tiny_diffusion

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="kinema-bench-diffusion-") as tmp:
        work = Path(tmp)
        model_dir = tiny_diffusion.wan_ti2v(work / "model")
        engine = UpscaledWan(
            DiffusionOptions(
                model_dir=model_dir, device="cpu", dtype="fp32", steps=2, fps=16, short_side=32
            )
        )
        engine.load()
        for scenario in SCENARIOS:
            parts = measure(engine, scenario, work)
            overhead = parts["prepare"] + parts["deliver"] + parts["upload"]
            name = f"diffusion {scenario[0]}, 81 frames from 832x480"
            for part in ("prepare", "deliver", "upload"):
                rows.append({"benchmark": f"{name}: {part}", "value": f"{parts[part]:.2f}",
                             "unit": "s"})  # fmt: skip
            rows.append({
                "benchmark": f"{name}: Kinema's overhead", "value": f"{overhead:.2f}",
                "unit": "s", "baseline": f"{parts['pipeline']:.2f} s tiny pipeline",
            })  # fmt: skip
            rows.append({"benchmark": f"{name}: Kinema's overhead, CPU time",
                         "value": f"{parts['overhead_cpu']:.2f}", "unit": "CPU s"})  # fmt: skip
            for reference in pipeline_seconds:
                rows.append({
                    "benchmark": f"{name}: overhead share of a {reference:g} s pipeline",
                    "value": f"{100 * overhead / reference:.1f}", "unit": "%",
                    "ratio": f"{overhead / reference:.3f}", "target": f"< {100 * TARGET:g} %",
                })  # fmt: skip
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.diffusion", description=__doc__)
    parser.add_argument(
        "--pipeline-seconds", type=float, nargs="+", default=list(REFERENCE_SECONDS),
        help="reference GPU pipeline times to give the overhead's share of",
    )  # fmt: skip
    args = parser.parse_args()
    from bench.__main__ import table

    print(table(run(tuple(args.pipeline_seconds))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
