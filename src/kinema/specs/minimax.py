"""`video-01` (MiniMax Hailuo): text or first image -> 6 s video. Two spellings: the
unified route's `image_url`/`enhance_prompt` and the legacy vendor route's
`first_frame_image`/`prompt_optimizer`."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from kinema.render_request import IMAGE_TO_VIDEO, TEXT_TO_VIDEO, ImageRules, MediaRef, RenderRequest
from kinema.specs.base import MINIMAX, MediaUrl, ModelSpec, Route

IMAGE_DESCRIPTION = (
    "A direct link to an online image or a Base64-encoded local image that will serve as "
    "the first frame for the video. Image specifications: format must be JPG, JPEG, or PNG; "
    "aspect ratio should be greater than 2:5 and less than 5:2; the shorter side must exceed "
    "300 pixels; file size must not exceed 20MB."
)
OPTIMIZER_DESCRIPTION = (
    "If True, the incoming prompt will be automatically optimized to improve generation "
    "quality when needed. Local engines accept it and ignore it (documented no-op)."
)
PROMPT_DESCRIPTION = "The text description of the scene, subject, or action to generate."
VIDEO01_IMAGE_RULES = ImageRules(
    formats=("png", "jpeg"), min_short_side=300, min_aspect=2 / 5, max_aspect=5 / 2
)
VIDEO01_SECONDS = 6.0
VIDEO01_SHORT_SIDE = 720


def _render(model: str, prompt: str, image_field: str, image: str | None) -> RenderRequest:
    return RenderRequest(
        model=model,
        capability=IMAGE_TO_VIDEO if image else TEXT_TO_VIDEO,
        prompt=prompt,
        image=MediaRef(image_field, image) if image else None,
        duration=VIDEO01_SECONDS,
        short_side=VIDEO01_SHORT_SIDE,
        image_rules=VIDEO01_IMAGE_RULES,
    )


class Video01(ModelSpec):
    MODEL_IDS: ClassVar[tuple[str, ...]] = ("video-01",)
    PRICES: ClassVar[dict[str, int]] = {"": 72_000}  # Kinema default: 432,000 per 6 s clip

    model: Literal["video-01"]
    prompt: str = Field(max_length=2000, description=PROMPT_DESCRIPTION)
    image_url: MediaUrl | None = Field(default=None, description=IMAGE_DESCRIPTION)
    enhance_prompt: bool = Field(default=True, description=OPTIMIZER_DESCRIPTION)

    def render(self) -> RenderRequest:
        return _render(self.model, self.prompt, "image_url", self.image_url)


class Video01Legacy(ModelSpec):
    """`POST /v2/generate/video/minimax/generation` (legacy vendor route)."""

    MODEL_IDS: ClassVar[tuple[str, ...]] = ("video-01",)
    ROUTE: ClassVar[Route] = MINIMAX
    PRICES: ClassVar[dict[str, int]] = Video01.PRICES

    model: Literal["video-01"]
    prompt: str = Field(max_length=2000, description=PROMPT_DESCRIPTION)
    first_frame_image: MediaUrl | None = Field(default=None, description=IMAGE_DESCRIPTION)
    prompt_optimizer: bool = Field(default=True, description=OPTIMIZER_DESCRIPTION)

    def render(self) -> RenderRequest:
        return _render(self.model, self.prompt, "first_frame_image", self.first_frame_image)
