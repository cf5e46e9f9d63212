"""Open-weight video models on the worker's GPU through `diffusers`: what the Wan and
LTX-Video engines share (`engines/wan.py`, `engines/ltx.py` add each family's layouts
and pipeline arguments).

The model directory and the options are in `diffusion_layout.py`, loading the pipelines
in `diffusion_loading.py`, the request in the model's terms (frames, size, seed,
prompts) in `diffusion_mapping.py`, helpers on pipeline objects in `diffusion_pipes.py`;
this module runs the jobs.

One job, start to finish:

1. Inputs: fetch, decode and fit the images to the requested output size (as every
   engine does), and once more to the size the model generates at: the requested aspect
   at the model's own short side (`short_side`), on its size multiple (16 or 32).
2. Sound is planned before the GPU work, so a prompt whose quoted words cannot fit the
   clip fails in milliseconds, not after minutes of denoising.
3. The pipeline: `duration` -> the model's `t*k+1` frame count at its native fps, the
   seed -> a `torch.Generator` (no seed: a hash of the prompts, so a request always gives
   the same video), first/last images as the pipeline's conditioning. Progress comes
   from `callback_on_step_end`; a cancelled job or lost lease sets `pipe._interrupt` and
   stops there, before the next step and without decoding.
4. Delivery: the model's frames are retimed to exactly the requested duration at
   Kinema's 25 fps (first and last frames kept), fitted to the output size, given the
   sound (speech, lip-synced where a face is found in the generated frames, or room
   tone) and encoded on the shared pipeline (`media.pipeline.encode`).

Progress is reported in phases: denoising steps up to DENOISE_END, the VAE decode up to
DECODE_END, then the encode. CUDA out-of-memory becomes an `EngineError` that names the
option to change; the pipeline stays loaded and the worker goes on with the next job.
"""

from __future__ import annotations

import logging
import time
from abc import abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kinema.engines.base import Context, EngineOptions
from kinema.engines.diffusion_layout import (
    WEIGHT_GLOBS,
    Capability,
    DiffusionOptions,
    Layout,
    LayoutError,
    read_config,
    read_index,
)
from kinema.engines.diffusion_loading import DiffusionLoader
from kinema.engines.diffusion_mapping import (
    PEOPLE_NEGATIVE,
    model_frames,
    model_size,
    negative,
    output_dimensions,
    request_seed,
    retime,
    styled,
)
from kinema.engines.diffusion_pipes import is_out_of_memory, release, sibling, with_shift
from kinema.errors import Cancelled, EngineError
from kinema.media.people import check_person_generation
from kinema.media.pipeline import FPS, frame_count
from kinema.media.soundtrack import Soundtrack, lip_sync, plan_sound
from kinema.render_request import (
    DIALOGUE,
    FIRST_LAST_FRAME,
    IMAGE_TO_VIDEO,
    MediaRef,
    RenderRequest,
)

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from kinema.engines.base import InputLimits

    Frame = npt.NDArray[np.uint8]

# Everything the module offered before its split (wan.py, ltx.py, tests and the
# benchmark import from here).
__all__ = [
    "CUDA_OOM_HINT",
    "DECODE_END",
    "DENOISE_END",
    "PEOPLE_NEGATIVE",
    "WEIGHT_GLOBS",
    "Capability",
    "DiffusionEngine",
    "DiffusionOptions",
    "Generation",
    "Layout",
    "LayoutError",
    "PhaseContext",
    "Timings",
    "is_out_of_memory",
    "model_frames",
    "model_size",
    "negative",
    "output_dimensions",
    "read_config",
    "read_index",
    "release",
    "request_seed",
    "retime",
    "sibling",
    "styled",
    "with_shift",
]

log = logging.getLogger("kinema.engines.diffusion")

DENOISE_END = 0.8  # progress when the last denoising step is done
DECODE_END = 0.9  # ... and when the VAE has decoded the frames; the encode fills the rest
CUDA_OOM_HINT = "offload"  # the option an out-of-memory error names first


# --------------------------------------------------------------------------- context
class PhaseContext(Context):
    """The job's context with progress mapped into [start, end]: the encoder reports
    0..1 for its own part of the job."""

    def __init__(self, ctx: Context, start: float, end: float) -> None:
        self.inner = ctx
        self.start, self.end = start, end
        self.output_path = ctx.output_path
        self.work_dir = ctx.work_dir

    @property
    def limits(self) -> InputLimits:  # type: ignore[override]
        return self.inner.limits

    def progress(self, fraction: float) -> None:
        self.inner.progress(self.start + (self.end - self.start) * fraction)

    @property
    def cancelled(self) -> bool:
        return self.inner.cancelled

    def fetch(self, ref: MediaRef) -> bytes:
        return self.inner.fetch(ref)


