"""Google Veo 3.1: `google/veo-3.1-i2v-fast` (image -> video),
`google/veo-3.1-first-last-image-to-video-fast` (first + last image),
`google/veo-3.1-lite-generate-001` (text or first image, optional last image) and its
preview id `google/veo-3-1-lite-generate-preview` (lower-case resolutions, 1080p by
default, `provider`, no `person_generation`, 8 s only with a last image)."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, model_validator

from kinema.render_request import (
    DIALOGUE,
    FIRST_LAST_FRAME,
    IMAGE_TO_VIDEO,
    TEXT_TO_VIDEO,
    MediaRef,
    RenderRequest,
    extract_dialogue,
)
from kinema.specs.base import LaxInt, MediaUrl, ModelSpec, case_insensitive

VEO_ASPECTS = ("16:9", "9:16")
PROMPT_DESCRIPTION = "The text description of the scene, subject, or action to generate."
AUDIO_DESCRIPTION = (
    "Whether to generate audio for the video. Local engines add an AAC track: spoken "
    "dialogue where an engine for it is enabled, otherwise a quiet room-tone track."
)


def with_dialogue(request: RenderRequest) -> RenderRequest:
    """Veo generates sound: with `generate_audio`, words quoted in the prompt are spoken
    and lip-synced on the face in the image (the `dialogue` capability). A deployment
    without a dialogue engine falls back to the plain camera move with room tone."""
    if request.capability != IMAGE_TO_VIDEO or not request.generate_audio:
        return request
    words = extract_dialogue(request.prompt)
    if words is None:
        return request
    return replace(
        request,
        capability=DIALOGUE,
        fallback=IMAGE_TO_VIDEO,
        tts_text=words,
        tts_speaker="Auto",
        tts_field="prompt",
    )


class VeoI2VFast(ModelSpec):
    MODEL_IDS: ClassVar[tuple[str, ...]] = ("google/veo-3.1-i2v-fast",)
    PRICES: ClassVar[dict[str, int]] = {"720p": 300_000, "1080p": 300_000}  # $0.15/s

    model: Literal["google/veo-3.1-i2v-fast"]
    prompt: str = Field(description=PROMPT_DESCRIPTION)
    image_url: MediaUrl = Field(
        description="URL of the input image to animate. Should be 720p or higher resolution."
    )
    aspect_ratio: Literal["16:9", "9:16"] | None = Field(
        default=None, description="The aspect ratio of the generated video."
    )
    duration: Annotated[Literal[4, 6, 8], LaxInt] = Field(
        default=8, description="The length of the output video in seconds."
    )
    resolution: Annotated[Literal["720p", "1080p"], case_insensitive("720p", "1080p")] = Field(
        default="1080p", description="The resolution of the output video."
    )
    generate_audio: bool = Field(default=True, description=AUDIO_DESCRIPTION)
    provider: str = Field(
        default="auto",
        description="Provider routing override (google|fal|auto); local engines ignore it.",
    )

    def render(self) -> RenderRequest:
        return with_dialogue(
            RenderRequest(
                model=self.model,
                capability=IMAGE_TO_VIDEO,
                prompt=self.prompt,
                image=MediaRef("image_url", self.image_url),
                duration=float(self.duration),
                short_side=int(self.resolution[:-1]),
                aspect=self.aspect_ratio,
                aspect_choices=VEO_ASPECTS,
                generate_audio=self.generate_audio,
            )
        )

    def price_key(self) -> str:
        return self.resolution


class VeoLite(ModelSpec):
    MODEL_IDS: ClassVar[tuple[str, ...]] = (
        "google/veo-3.1-lite-generate-001",
        "veo-3.1-lite-generate-001",
    )
    PRICES: ClassVar[dict[str, int]] = {"720P": 100_000, "1080P": 160_000}

    model: Literal["google/veo-3.1-lite-generate-001", "veo-3.1-lite-generate-001"]
    prompt: str = Field(description=PROMPT_DESCRIPTION)
    image_url: MediaUrl | None = Field(
        default=None,
        description="A direct link to an online image or a Base64-encoded local image to be "
        "used as the first frame of the video. Should be 720p or higher resolution.",
    )
    last_image_url: MediaUrl | None = Field(
        default=None,
        description="A direct link to an online image or a Base64-encoded local image to be "
        "used as the last frame of the video. `tail_image_url` is accepted as an alias.",
    )
    aspect_ratio: Literal["16:9", "9:16"] | None = Field(
        default=None, description="The aspect ratio of the generated video."
    )
    resolution: Annotated[Literal["720P", "1080P"], case_insensitive("720P", "1080P")] = Field(
        default="720P",
        description="The resolution of the output video, where the number refers to the "
        "short side in pixels.",
    )
    duration: Annotated[Literal[4, 6, 8], LaxInt] = Field(
        default=8, description="The length of the output video in seconds."
    )
    generate_audio: bool = Field(default=True, description=AUDIO_DESCRIPTION)
    person_generation: Literal["dont_allow", "allow_adult"] = Field(
        default="allow_adult", description="Allow generation of people."
    )

    @model_validator(mode="before")
    @classmethod
    def _tail_image_alias(cls, data: Any) -> Any:
        # The seed's own example sends `tail_image_url` (Kling's name for the field).
        if isinstance(data, dict) and "tail_image_url" in data:
            data = dict(data)
            tail = data.pop("tail_image_url")
            if "last_image_url" in data and data["last_image_url"] != tail:
                raise ValueError(
                    "last_image_url and tail_image_url (its alias) disagree; send one of them"
                )
            data["last_image_url"] = tail
        return data

    def render(self) -> RenderRequest:
        return lite_request(self, self.person_generation)

    def price_key(self) -> str:
        return self.resolution

    @classmethod
    def accepted_fields(cls) -> list[str]:
        return [*super().accepted_fields(), "tail_image_url"]


LAST_IMAGE_DESCRIPTION = (
    "A direct link to an online image or a Base64-encoded local image to be used as the "
    "last frame of the video."
)
PROVIDER_DESCRIPTION = "Provider routing override (google|fal|auto); local engines ignore it."


class VeoFirstLastFast(ModelSpec):
    """First frame -> last frame, rendered by the morph capability (as Veo Lite's
    first -> last requests are); quoted dialogue follows `with_dialogue`."""

    MODEL_IDS: ClassVar[tuple[str, ...]] = ("google/veo-3.1-first-last-image-to-video-fast",)
    PRICES: ClassVar[dict[str, int]] = VeoI2VFast.PRICES  # $0.15/s, like the i2v fast

    model: Literal["google/veo-3.1-first-last-image-to-video-fast"]
    prompt: str = Field(description=PROMPT_DESCRIPTION)
    image_url: MediaUrl = Field(
        description="URL of the input image to animate. Should be 720p or higher resolution."
    )
    last_image_url: MediaUrl = Field(description=LAST_IMAGE_DESCRIPTION + ".")
    aspect_ratio: Literal["16:9", "9:16"] | None = Field(
        default=None, description="The aspect ratio of the generated video."
    )
    duration: Annotated[Literal[4, 6, 8], LaxInt] = Field(
        default=8, description="The length of the output video in seconds."
    )
    resolution: Annotated[Literal["720p", "1080p"], case_insensitive("720p", "1080p")] = Field(
        default="1080p", description="The resolution of the output video."
    )
    generate_audio: bool = Field(default=True, description=AUDIO_DESCRIPTION)
    provider: str = Field(default="auto", description=PROVIDER_DESCRIPTION)

    def render(self) -> RenderRequest:
        return with_dialogue(RenderRequest(
            model=self.model,
            capability=FIRST_LAST_FRAME,
            prompt=self.prompt,
            image=MediaRef("image_url", self.image_url),
            last_image=MediaRef("last_image_url", self.last_image_url),
            duration=float(self.duration),
            short_side=int(self.resolution[:-1]),
            aspect=self.aspect_ratio,
            aspect_choices=VEO_ASPECTS,
            generate_audio=self.generate_audio,
        ))  # fmt: skip

    def price_key(self) -> str:
        return self.resolution


class VeoLitePreview(ModelSpec):
    """Veo 3.1 Lite under its preview id: text, first image, or first + last image."""

    MODEL_IDS: ClassVar[tuple[str, ...]] = ("google/veo-3-1-lite-generate-preview",)
    PRICES: ClassVar[dict[str, int]] = {"720p": 100_000, "1080p": 160_000}  # as Veo Lite

    model: Literal["google/veo-3-1-lite-generate-preview"]
    prompt: str = Field(description=PROMPT_DESCRIPTION)
    image_url: MediaUrl | None = Field(
        default=None,
        description="A direct link to an online image or a Base64-encoded local image to be "
        "used as the first frame of the video. Should be 720p or higher resolution.",
    )
    last_image_url: MediaUrl | None = Field(
        default=None,
        description=LAST_IMAGE_DESCRIPTION + " Should be 720p or higher resolution. When "
        "using this parameter, the duration can only be 8s.",
    )
    aspect_ratio: Literal["16:9", "9:16"] | None = Field(
        default=None, description="The aspect ratio of the generated video."
    )
    resolution: Annotated[Literal["720p", "1080p"], case_insensitive("720p", "1080p")] = Field(
        default="1080p",
        description="The resolution of the output video, where the number refers to the "
        "short side in pixels.",
    )
    duration: Annotated[Literal[4, 6, 8], LaxInt] = Field(
        default=8,
        description="The length of the output video in seconds. When using last_image_url, "
        "the duration can only be 8s.",
    )
    generate_audio: bool = Field(default=True, description=AUDIO_DESCRIPTION)
    provider: str = Field(default="auto", description=PROVIDER_DESCRIPTION)

    @model_validator(mode="after")
    def _last_image_rules(self) -> VeoLitePreview:
        if self.last_image_url and not self.image_url:
            raise ValueError("last_image_url needs image_url (the first frame) too")
        if self.last_image_url and self.duration != 8:
            raise ValueError(
                f"duration {self.duration} is not available with last_image_url (only 8)"
            )
        return self

    def render(self) -> RenderRequest:
        return lite_request(self, None)

    def price_key(self) -> str:
        return self.resolution


def lite_request(spec: VeoLite | VeoLitePreview, person_generation: str | None) -> RenderRequest:
    """Veo Lite's request under either id: text, first image, or first + last image (the
    capability follows from which images are given), with any quoted dialogue spoken."""
    if spec.last_image_url:
        capability = FIRST_LAST_FRAME
    elif spec.image_url:
        capability = IMAGE_TO_VIDEO
    else:
        capability = TEXT_TO_VIDEO
    return with_dialogue(RenderRequest(
        model=spec.model,
        capability=capability,
        prompt=spec.prompt,
        image=MediaRef("image_url", spec.image_url) if spec.image_url else None,
        last_image=(
            MediaRef("last_image_url", spec.last_image_url) if spec.last_image_url else None
        ),
        duration=float(spec.duration),
        short_side=int(spec.resolution[:-1]),
        aspect=spec.aspect_ratio,
        aspect_choices=VEO_ASPECTS,
        generate_audio=spec.generate_audio,
        person_generation=person_generation,
    ))  # fmt: skip
