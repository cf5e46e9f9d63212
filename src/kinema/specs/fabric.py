"""`veed/fabric-1.0` and `veed/fabric-1.0-fast`: image + audio -> the person in the image
speaks the audio. The fast variant has the same fields (its official schema file repeats
`veed/fabric-1.0` in the model enum, a generator slip; its page and samples send
`veed/fabric-1.0-fast`, which is the id accepted here)."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from kinema.render_request import TALKING_HEAD, MediaRef, RenderRequest
from kinema.specs.base import MediaUrl, ModelSpec, case_insensitive

# $0.08/s at 480p and $0.15/s at 720p; the seed's 3,150,000 credits = 10.5 s at 720p.
PRICES = {"480p": 160_000, "720p": 300_000}


class _FabricFields(ModelSpec):
    """The fields both fabric models share (they differ only in their id)."""

    PRICES: ClassVar[dict[str, int]] = PRICES
    MAX_AUDIO_SECONDS: ClassVar[float] = 30.0

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


class Fabric10(_FabricFields):
    """Talking video: length follows the audio (under 30 s), framing follows the image."""

    MODEL_IDS: ClassVar[tuple[str, ...]] = ("veed/fabric-1.0",)

    model: Literal["veed/fabric-1.0"]


class Fabric10Fast(_FabricFields):
    """The same talking video, default 480p. Kinema renders both with the same local
    engine, so "fast" is a name (and an upstream route) here, not a different picture;
    it is priced like its sibling (the docs show the same 3,150,000-credit usage)."""

    MODEL_IDS: ClassVar[tuple[str, ...]] = ("veed/fabric-1.0-fast",)

    model: Literal["veed/fabric-1.0-fast"]