# --------------------------------------------------------------------------- the engine
@dataclass
class Generation:
    """One generation's pipeline-facing values (what a family's `arguments()` reads)."""

    request: RenderRequest
    width: int  # generation size
    height: int
    frames: int  # model frames
    fps: int
    seed: int
    generator: Any
    image: Any = None  # PIL images at the generation size
    last_image: Any = None
    prompt: str = ""
    negative_prompt: str | None = None


@dataclass
class Timings:
    """Seconds per part of the last job (logged; the benchmark reads them)."""

    prepare: float = 0.0  # fetch, decode, fit, sound
    pipeline: float = 0.0  # the diffusers call: text encoder, denoising, VAE decode
    deliver: float = 0.0  # to uint8 on the host, retime, fit, lip-sync, encode + mux
    frames: int = 0
    size: tuple[int, int] = (0, 0)


class DiffusionEngine(DiffusionLoader):
    """Base of the diffusers engines. A family sets the class attributes and implements
    `describe` (a layout from model_index.json) and `arguments` (the pipeline call)."""

    def __init__(self, options: EngineOptions | None = None) -> None:
        super().__init__(options)
        self.timings = Timings()

    # ---- what a family provides ----------------------------------------------------
    @abstractmethod
    def arguments(self, capability: str, pipe: Any, job: Generation) -> dict[str, Any]:
        """The family's pipeline arguments for `job` (besides the common ones)."""

    # ---- one job -------------------------------------------------------------------
    def generate(self, request: RenderRequest, ctx: Context) -> None:
        with self._lock:
            self._load()
            self._generate(request, ctx)

    def _generate(self, request: RenderRequest, ctx: Context) -> None:
        from kinema.media.framing import frame_image, frame_pair
        from kinema.media.images import fit_image
        from kinema.media.pipeline import decode_input

        started = time.perf_counter()
        capability = request.capability
        if capability == DIALOGUE:
            capability = IMAGE_TO_VIDEO  # the same video; plan_sound adds the words
        pipe = self._pipes.get(capability)
        if pipe is None:
            raise EngineError(
                f"The {self.name} engine's model ({self.layout().description}) does not do "
                f"{capability}; it serves {', '.join(sorted(self._pipes))}."
            )
        if capability in (IMAGE_TO_VIDEO, FIRST_LAST_FRAME) and request.image is None:
            raise EngineError(f"{capability} needs an input image, and none was given.")
        if capability == FIRST_LAST_FRAME and request.last_image is None:
            raise EngineError("first-last-frame needs a last image, and none was given.")

        # Inputs, decoded once and fitted twice: to the delivered size and to the
        # generation size, both cropped the same way from the same picture.
        first = decode_input(ctx, request.image, request) if request.image else None
        last = decode_input(ctx, request.last_image, request) if request.last_image else None
        width, height = output_dimensions(request, first)
        ctx.check_cancelled()
        layout = self.layout()
        gen_w, gen_h = model_size(
            width, height, self.options.short_side or layout.short_side, self.spatial_multiple
        )
        checked = []
        # Faces kept in the picture, and one window for a first/last pair (framing.py).
        if first is not None and last is not None:
            first, last = frame_pair(first, last, width, height)
        elif first is not None:
            first = frame_image(first, width, height)
        if first is not None and request.image is not None:
            checked.append((request.image.field, first))
        if last is not None and request.last_image is not None:
            checked.append((request.last_image.field, last))
        check_person_generation(request, checked)
        count = frame_count(request.duration)
        sound = plan_sound(request, count, request_seed(request))
        ctx.check_cancelled()

        import torch
        from PIL import Image

        fps = self.options.fps or layout.fps
        seed = request_seed(request)
        generator = torch.Generator(device=self._generator_device()).manual_seed(seed)
        job = Generation(
            request=request, width=gen_w, height=gen_h,
            frames=model_frames(count / FPS, fps, self.temporal_multiple), fps=fps, seed=seed,
            generator=generator,
            image=None if first is None else Image.fromarray(fit_image(first, gen_w, gen_h)),
            last_image=None if last is None else Image.fromarray(fit_image(last, gen_w, gen_h)),
            prompt=styled(request.prompt, request.style),
            negative_prompt=negative(request),
        )  # fmt: skip
        prepared = time.perf_counter()
        video = self.run_pipeline(capability, pipe, job, ctx)
        piped = time.perf_counter()
        ctx.progress(DECODE_END)
        self.deliver(video, job, width, height, count, sound, ctx)
        done = time.perf_counter()
        self.timings = Timings(
            prepared - started, piped - prepared, done - piped, job.frames, (gen_w, gen_h)
        )
        log.info(
            "%s: %d frames at %dx%d -> %dx%d, %d steps: prepare %.2f s, pipeline %.2f s, "
            "deliver %.2f s", self.name, job.frames, gen_w, gen_h, width, height,
            getattr(pipe, "_num_timesteps", 0), self.timings.prepare, self.timings.pipeline,
            self.timings.deliver,
        )  # fmt: skip

    def _generator_device(self) -> str:
        # With CPU offload the latents are still made on the execution device.
        return self.options.device

    def run_pipeline(self, capability: str, pipe: Any, job: Generation, ctx: Context) -> Any:
        """Run the diffusers pipeline: the decoded video as a (frames, 3, H, W) float
        tensor in [0, 1], on the device. Cancellation stops it between steps."""
        import torch

        state = {"steps": 0, "total": 0}

        def on_step(pipeline: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> Any:
            total = int(getattr(pipeline, "_num_timesteps", 0) or self.options.steps or 1)
            state["steps"], state["total"] = step + 1, total
            if ctx.cancelled:
                # Stop here: diffusers' own interrupt would skip the remaining steps but
                # still decode, which is seconds to minutes of GPU for nothing.
                pipeline._interrupt = True
                raise Cancelled("The job was stopped between two denoising steps.")
            ctx.progress(DENOISE_END * (step + 1) / total)
            return tensors

        arguments: dict[str, Any] = {
            "prompt": job.prompt,
            "negative_prompt": job.negative_prompt,
            "height": job.height,
            "width": job.width,
            "num_frames": job.frames,
            "generator": job.generator,
            "output_type": "pt",
            "callback_on_step_end": on_step,
            "callback_on_step_end_tensor_inputs": ["latents"],
        }
        if self.options.steps is not None:
            arguments["num_inference_steps"] = self.options.steps
        if self.options.guidance_scale is not None:
            arguments["guidance_scale"] = self.options.guidance_scale
        arguments.update(self.arguments(capability, pipe, job))
        self._activate(pipe)
        ctx.check_cancelled()
        try:
            with torch.inference_mode():
                output = self.call(pipe, arguments)
        except Exception as error:
            release(pipe)
            if not is_out_of_memory(error):
                raise
            decoding = state["total"] > 0 and state["steps"] >= state["total"]
            raise EngineError(self.oom_message(job, decoding), "OutOfMemory") from None
        frames = output.frames[0] if hasattr(output, "frames") else output[0][0]
        return frames

    def call(self, pipe: Any, arguments: dict[str, Any]) -> Any:
        """The pipeline call itself (a benchmark or test may wrap it)."""
        return pipe(**arguments)

    def oom_message(self, job: Generation, decoding: bool) -> str:
        where = f"{job.frames} frames at {job.width}x{job.height} on {self.options.device}"
        if decoding:
            fix = (
                f"set the {self.name} engine's option vae_tiling = true (decodes in tiles), "
                f"or offload = 'model'"
            )
            return f"The GPU ran out of memory decoding {where}: {fix}."
        smaller = max(16, (job.height if job.height < job.width else job.width) * 3 // 4)
        fix = (
            f"set the {self.name} engine's option {CUDA_OOM_HINT} = 'model' (or "
            f"'sequential', the least memory), or short_side = {smaller} for smaller "
            f"frames, or ask for a shorter video"
        )
        return f"The GPU ran out of memory denoising {where}: {fix}."

    def deliver(
        self,
        video: Any,
        job: Generation,
        width: int,
        height: int,
        count: int,
        sound: Soundtrack | None,
        ctx: Context,
    ) -> None:
        """Frames to uint8 on the host, retimed to `count` frames at 25 fps, fitted to
        width x height, lip-synced when words are spoken, encoded with the sound."""
        import numpy as np

        from kinema.media.images import fit_image
        from kinema.media.pipeline import encode

        # One conversion on the device: (frames, 3, H, W) floats -> (frames, H, W, 3) bytes.
        frames = (video.float().clamp(0, 1) * 255).round().to(dtype=_uint8()).permute(0, 2, 3, 1)
        pixels: npt.NDArray[np.uint8] = np.ascontiguousarray(frames.cpu().numpy())
        order = retime(len(pixels), count)

        def fitted() -> Iterator[Frame]:
            for index in order:
                yield fit_image(pixels[index], width, height)

        out: Iterator[Frame] = fitted()
        if sound is not None and sound.mouth is not None:
            out = lip_sync(out, sound.mouth, sound.seed)
        audio = None if sound is None else sound.samples
        encode(PhaseContext(ctx, DECODE_END, 1.0), out, count, width, height, audio)


def _uint8() -> Any:
    import torch

    return torch.uint8
