"""Wan 2.1 / 2.2 through diffusers (`kinema worker --engines wan`).

What a model directory serves is read from its `model_index.json`:

- `WanPipeline` (Wan 2.1 T2V 1.3B/14B, Wan 2.2 T2V-A14B): text-to-video.
- Wan 2.2 TI2V-5B (`WanPipeline` with `expand_timesteps`): text-to-video and
  image-to-video from one directory (the image-to-video pipeline is made over the same
  modules), 24 fps, 1280x704 native.
- `WanImageToVideoPipeline` (Wan 2.1 I2V/FLF2V 14B with their CLIP image encoder, Wan 2.2
  I2V-A14B): image-to-video, and first+last frame (`last_image`) for the FLF2V model and
  the A14B layout.
- The A14B layout (a high-noise `transformer` and a low-noise `transformer_2`, switched
  at `boundary_ratio`) needs nothing special: the pipeline switches experts itself.

Wan generates 4k+1 frames at 16 fps (24 for TI2V-5B), on sizes that are multiples of 16
(32 for TI2V-5B); the VAE is kept in fp32 as Wan's own examples do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from kinema.engines.diffusion import DiffusionEngine, Generation, Layout, LayoutError, read_config
from kinema.render_request import DIALOGUE, FIRST_LAST_FRAME, IMAGE_TO_VIDEO, TEXT_TO_VIDEO

PIPELINES = ("WanPipeline", "WanImageToVideoPipeline")


class WanEngine(DiffusionEngine):
    name: ClassVar[str] = "wan"
    family: ClassVar[str] = "Wan 2.x"
    example_repo: ClassVar[str] = "Wan-AI/Wan2.2-TI2V-5B-Diffusers"
    expected: ClassVar[str] = (
        "model_index.json, transformer/ (and transformer_2/ for A14B), vae/, "
        "text_encoder/, tokenizer/, scheduler/"
    )
    requires: ClassVar[tuple[str, ...]] = (*DiffusionEngine.requires, "ftfy")

    def describe(self, index: dict[str, Any], model_dir: Path) -> Layout:
        pipeline = index["_class_name"]
        if pipeline not in PIPELINES:
            raise LayoutError(
                f"{model_dir} holds a {pipeline}; the wan engine runs {' and '.join(PIPELINES)} "
                f"directories. {self.fetch_hint}"
            )
        expand = bool(index.get("expand_timesteps"))
        two_experts = index.get("boundary_ratio") is not None and _present(index, "transformer_2")
        caps = {TEXT_TO_VIDEO} if pipeline == "WanPipeline" else {IMAGE_TO_VIDEO}
        if expand:
            caps |= {TEXT_TO_VIDEO, IMAGE_TO_VIDEO}  # TI2V-5B: one model, both tasks
        elif pipeline == "WanImageToVideoPipeline":
            flf2v = read_config(model_dir, "transformer").get("pos_embed_seq_len") is not None
            if flf2v or two_experts:
                caps.add(FIRST_LAST_FRAME)
        if IMAGE_TO_VIDEO in caps:
            caps.add(DIALOGUE)
        if expand:
            description, fps, short = "Wan 2.2 TI2V-5B layout (expand_timesteps)", 24, 704
        elif two_experts:
            description = f"Wan 2.2 A14B layout (two transformers, {pipeline})"
            fps, short = 16, 720
        else:
            description, fps, short = f"Wan 2.1 layout ({pipeline})", 16, 480
        return Layout(pipeline, frozenset(caps), fps, short, description, index)

    def torch_dtypes(self, torch: Any) -> Any:
        dtype = super().torch_dtypes(torch)
        # Wan's VAE and CLIP image encoder run in fp32 in Wan's own diffusers examples.
        return {"default": dtype, "vae": torch.float32, "image_encoder": torch.float32}

    def build(self, base: Any, layout: Layout) -> dict[str, Any]:
        from diffusers import WanImageToVideoPipeline, WanPipeline

        from kinema.engines.diffusion import sibling

        caps = layout.capabilities
        pipes: dict[str, Any] = {}
        if isinstance(base, WanPipeline):
            pipes[TEXT_TO_VIDEO] = base
            if IMAGE_TO_VIDEO in caps:
                pipes[IMAGE_TO_VIDEO] = sibling(
                    base, WanImageToVideoPipeline, image_encoder=None, image_processor=None
                )
        else:
            pipes[IMAGE_TO_VIDEO] = base
            if FIRST_LAST_FRAME in caps:
                pipes[FIRST_LAST_FRAME] = base
            if TEXT_TO_VIDEO in caps:
                pipes[TEXT_TO_VIDEO] = sibling(base, WanPipeline)
        return pipes

    def multiples(self, base: Any) -> tuple[int, int]:
        transformer = base.transformer if base.transformer is not None else base.transformer_2
        patch = int(transformer.config.patch_size[1])
        return int(base.vae_scale_factor_spatial) * patch, int(base.vae_scale_factor_temporal)

    def arguments(self, capability: str, pipe: Any, job: Generation) -> dict[str, Any]:
        arguments: dict[str, Any] = {}
        if capability in (IMAGE_TO_VIDEO, FIRST_LAST_FRAME):
            arguments["image"] = job.image
        if capability == FIRST_LAST_FRAME:
            arguments["last_image"] = job.last_image
        return arguments


def _present(index: dict[str, Any], component: str) -> bool:
    spec = index.get(component)
    return isinstance(spec, list) and len(spec) == 2 and spec[0] is not None
