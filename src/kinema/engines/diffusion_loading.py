"""Loading a diffusers engine (`engines/diffusion.py` runs the jobs): whether its model
directory can serve and what it offers, told from the JSON files alone (the API process
has neither torch nor the weights), and the worker's pipelines on its device, one per
capability over one set of weights."""

from __future__ import annotations

import logging
import threading
import time
from abc import abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from kinema.engines.base import Engine, EngineOptions
from kinema.engines.diffusion_layout import DiffusionOptions, Layout, LayoutError, read_index
from kinema.engines.diffusion_pipes import with_shift
from kinema.render_request import DIALOGUE, FIRST_LAST_FRAME, IMAGE_TO_VIDEO, TEXT_TO_VIDEO

log = logging.getLogger("kinema.engines.diffusion")


class DiffusionLoader(Engine):
    """What the diffusers engines share up to a loaded pipeline. A family sets the class
    attributes and implements `describe`, `build` and `multiples`."""

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
