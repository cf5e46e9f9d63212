"""`veed/fabric-1.0`: image + audio -> the person in the image speaks the audio."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from kinema.specs.base import (
    TALKING_HEAD,
    MediaRef,
    MediaUrl,
    ModelSpec,
    RenderRequest,
    case_insensitive,
)


class Fabric10(ModelSpec):
    """Talking video: length follows the audio (under 30 s), framing follows the image."""

    MODEL_IDS: ClassVar[tuple[str, ...]] = ("veed/fabric-1.0",)
    # $0.08/s at 480p and $0.15/s at 720p; the seed's 3,150,000 credits = 10.5 s at 720p.
    PRICES: ClassVar[dict[str, int]] = {"480p": 160_000, "720p": 300_000}
    MAX_AUDIO_SECONDS: ClassVar[float] = 30.0

    model: Literal["veed/fabric-1.0"]
    image_url: MediaUrl = Field(
        description="A direct link to an online image or a Base64-encoded local image that "
        "will serve as the visual base or the first frame for the video."
    )
    audio_url: MediaUrl = Field(
        description="The URL of the audio file for lip-sync animation. "
        "Audio must be under 30s long."
    )
    resolution: Annotated[Literal["480p", "720p"], case_insensitive("480p", "720p")] = Field(
        default="480p", description="The resolution of the generated video."
    )

    def render(self) -> RenderRequest:
        return RenderRequest(
            model=self.model,
            capability=TALKING_HEAD,
            image=MediaRef("image_url", self.image_url),
            audio=MediaRef("audio_url", self.audio_url, "audio"),
            duration=None,
            max_audio_seconds=self.MAX_AUDIO_SECONDS,
            short_side=int(self.resolution[:-1]),
            generate_audio=True,
        )

    def price_key(self) -> str:
        return self.resolution
