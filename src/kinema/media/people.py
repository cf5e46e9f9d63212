"""`person_generation: "dont_allow"` (Veo): a request whose input images show a person
is refused. Local engines cannot avoid drawing the people already in the picture, so the
honest answer is to refuse the job with a clear error rather than animate them anyway."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kinema.errors import InputError
from kinema.render_request import RenderRequest

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


def check_person_generation(
    request: RenderRequest, images: list[tuple[str, npt.NDArray[np.uint8]]]
) -> None:
    """Raise InputError naming the field of the first image with a detected face."""
    if request.person_generation != "dont_allow":
        return
    from kinema.media.faces import find_faces

    for field, rgb in images:
        if find_faces(rgb):
            raise InputError(
                field,
                "shows a person (a face was detected) and person_generation is "
                "'dont_allow'; send an image without people or use 'allow_adult'",
            )
