"""Open-weight video models on the worker's GPU through `diffusers`: what the Wan and
LTX-Video engines share (`engines/wan.py`, `engines/ltx.py` add each family's layouts
and pipeline arguments).

A model is a diffusers-format directory (`model_dir`, as `save_pretrained` or
`hf download` writes it: `model_index.json` plus one folder per component). Its
`model_index.json` tells which pipeline class it is and with which options, which is all
`offered()` needs to tell the capabilities without importing anything. Kinema never
downloads weights: a missing or incomplete directory disables the engine with a message
naming the expected files and the command that fetches them elsewhere.

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

import hashlib
import json
import logging
import threading
import time
from abc import abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from kinema.engines.base import Context, Engine, EngineOptions
from kinema.errors import Cancelled, EngineError
from kinema.media.people import check_person_generation
from kinema.media.pipeline import FPS, frame_count
from kinema.media.soundtrack import Soundtrack, lip_sync, plan_sound
from kinema.specs.base import (
    DIALOGUE,
    FIRST_LAST_FRAME,
    IMAGE_TO_VIDEO,
    TEXT_TO_VIDEO,
    MediaRef,
    RenderRequest,
)

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from kinema.engines.base import InputLimits

    Frame = npt.NDArray[np.uint8]

log = logging.getLogger("kinema.engines.diffusion")

DENOISE_END = 0.8  # progress when the last denoising step is done
DECODE_END = 0.9  # ... and when the VAE has decoded the frames; the encode fills the rest
PEOPLE_NEGATIVE = "people, person, human face, human body"  # person_generation=dont_allow
# The mouth moves on frames where the track is further than this from closed and neutral.
WEIGHT_GLOBS = ("*.safetensors", "*.bin", "*.pt", "*.pth", "*.gguf", "*.safetensors.index.json")
CUDA_OOM_HINT = "offload"  # the option an out-of-memory error names first


Capability = Literal["text-to-video", "image-to-video", "first-last-frame", "dialogue"]


class DiffusionOptions(EngineOptions):
    model_dir: Path | None = Field(
        default=None,
        description="A diffusers-format model directory (model_index.json plus one folder "
        "per component, as save_pretrained or `hf download` writes it). Nothing is "
        "downloaded at run time.",
    )
    device: str = Field(
        default="cuda",
        pattern=r"^(cpu|cuda(:\d+)?|mps|xpu(:\d+)?)$",
        description="Where the pipeline runs: cuda, cuda:1, cpu...",
    )
    dtype: Literal["bf16", "fp16", "fp32"] = Field(
        default="bf16", description="Weights' precision (the Wan VAE stays in fp32)."
    )
    offload: Literal["none", "model", "sequential"] = Field(
        default="none",
        description="CPU offload: 'model' keeps one component at a time on the GPU, "
        "'sequential' one layer at a time (least memory, slowest).",
    )
    vae_tiling: bool = Field(
        default=False, description="Decode the video in tiles (much less GPU memory)."
    )
    steps: int | None = Field(
        default=None, ge=1, le=200, description="Denoising steps (default: the pipeline's)."
    )
    guidance_scale: float | None = Field(
        default=None, ge=0, le=50, description="Classifier-free guidance (default: the pipeline's)."
    )
    flow_shift: float | None = Field(
        default=None, gt=0, le=50, description="The flow-matching scheduler's shift."
    )
    fps: int | None = Field(
        default=None, ge=1, le=60,
        description="The rate the model generates at (default: the model's native rate); "
        "clips are delivered at 25 fps and the requested duration either way.",
    )  # fmt: skip
    short_side: int | None = Field(
        default=None, ge=16, le=2160,
        description="Short side of the frames the model generates (default: the model's "
        "native one, e.g. 480 for Wan 2.1, 704 for Wan 2.2 TI2V-5B, 512 for LTX-Video); "
        "they are then scaled to the requested resolution.",
    )  # fmt: skip
    compile: bool = Field(default=False, description="torch.compile the transformer(s).")
    capabilities: list[Capability] | None = Field(
        default=None,
        description="What this engine serves, declared: for an API process on a machine "
        "without torch or the weights (GPU workers elsewhere run the jobs). The engine is "
        "then enabled without checking either; a worker still checks both when it loads, "
        "and serves what the weights allow.",
    )


@dataclass(frozen=True)
class Layout:
    """What a model directory holds, read from its JSON files alone."""

    pipeline: str  # model_index.json's _class_name
    capabilities: frozenset[str]
    fps: int  # native generation rate
    short_side: int  # native short side
    description: str  # for logs: "Wan 2.2 TI2V-5B (expand_timesteps)"
    index: dict[str, Any] = field(default_factory=dict)


class LayoutError(Exception):
    """The model directory cannot serve: the message says what is wrong and what to do."""


def read_index(model_dir: Path, fetch_hint: str) -> dict[str, Any]:
    """model_index.json, with each component it names checked on disk."""
    if not model_dir.is_dir():
        raise LayoutError(f"model_dir {model_dir} is not a directory. {fetch_hint}")
    index_path = model_dir / "model_index.json"
    try:
        index = json.loads(index_path.read_text())
    except FileNotFoundError:
        raise LayoutError(f"{index_path} is missing. {fetch_hint}") from None
    except (OSError, ValueError) as error:
        raise LayoutError(f"cannot read {index_path}: {error}. {fetch_hint}") from None
    if not isinstance(index, dict) or not isinstance(index.get("_class_name"), str):
        raise LayoutError(f"{index_path} names no pipeline class (_class_name). {fetch_hint}")
    problems = []
    for name, spec in index.items():
        if name.startswith("_") or not isinstance(spec, list) or len(spec) != 2:
            continue
        library, cls = spec
        if library is None or cls is None:
            continue  # an optional component this model leaves out
        folder = model_dir / name
        if not folder.is_dir() or not any(folder.iterdir()):
            problems.append(f"{name}/ is missing or empty")
        elif _needs_weights(str(cls)) and not any(
            next(folder.glob(pattern), None) for pattern in WEIGHT_GLOBS
        ):
            problems.append(f"{name}/ has no weights (*.safetensors)")
    if problems:
        raise LayoutError(f"{model_dir} is incomplete: {'; '.join(problems)}. {fetch_hint}")
    return index


def _needs_weights(cls: str) -> bool:
    return not any(word in cls for word in ("Scheduler", "Tokenizer", "Processor", "Backend"))


def read_config(model_dir: Path, component: str) -> dict[str, Any]:
    try:
        config = json.loads((model_dir / component / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


# --------------------------------------------------------------------------- mapping
def model_frames(seconds: float, fps: int, temporal: int) -> int:
    """The model's frame count for a clip of `seconds`: the smallest `temporal*k + 1` that
    spans at least that long at `fps` (Wan: 4k+1, LTX-Video: 8k+1)."""
    intervals = max(1, round(seconds * fps))
    return temporal * -(-intervals // temporal) + 1


def model_size(width: int, height: int, short_side: int, multiple: int) -> tuple[int, int]:
    """(width, height) the model generates at for an output of width x height: the same
    aspect at a short side of at most `short_side`, each side on the model's multiple."""
    short = min(width, height)
    scale = min(short_side, short) / short

    def snap(value: float) -> int:
        return max(multiple, round(value * scale / multiple) * multiple)

    return snap(width), snap(height)


