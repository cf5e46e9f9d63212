"""The engine-neutral request: what a model spec reduces a client's request to, and all
an engine sees of it. Plain dataclasses without pydantic, so a worker rendering a job
does not carry the specs' validators and schemas in memory."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Capabilities an engine can offer; a spec asks for exactly one per request.
IMAGE_TO_VIDEO = "image-to-video"
TEXT_TO_VIDEO = "text-to-video"
TALKING_HEAD = "talking-head"
LIP_SYNC_TTS = "lip-sync-tts"
FIRST_LAST_FRAME = "first-last-frame"
DIALOGUE = "dialogue"  # image -> video whose prompt quotes words someone says
VIDEO_DUBBING = "video-dubbing"  # video + new speech -> the same video, lips re-synced

SPEECH_LEAD_IN_SECONDS = 0.3  # spoken text starts this far into a clip


@dataclass(frozen=True)
class MediaRef:
    """One media input: the request field it came from (for error messages), its URL or
    data: URI, and whether it is an "image", "audio" or "video"."""

    field: str
    url: str
    kind: str = "image"


@dataclass(frozen=True)
class ImageRules:
    """Extra checks a model documents for its input images (video-01 has the strictest)."""

    formats: tuple[str, ...] = ("png", "jpeg", "webp")
    min_short_side: int = 0  # exclusive: the short side must exceed this
    min_aspect: float = 0.0  # exclusive, width / height
    max_aspect: float = float("inf")


@dataclass(frozen=True)
class RenderRequest:
    """Everything an engine needs, in one engine-neutral shape."""

    model: str
    capability: str
    # Served instead when no enabled engine offers `capability` (e.g. dialogue -> a plain
    # camera move with room tone); None: refuse the request at submit.
    fallback: str | None = None
    prompt: str = ""
    negative_prompt: str | None = None
    image: MediaRef | None = None
    last_image: MediaRef | None = None
    audio: MediaRef | None = None
    video: MediaRef | None = None
    max_video_seconds: float | None = None  # the longest input video accepted
    tts_text: str | None = None
    tts_speaker: str | None = None
    tts_field: str | None = None  # the request field the spoken text came from
    duration: float | None = None  # seconds; None = follow the audio
    max_audio_seconds: float | None = None
    short_side: int = 720
    aspect: str | None = None  # "16:9"...; None = the image's own aspect
    aspect_choices: tuple[str, ...] = ()  # when aspect is None, snap to the nearest one
    generate_audio: bool = False
    seed: int | None = None
    style: str | None = None
    person_generation: str | None = None
    image_rules: ImageRules = field(default_factory=ImageRules)

    def media(self) -> list[MediaRef]:
        refs = (self.image, self.last_image, self.audio, self.video)
        return [m for m in refs if m is not None]


# Quoted speech in a prompt: `says slowly: 'Well...'`, `says "Not today"`, curly quotes too.
# The opening quote must follow a space/colon/start and the closing one end a word, so
# apostrophes inside words ("it's", "Lisa's") are not taken for quotes.
_QUOTED = re.compile(
    r"""(?:^|(?<=[\s:(,]))(['"‘“])(?P<text>[^'"‘’“”]*?\w[^'"‘’“”]*?)"""
    r"""['"’”](?=$|[\s.,;:!?)])"""
)


def extract_dialogue(prompt: str) -> str | None:
    """The words a prompt has someone say, joined in order (None if it quotes nothing)."""
    parts = [m.group("text").strip() for m in _QUOTED.finditer(prompt)]
    # At least two word characters: "rock 'n' roll" quotes nothing anyone says.
    text = " ".join(p for p in parts if len(re.findall(r"\w", p)) >= 2)
    return text or None
