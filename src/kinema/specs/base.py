"""What every model spec shares: strict pydantic config, lenient coercions real clients
need, and the engine-neutral `RenderRequest` each spec reduces itself to."""

from __future__ import annotations

import re
from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict

# Capabilities an engine can offer; a spec asks for exactly one per request.
IMAGE_TO_VIDEO = "image-to-video"
TEXT_TO_VIDEO = "text-to-video"
TALKING_HEAD = "talking-head"
LIP_SYNC_TTS = "lip-sync-tts"
FIRST_LAST_FRAME = "first-last-frame"
DIALOGUE = "dialogue"  # image -> video whose prompt quotes words someone says
VIDEO_DUBBING = "video-dubbing"  # video + new speech -> the same video, lips re-synced

SPEECH_LEAD_IN_SECONDS = 0.3  # spoken text starts this far into a clip

SPEAKERS = (
    "Harper", "Ava", "Isabella", "Sophia", "Emily", "Chloe", "Julia",
    "Mason", "Jack", "Liam", "James", "Oliver", "Adrian", "Ethan", "Auto",
)  # fmt: skip


def _int_from_numeric_string(value: Any) -> Any:
    """`duration` is an integer enum whose documented default is the string "8", and the
    seed examples send "8": accept a string of digits as that integer."""
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return value


def case_insensitive(*choices: str) -> BeforeValidator:
    """Map any casing of a choice to its canonical spelling ("720p" -> "720P")."""
    table = {c.lower(): c for c in choices}

    def convert(value: Any) -> Any:
        if isinstance(value, str):
            return table.get(value.strip().lower(), value)
        return value

    return BeforeValidator(convert)


LaxInt = BeforeValidator(_int_from_numeric_string)


def _media_url(value: Any) -> Any:
    if isinstance(value, str):
        lowered = value[:16].lower()
        if not (lowered.startswith(("http://", "https://", "data:"))):
            raise ValueError("expected an http(s) URL or a data: URI (base64)")
    return value


MediaUrl = Annotated[str, BeforeValidator(_media_url)]


@dataclass(frozen=True)
class Route:
    """A submit route of the AI/ML API wire format. `name` is stored in job rows (it never
    changes); `path` is where the dialect serves it; `id_field` names the generation id
    in its submit answer (the legacy MiniMax route says `generation_id`)."""

    name: str
    path: str
    summary: str
    id_field: str = "id"


UNIFIED = Route("unified", "/v2/video/generations", "Create a video generation task")
MINIMAX = Route(
    "minimax", "/v2/generate/video/minimax/generation",
    "Create a generation (legacy minimax route)", id_field="generation_id",
)  # fmt: skip
PIXVERSE = Route(
    "pixverse", "/v2/generate/video/pixverse/generation",
    "Create a generation (legacy pixverse route)",
)  # fmt: skip


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


class ModelSpec(BaseModel):
    """Base of every model's request class. Unknown fields are an error."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    # The ids this class answers to (first = canonical), and the route it belongs to.
    MODEL_IDS: ClassVar[tuple[str, ...]]
    ROUTE: ClassVar[Route] = UNIFIED
    # Per-second credit prices keyed by resolution ("" when the model has none).
    PRICES: ClassVar[dict[str, int]]

    model: str

    @abstractmethod
    def render(self) -> RenderRequest:
        """Reduce this request to what an engine needs."""

    def price_key(self) -> str:
        """Which entry of PRICES applies (resolution, or "" for a flat price)."""
        return ""

    def billed_seconds(self) -> float:
        """Seconds used to estimate the price at submit (the real length is billed)."""
        request = self.render()
        if request.duration is not None:
            return float(request.duration)
        return float(request.max_audio_seconds or 0.0)

    @classmethod
    def accepted_fields(cls) -> list[str]:
        return [info.alias or name for name, info in cls.model_fields.items()]
