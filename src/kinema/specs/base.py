"""What every model spec shares: strict pydantic config, lenient coercions real clients
need, and the engine-neutral `RenderRequest` each spec reduces itself to."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict

from kinema.render_request import RenderRequest

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
