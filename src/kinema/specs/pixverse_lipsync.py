"""`pixverse/lip-sync`: video dubbing. A video plus new speech (an audio file, or text and
one of the documented voices) -> the same video with the face's mouth re-animated to the
new speech and the original sound replaced.

The output keeps the input video's length (and its picture size, up to 1080 on the short
side, at 25 fps): speech shorter than the video is followed by silence, speech longer than
it is refused, naming the field it came from. A spoken text starts after the usual breath
(`SPEECH_LEAD_IN_SECONDS`), an audio file at 0 s, as it was cut to match the video.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from kinema.render_request import VIDEO_DUBBING, MediaRef, RenderRequest
from kinema.specs.base import MediaUrl, ModelSpec
from kinema.specs.pixverse import Speaker

EITHER = (
    "Use either audio_url or (lip_sync_tts_speaker together with lip_sync_tts_content), "
    "but not both."
)
MAX_VIDEO_SECONDS = 30.0  # the docs state no limit; fabric's audio cap, for the same work
MAX_SHORT_SIDE = 1080  # larger videos are scaled down to this short side


class PixverseLipSync(ModelSpec):
    MODEL_IDS: ClassVar[tuple[str, ...]] = ("pixverse/lip-sync",)
    # Per second of output, PixVerse's 720p rate (the docs' 2,000,000-credit usage figure
    # appears on unrelated pages too, so it is not this model's price).
    PRICES: ClassVar[dict[str, int]] = {"": 84_000}

    model: Literal["pixverse/lip-sync"]
    video_url: MediaUrl = Field(
        description="A HTTPS URL pointing to a video or a data URI containing a video "
        f"(MP4, MOV or WebM, at most {MAX_VIDEO_SECONDS:g} s). This video will be used as "
        "a reference during generation."
    )
    audio_url: MediaUrl | None = Field(
        default=None,
        description="A direct link to an online audio file or a Base64-encoded local audio "
        "file used for lip-syncing in the video. " + EITHER,
    )
    lip_sync_tts_content: str | None = Field(
        default=None,
        min_length=1,
        description="The text content to be lip-synced in the video. " + EITHER,
    )
    lip_sync_tts_speaker: Speaker | None = Field(
        default=None,
        description="A predefined system voice used for generating speech in the video. " + EITHER,
    )

    @model_validator(mode="after")
    def _one_source_of_speech(self) -> PixverseLipSync:
        tts = (self.lip_sync_tts_content is not None, self.lip_sync_tts_speaker is not None)
        if self.audio_url is not None and any(tts):
            raise ValueError("send audio_url or lip_sync_tts_content, not both. " + EITHER)
        if tts[0] != tts[1]:
            raise ValueError("lip_sync_tts_content and lip_sync_tts_speaker must be sent together")
        if self.audio_url is None and not any(tts):
            raise ValueError(
                "no speech to lip-sync: send audio_url, or lip_sync_tts_content with "
                "lip_sync_tts_speaker"
            )
        return self

    def render(self) -> RenderRequest:
        audio = MediaRef("audio_url", self.audio_url, "audio") if self.audio_url else None
        return RenderRequest(
            model=self.model,
            capability=VIDEO_DUBBING,
            video=MediaRef("video_url", self.video_url, "video"),
            max_video_seconds=MAX_VIDEO_SECONDS,
            audio=audio,
            max_audio_seconds=MAX_VIDEO_SECONDS,
            tts_text=self.lip_sync_tts_content,
            tts_speaker=self.lip_sync_tts_speaker,
            tts_field="lip_sync_tts_content" if audio is None else None,
            duration=None,  # the input video's
            short_side=MAX_SHORT_SIDE,
            generate_audio=True,
        )

    def billed_seconds(self) -> float:
        return MAX_VIDEO_SECONDS  # reserved at submit; the output's real length is charged
