"""What a diffusers engine is configured with and what its model directory holds
(`engines/diffusion.py` is the engine that uses them).

A model is a diffusers-format directory (`model_dir`, as `save_pretrained` or
`hf download` writes it: `model_index.json` plus one folder per component). Its
`model_index.json` tells which pipeline class it is and with which options, which is all
`offered()` needs to tell the capabilities without importing anything. Kinema never
downloads weights: a missing or incomplete directory disables the engine with a message
naming the expected files and the command that fetches them elsewhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from kinema.engines.base import EngineOptions

WEIGHT_GLOBS = ("*.safetensors", "*.bin", "*.pt", "*.pth", "*.gguf", "*.safetensors.index.json")


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