def retime(source_count: int, count: int) -> list[int]:
    """For each of `count` delivered frames, the model frame shown: evenly spread, the
    first and the last kept, so a clip lasts exactly the requested time."""
    if count <= 1 or source_count <= 1:
        return [0] * count
    return [round(j * (source_count - 1) / (count - 1)) for j in range(count)]


def request_seed(request: RenderRequest) -> int:
    """The request's seed, or a hash of its prompts: the same request, the same video."""
    if request.seed is not None:
        return request.seed % 2**63
    text = f"{request.prompt}\0{request.negative_prompt or ''}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") % 2**63


def output_dimensions(request: RenderRequest, image: Frame | None) -> tuple[int, int]:
    """The requested output (width, height): from the image's aspect like every engine,
    and 16:9 unless asked otherwise when there is no image."""
    from kinema.media.images import output_size

    own_w, own_h = (16, 9) if image is None else (image.shape[1], image.shape[0])
    return output_size(request.short_side, request.aspect, request.aspect_choices, own_w, own_h)


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


class DiffusionEngine(Engine):
    """Base of the diffusers engines. A family sets the class attributes and implements
    `describe` (a layout from model_index.json) and `arguments` (the pipeline call)."""

    family: ClassVar[str]  # "Wan", "LTX-Video"
    example_repo: ClassVar[str]  # what the fetch hint downloads
    expected: ClassVar[str]  # the files a model directory holds, for messages
    capabilities: ClassVar[frozenset[str]] = frozenset(
        {TEXT_TO_VIDEO, IMAGE_TO_VIDEO, FIRST_LAST_FRAME, DIALOGUE}
    )
    Options = DiffusionOptions
    requires: ClassVar[tuple[str, ...]] = (
        "torch", "diffusers", "transformers", "accelerate", "av", "cv2", "numpy", "PIL",
    )  # fmt: skip
    install_hint = "pip install 'kinema[engines,diffusers]'"
    options: DiffusionOptions

    def __init__(self, options: EngineOptions | None = None) -> None:
        super().__init__(options)
        self._layout: Layout | None = None
        self._pipes: dict[str, Any] = {}  # capability -> pipeline (sharing one set of weights)
        self._active: Any = None  # the pipeline whose offload hooks are installed
        self._lock = threading.Lock()  # one job at a time on this engine's device
        self.spatial_multiple = 16
        self.temporal_multiple = 4
        self.timings = Timings()

    # ---- what a family provides ----------------------------------------------------
    @abstractmethod
    def describe(self, index: dict[str, Any], model_dir: Path) -> Layout:
        """The layout of a model directory from its JSON files; LayoutError if this
        family cannot run it."""

    @abstractmethod
    def build(self, base: Any, layout: Layout) -> dict[str, Any]:
        """The pipeline serving each capability, made from the loaded `base` pipeline
        (sharing its modules, never loading weights twice)."""

    @abstractmethod
    def arguments(self, capability: str, pipe: Any, job: Generation) -> dict[str, Any]:
        """The family's pipeline arguments for `job` (besides the common ones)."""

    @abstractmethod
    def multiples(self, base: Any) -> tuple[int, int]:
        """(spatial, temporal) size multiples of the loaded pipeline."""

    # ---- availability (import-free) ----------------------------------------------
    @property
    def fetch_hint(self) -> str:
        return (
            f"Expected a diffusers-format {self.family} directory ({self.expected}); "
            f"fetch one on a machine with internet access with `hf download "
            f"{self.example_repo} --local-dir DIR` (or `huggingface-cli download ...` with "
            f"older huggingface_hub), copy it here and set the {self.name} engine's option "
            f"model_dir = DIR. Kinema never downloads weights."
        )

    def layout(self) -> Layout:
        if self._layout is None:
            model_dir = self.options.model_dir
            if model_dir is None:
                raise LayoutError(f"no model_dir is set. {self.fetch_hint}")
            self._layout = self.describe(read_index(model_dir, self.fetch_hint), model_dir)
        return self._layout

    def unavailable(self) -> str | None:
        if self.options.capabilities is not None:
            return None  # declared: checked by the workers' load(), not here
        return self._problems()

    def _problems(self) -> str | None:
        reasons = []
        missing = super().unavailable()
        if missing is not None:
            reasons.append(missing)
        try:
            self.layout()
        except LayoutError as error:
            reasons.append(str(error))
        return "; ".join(reasons) or None

    def offered(self) -> frozenset[str]:
        declared = self.options.capabilities
        try:
            found = self.layout().capabilities
        except LayoutError:
            return frozenset() if declared is None else frozenset(declared)
        return found if declared is None else found & frozenset(declared)

    # ---- loading -------------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        return bool(self._pipes)

    def torch_dtypes(self, torch: Any) -> Any:
        """`dtype` for from_pretrained (a family may keep some components in fp32)."""
        return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[
            self.options.dtype
        ]

    def load(self) -> None:
        with self._lock:
            self._load()

    def _load(self) -> None:
        if self._pipes:
            return
        started = time.perf_counter()
        problems = self._problems()  # a declared engine is checked here, in the worker
        if problems is not None:
            raise RuntimeError(problems)
        import torch
        from diffusers import DiffusionPipeline

        options = self.options
        layout = self.layout()
        device = options.device
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError(
                f"device {device!r} is not available: this torch ({torch.__version__}) sees "
                "no CUDA GPU. Install a CUDA build of torch, or set device = 'cpu' (slow)."
            )
        base = DiffusionPipeline.from_pretrained(
            str(options.model_dir), dtype=self.torch_dtypes(torch)
        )
        if options.flow_shift is not None:
            base.scheduler = with_shift(base.scheduler, options.flow_shift)
        base.set_progress_bar_config(disable=True)
        if options.vae_tiling and hasattr(base.vae, "enable_tiling"):
            base.vae.enable_tiling()
        if options.compile:
            for name in ("transformer", "transformer_2"):
                module = getattr(base, name, None)
                if module is not None:
                    module.compile()
        pipes = self.build(base, layout)
        for pipe in pipes.values():
            pipe.set_progress_bar_config(disable=True)
        if options.offload == "none" or device == "cpu":
            base.to(device)
        self.spatial_multiple, self.temporal_multiple = self.multiples(base)
        self._pipes = pipes
        log.info(
            "%s: loaded %s from %s on %s (%s, offload %s) in %.1f s: serves %s",
            self.name, layout.description, options.model_dir, device, options.dtype,
            options.offload, time.perf_counter() - started, ", ".join(sorted(pipes)),
        )  # fmt: skip

    def _activate(self, pipe: Any) -> None:
        """Install CPU offload hooks on the pipeline about to run (the pipelines share
        their modules, so only one may hold hooks at a time)."""
        options = self.options
        if options.offload == "none" or options.device == "cpu" or pipe is self._active:
            return
        if options.offload == "model":
            pipe.enable_model_cpu_offload(device=options.device)
        else:
            pipe.enable_sequential_cpu_offload(device=options.device)
        self._active = pipe

    # ---- one job -------------------------------------------------------------------
    def generate(self, request: RenderRequest, ctx: Context) -> None:
        with self._lock:
            self._load()
            self._generate(request, ctx)

    def _generate(self, request: RenderRequest, ctx: Context) -> None:
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
        if first is not None and request.image is not None:
            first = fit_image(first, width, height)
            checked.append((request.image.field, first))
        if last is not None and request.last_image is not None:
            last = fit_image(last, width, height)
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


