"""LTX-Video through diffusers (`kinema worker --engines ltx`): the fast option.

- `LTXPipeline` / `LTXImageToVideoPipeline` directories (LTX-Video 0.9.0/0.9.1):
  text-to-video and image-to-video (each pipeline made over the other's modules).
- `LTXConditionPipeline` directories (LTX-Video 0.9.5 and later, which are trained to
  take keyframes anywhere): text-to-video, image-to-video (a keyframe at frame 0) and
  first+last frame (keyframes at the first and the last frame).

LTX-Video generates 8k+1 frames at 24 fps (`frame_rate` is passed to the model, which
conditions on it), on sizes that are multiples of 32; 768x512 is its native size. With
a timestep-aware VAE (0.9.1 and later) it decodes at timestep 0.05 with 0.025 noise, the
values the LTX-Video documentation gives.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from kinema.engines.diffusion import DiffusionEngine, Generation, Layout, LayoutError
from kinema.render_request import DIALOGUE, FIRST_LAST_FRAME, IMAGE_TO_VIDEO, TEXT_TO_VIDEO

PLAIN = ("LTXPipeline", "LTXImageToVideoPipeline")
CONDITION = "LTXConditionPipeline"
DECODE_TIMESTEP, DECODE_NOISE = 0.05, 0.025


class LtxEngine(DiffusionEngine):
    name: ClassVar[str] = "ltx"
    family: ClassVar[str] = "LTX-Video"
    example_repo: ClassVar[str] = "Lightricks/LTX-Video-0.9.5"
    expected: ClassVar[str] = (
        "model_index.json, transformer/, vae/, text_encoder/, tokenizer/, scheduler/"
    )
    requires: ClassVar[tuple[str, ...]] = (*DiffusionEngine.requires, "sentencepiece")

    def describe(self, index: dict[str, Any], model_dir: Path) -> Layout:
        pipeline = index["_class_name"]
        if pipeline == CONDITION:
            caps = {TEXT_TO_VIDEO, IMAGE_TO_VIDEO, FIRST_LAST_FRAME, DIALOGUE}
            description = "LTX-Video 0.9.5+ layout (LTXConditionPipeline: keyframes)"
        elif pipeline in PLAIN:
            caps = {TEXT_TO_VIDEO, IMAGE_TO_VIDEO, DIALOGUE}
            description = f"LTX-Video layout ({pipeline})"
        else:
            raise LayoutError(
                f"{model_dir} holds a {pipeline}; the ltx engine runs "
                f"{', '.join((*PLAIN, CONDITION))} directories. {self.fetch_hint}"
            )
        return Layout(pipeline, frozenset(caps), 24, 512, description, index)

    def build(self, base: Any, layout: Layout) -> dict[str, Any]:
        from diffusers import LTXConditionPipeline, LTXImageToVideoPipeline, LTXPipeline

        from kinema.engines.diffusion import sibling

        if isinstance(base, LTXConditionPipeline):
            return {capability: base for capability in layout.capabilities - {DIALOGUE}}
        if isinstance(base, LTXImageToVideoPipeline):
            return {IMAGE_TO_VIDEO: base, TEXT_TO_VIDEO: sibling(base, LTXPipeline)}
        return {TEXT_TO_VIDEO: base, IMAGE_TO_VIDEO: sibling(base, LTXImageToVideoPipeline)}

    def multiples(self, base: Any) -> tuple[int, int]:
        spatial = int(base.vae_spatial_compression_ratio) * int(base.transformer_spatial_patch_size)
        temporal = int(base.vae_temporal_compression_ratio) * int(
            base.transformer_temporal_patch_size
        )
        # The pipelines check for multiples of 32 whatever the VAE's own ratio.
        return max(32, spatial), temporal

    def arguments(self, capability: str, pipe: Any, job: Generation) -> dict[str, Any]:
        from diffusers import LTXConditionPipeline

        arguments: dict[str, Any] = {"frame_rate": job.fps}
        if getattr(pipe.vae.config, "timestep_conditioning", False):
            arguments["decode_timestep"] = DECODE_TIMESTEP
            arguments["decode_noise_scale"] = DECODE_NOISE
        if capability not in (IMAGE_TO_VIDEO, FIRST_LAST_FRAME):
            return arguments
        if not isinstance(pipe, LTXConditionPipeline):
            arguments["image"] = job.image
            return arguments
        from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition

        conditions = [LTXVideoCondition(image=job.image, frame_index=0)]
        if capability == FIRST_LAST_FRAME:
            conditions.append(LTXVideoCondition(image=job.last_image, frame_index=job.frames - 1))
        arguments["conditions"] = conditions
        return arguments
