"""`pixverse/v5/image-to-video`: the unified route (with TTS lip-sync fields, aspect follows
the image) and the legacy vendor route (with `aspect_ratio`, no lip-sync)."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from kinema.render_request import IMAGE_TO_VIDEO, LIP_SYNC_TTS, MediaRef, RenderRequest
from kinema.specs.base import PIXVERSE, LaxInt, MediaUrl, ModelSpec, Route, case_insensitive

RESOLUTIONS = ("360p", "540p", "720p", "1080p")
Resolution = Annotated[Literal["360p", "540p", "720p", "1080p"], case_insensitive(*RESOLUTIONS)]
Style = Literal["anime", "3d_animation", "clay", "comic", "cyberpunk"]
Speaker = Literal[
    "Harper", "Ava", "Isabella", "Sophia", "Emily", "Chloe", "Julia",
    "Mason", "Jack", "Liam", "James", "Oliver", "Adrian", "Ethan", "Auto",
]  # fmt: skip
PRICES = {"360p": 60_000, "540p": 60_000, "720p": 84_000, "1080p": 160_000}
PROMPT_DESCRIPTION = "The text description of the scene, subject, or action to generate."
IMAGE_DESCRIPTION = "URL (or Base64 data URI) of the image used as the first frame."
RESOLUTION_DESCRIPTION = "An enumeration where the short side of the video frame determines it."
DURATION_DESCRIPTION = "Output length in seconds. 1080p does not support 8-second videos."
SEED_DESCRIPTION = "Same seed + same request = same video. Random when unspecified."


class _PixverseFields(ModelSpec):
    PRICES: ClassVar[dict[str, int]] = PRICES

    model: Literal["pixverse/v5/image-to-video"]
    prompt: str = Field(description=PROMPT_DESCRIPTION)
    image_url: MediaUrl = Field(description=IMAGE_DESCRIPTION)
    resolution: Resolution = Field(default="720p", description=RESOLUTION_DESCRIPTION)
    negative_prompt: str | None = Field(default=None, description="Elements to avoid.")
    style: Style | None = Field(default=None, description="The style of the generated video.")
    seed: int | None = Field(default=None, description=SEED_DESCRIPTION)

    def price_key(self) -> str:
        return self.resolution

    def _check_duration(self, duration: int) -> None:
        if self.resolution == "1080p" and duration == 8:
            raise ValueError("duration 8 is not available at resolution 1080p (use 5)")

    def _render(self, duration: int, aspect: str | None, capability: str) -> RenderRequest:
        return RenderRequest(
            model=self.model,
            capability=capability,
            prompt=self.prompt,
            negative_prompt=self.negative_prompt,
            image=MediaRef("image_url", self.image_url),
            duration=float(duration),
            short_side=int(self.resolution[:-1]),
            aspect=aspect,
            seed=self.seed,
            style=self.style,
        )


class PixverseI2V(_PixverseFields):
    MODEL_IDS: ClassVar[tuple[str, ...]] = ("pixverse/v5/image-to-video",)

    duration: Annotated[Literal[5, 8], LaxInt] = Field(default=5, description=DURATION_DESCRIPTION)
    lip_sync_tts_content: str | None = Field(
        default=None, min_length=1, description="The text content to be lip-synced."
    )
    lip_sync_tts_speaker: Speaker | None = Field(
        default=None, description="A predefined system voice used for the speech."
    )

    @model_validator(mode="after")
    def _consistent(self) -> PixverseI2V:
        self._check_duration(self.duration)
        if (self.lip_sync_tts_content is None) != (self.lip_sync_tts_speaker is None):
            raise ValueError("lip_sync_tts_content and lip_sync_tts_speaker must be sent together")
        return self

    def render(self) -> RenderRequest:
        if self.lip_sync_tts_content is not None:
            return replace(
                self._render(self.duration, None, LIP_SYNC_TTS),
                tts_text=self.lip_sync_tts_content,
                tts_speaker=self.lip_sync_tts_speaker,
                tts_field="lip_sync_tts_content",
                generate_audio=True,
            )
        return self._render(self.duration, None, IMAGE_TO_VIDEO)


class PixverseI2VLegacy(_PixverseFields):
    """`POST /v2/generate/video/pixverse/generation` (legacy vendor route)."""

    MODEL_IDS: ClassVar[tuple[str, ...]] = ("pixverse/v5/image-to-video",)
    ROUTE: ClassVar[Route] = PIXVERSE

    aspect_ratio: Literal["16:9", "4:3", "1:1", "3:4", "9:16"] = Field(
        default="16:9", description="The aspect ratio of the generated video."
    )
    duration: Annotated[Literal[5, 8], LaxInt] | None = Field(
        default=None, description=DURATION_DESCRIPTION + " 5 when omitted."
    )

    @model_validator(mode="after")
    def _consistent(self) -> PixverseI2VLegacy:
        self._check_duration(self.duration or 5)
        return self

    def render(self) -> RenderRequest:
        return self._render(self.duration or 5, self.aspect_ratio, IMAGE_TO_VIDEO)
