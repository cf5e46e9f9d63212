"""Speech on the paths that promise it, and lip-sync measured on the output as a viewer
sees it (tests/lipsync.py): the Veo Lite first -> last morph with quoted dialogue,
PixVerse's `lip_sync_tts_*` and Veo's i2v dialogue. The mouth opening the face mesh finds
in each decoded frame must follow the decoded audio's envelope: Pearson r >= 0.8, with
the cross-correlation peaking within one frame of zero lag."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from skimage import data

from kinema.engines.morph import MorphEngine
from kinema.engines.speaking import SpeakingEngine
from kinema.errors import InputError
from kinema.media.pipeline import SAMPLE_RATE
from kinema.media.speech import synthesize
from kinema.render_request import (
    DIALOGUE,
    FIRST_LAST_FRAME,
    LIP_SYNC_TTS,
    SPEECH_LEAD_IN_SECONDS,
    MediaRef,
    RenderRequest,
)
from kinema.specs.veo import VeoLite
from tests.engine_context import EngineTestContext, data_uri, encode_image
from tests.lipsync import decode, measure

Image = npt.NDArray[np.uint8]
ASTRONAUT: Image = data.astronaut()
# The seed's own Veo Lite prompt, quoting what she says.
PROMPT = (
    "Mona Lisa sits holding glasses in her hands, then puts them on, but changes her mind, "
    "says: 'Not today', takes them off, and hides them in a handbag on her lap. Then she smiles."
)


def window(x: float, y: float, size: float) -> Image:
    """The astronaut seen through a square window at (x, y), as a 448 px image: two of
    them are a camera that moves between the first and the last frame."""
    matrix = np.array([[448 / size, 0, -x * 448 / size], [0, 448 / size, -y * 448 / size]])
    return cv2.warpAffine(ASTRONAUT, matrix, (448, 448), flags=cv2.INTER_LINEAR)


def png(image: Image) -> str:
    return data_uri(encode_image(image, "PNG"), "image/png")


def veo_lite(**fields: Any) -> RenderRequest:
    """What the seed's Veo Lite request renders to (at 360p, 2 s, to keep tests short)."""
    body = {
        "model": "google/veo-3.1-lite-generate-001", "prompt": PROMPT,
        "image_url": png(window(0, 0, 448)), "tail_image_url": png(window(40, 20, 420)),
        "duration": 4, "resolution": "720p", **fields,
    }  # fmt: skip
    request = VeoLite.model_validate(body).render()
    return dataclasses.replace(request, short_side=360, duration=2.0)


@pytest.fixture(scope="module")
def morph() -> MorphEngine:
    engine = MorphEngine()
    engine.load()
    return engine


@pytest.fixture(scope="module")
def speaking() -> SpeakingEngine:
    engine = SpeakingEngine()
    engine.load()
    return engine


@pytest.fixture(scope="module")
def spoken_morph(morph: MorphEngine, tmp_path_factory: pytest.TempPathFactory) -> Path:
    request = veo_lite()
    assert request.capability == FIRST_LAST_FRAME and request.generate_audio
    ctx = EngineTestContext(tmp_path_factory.mktemp("morph"))
    morph.generate(request, ctx)
    return ctx.output_path


def test_the_morph_speaks_the_quoted_words(spoken_morph: Path) -> None:
    frames, audio, rate = decode(spoken_morph)
    assert len(frames) == 50 and frames[0].shape == (360, 640, 3)
    said = synthesize("Not today", "Auto")
    lead, end = SPEECH_LEAD_IN_SECONDS, SPEECH_LEAD_IN_SECONDS + said.seconds
    during = audio[int(lead * rate) : int(end * rate)]
    before = audio[: int((lead - 0.05) * rate)]
    after = audio[int((end + 0.15) * rate) :]
    assert np.sqrt(np.mean(during**2)) > 0.05  # speech, not room tone (about -50 dBFS)
    assert np.abs(before).max() < 0.02 and np.abs(after).max() < 0.02
    assert np.sqrt(np.mean(after**2)) > 10 ** (-70 / 20)  # the room tone under it


def test_the_morph_lip_syncs_the_words_on_the_moving_face(spoken_morph: Path) -> None:
    sync = measure(spoken_morph)
    assert not np.isnan(sync.opening).any(), "the face was lost in some frames"
    said = synthesize("Not today", "Auto")
    speaking = slice(
        round(SPEECH_LEAD_IN_SECONDS * 25), round((SPEECH_LEAD_IN_SECONDS + said.seconds) * 25)
    )
    resting = sync.opening[-10:]
    assert sync.opening[speaking].max() > resting.mean() + 0.015  # visibly open
    assert sync.r >= 0.8, sync
    assert abs(sync.lag) <= 1, sync


def test_words_too_long_for_the_morph_are_refused_before_any_download(
    morph: MorphEngine, tmp_path: Path
) -> None:
    long_words = "This is far too long a sentence to be said in a clip of only one second."
    request = dataclasses.replace(veo_lite(prompt=f"she says: '{long_words}'"), duration=1.0)
    ctx = EngineTestContext(tmp_path)
    with pytest.raises(InputError, match="prompt: the quoted words take"):
        morph.generate(request, ctx)
    assert ctx.fetched == []


def test_pixverse_lip_sync_tts_is_in_sync(speaking: SpeakingEngine, tmp_path: Path) -> None:
    ctx = EngineTestContext(tmp_path)
    request = RenderRequest(
        model="pixverse/v5/image-to-video", capability=LIP_SYNC_TTS,
        prompt="a person talking to the camera", image=MediaRef("image_url", png(ASTRONAUT)),
        tts_text="Hello and welcome.", tts_speaker="Chloe", tts_field="lip_sync_tts_content",
        short_side=720, generate_audio=True,
    )  # fmt: skip
    speaking.generate(request, ctx)
    # At 720p (PixVerse's usual size) the face is ~150 px tall. On a 77 px face (360p)
    # x264 blurs the mouth's interior enough that the mesh reads r = 0.70-0.87.
    sync = measure(ctx.output_path)
    assert sync.r >= 0.8, sync
    assert abs(sync.lag) <= 1, sync


def test_veo_dialogue_is_in_sync_and_framed(speaking: SpeakingEngine, tmp_path: Path) -> None:
    ctx = EngineTestContext(tmp_path)
    request = RenderRequest(
        model="google/veo-3.1-i2v-fast", capability=DIALOGUE,
        prompt="She looks at the camera and says: 'Not today, thank you very much.'",
        image=MediaRef("image_url", png(ASTRONAUT)), tts_text="Not today, thank you very much.",
        tts_speaker="Auto", tts_field="prompt", duration=3.0, short_side=360, aspect="16:9",
        generate_audio=True,
    )  # fmt: skip
    speaking.generate(request, ctx)
    frames, _, rate = decode(ctx.output_path)
    assert frames[0].shape == (360, 640, 3) and rate == SAMPLE_RATE
    sync = measure(ctx.output_path)
    assert not np.isnan(sync.opening).any()  # the square portrait's face stays in frame
    assert sync.r >= 0.8, sync
    assert abs(sync.lag) <= 1, sync