def release(pipe: Any) -> None:
    """After a failed or stopped call: offload hooks reset, cached GPU memory freed."""
    import gc

    import torch

    try:
        pipe.maybe_free_model_hooks()
    except Exception:  # nothing to free: the pipeline never got that far
        log.debug("maybe_free_model_hooks failed", exc_info=True)
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def is_out_of_memory(error: BaseException) -> bool:
    import torch

    oom = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
    if isinstance(error, oom):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def with_shift(scheduler: Any, shift: float) -> Any:
    """A copy of a flow-matching scheduler with another shift (Wan's UniPC calls it
    flow_shift; FlowMatchEuler calls it shift, and dynamic shifting would ignore it)."""
    config = dict(scheduler.config)
    if "flow_shift" in config:
        return type(scheduler).from_config(config, flow_shift=shift)
    if "shift" in config:
        return type(scheduler).from_config(config, shift=shift, use_dynamic_shifting=False)
    raise RuntimeError(f"flow_shift: the scheduler {type(scheduler).__name__} has no shift")


def styled(prompt: str, style: str | None) -> str:
    return prompt if style is None else f"{prompt}, {style.replace('_', ' ')} style"


def negative(request: RenderRequest) -> str | None:
    if request.person_generation != "dont_allow":
        return request.negative_prompt
    return ", ".join(p for p in (request.negative_prompt, PEOPLE_NEGATIVE) if p)


def sibling(base: Any, cls: type, **extra: Any) -> Any:
    """A pipeline of class `cls` over `base`'s modules (no weights loaded or copied):
    diffusers' `from_pipe` would also cast every module to one dtype, undoing the
    fp32 parts of a mixed-precision load. Each pipeline gets its own scheduler (they
    hold per-call state)."""
    import inspect

    components = dict(base.components)
    config = dict(base.config)
    kwargs: dict[str, Any] = {}
    for name, parameter in inspect.signature(cls).parameters.items():
        if parameter.kind in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
            continue
        if name in extra:
            kwargs[name] = extra[name]
        elif name in components:
            kwargs[name] = components[name]
        elif name in config and not isinstance(config[name], (list, tuple)):
            kwargs[name] = config[name]
        elif parameter.default is parameter.empty:
            kwargs[name] = None
    scheduler = kwargs.get("scheduler")
    if scheduler is not None:
        kwargs["scheduler"] = type(scheduler).from_config(scheduler.config)
    return cls(**kwargs)
