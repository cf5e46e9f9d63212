"""A request in a diffusers model's terms (`engines/diffusion.py`): its frame count and
generation size, the retiming of its frames to the delivered clip, the seed and the
prompts."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from kinema.render_request import RenderRequest

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Frame = npt.NDArray[np.uint8]

PEOPLE_NEGATIVE = "people, person, human face, human body"  # person_generation=dont_allow


def model_frames(seconds: float, fps: int, temporal: int) -> int:
    """The model's frame count for a clip of `seconds`: the smallest `temporal*k + 1` that
    spans at least that long at `fps` (Wan: 4k+1, LTX-Video: 8k+1)."""
    intervals = max(1, round(seconds * fps))
    return temporal * -(-intervals // temporal) + 1


def model_size(width: int, height: int, short_side: int, multiple: int) -> tuple[int, int]:
    """(width, height) the model generates at for an output of width x height: the same
    aspect at a short side of at most `short_side`, each side on the model's multiple."""
    short = min(width, height)
    scale = min(short_side, short) / short

    def snap(value: float) -> int:
        return max(multiple, round(value * scale / multiple) * multiple)

    return snap(width), snap(height)


def retime(source_count: int, count: int) -> list[int]:
    """For each of `count` delivered frames, the model frame shown: evenly spread, the
    first and the last kept, so a clip lasts exactly the requested time."""
    if count <= 1 or source_count <= 1:
        return [0] * count
    return [round(j * (source_count - 1) / (count - 1)) for j in range(count)]


def request_seed(request: RenderRequest) -> int:
    """The request's seed, or a hash of its prompts: the same request, the same video."""
    if request.seed is not None:
        return request.seed % 2**63
    text = f"{request.prompt}\0{request.negative_prompt or ''}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") % 2**63


def output_dimensions(request: RenderRequest, image: Frame | None) -> tuple[int, int]:
    """The requested output (width, height): from the image's aspect like every engine,
    and 16:9 unless asked otherwise when there is no image."""
    from kinema.media.images import output_size

    own_w, own_h = (16, 9) if image is None else (image.shape[1], image.shape[0])
    return output_size(request.short_side, request.aspect, request.aspect_choices, own_w, own_h)


def styled(prompt: str, style: str | None) -> str:
    return prompt if style is None else f"{prompt}, {style.replace('_', ' ')} style"


def negative(request: RenderRequest) -> str | None:
    if request.person_generation != "dont_allow":
        return request.negative_prompt
    return ", ".join(p for p in (request.negative_prompt, PEOPLE_NEGATIVE) if p)
