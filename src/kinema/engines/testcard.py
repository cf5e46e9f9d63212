"""`testcard`: a local stand-in for every capability, for testing integrations offline.

It never pretends to be a generation. Each clip is an unmistakable broadcast-style test
card: colour bars, the words "KINEMA TEST CARD", the prompt, the model, the resolution, a
frame counter and timecode, a sweeping marker (so motion and frame order are visible),
the input image(s) inset when the request has them, and sound when sound is asked for:
the request's own audio (talking-head), the spoken text (lip-sync TTS, dialogue) or a
1 kHz beep on each whole second (`generate_audio`). Sizes, durations, aspects and audio
follow the request exactly, and the same request always gives the same video. Frames are
a copy of one pre-drawn card plus a few small overlays, so it runs near encode speed.

Opt-in (`KINEMA_ENGINES=testcard,...`): it is never in the default engine list.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from kinema.engines.base import Context, Engine, EngineOptions
from kinema.errors import InputError
from kinema.render_request import (
    DIALOGUE,
    FIRST_LAST_FRAME,
    IMAGE_TO_VIDEO,
    LIP_SYNC_TTS,
    SPEECH_LEAD_IN_SECONDS,
    TALKING_HEAD,
    TEXT_TO_VIDEO,
    RenderRequest,
)

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Frame = npt.NDArray[np.uint8]

ALL_CAPABILITIES = frozenset(
    {TEXT_TO_VIDEO, IMAGE_TO_VIDEO, FIRST_LAST_FRAME, TALKING_HEAD, LIP_SYNC_TTS, DIALOGUE}
)
TAIL_SECONDS = 0.5  # after speech or audio, when the request leaves the length open
BEEP_HZ = 1000.0
BEEP_SECONDS = 0.1
# 75 % SMPTE bars, left to right: grey, yellow, cyan, green, magenta, red, blue (RGB).
BARS = (
    (191, 191, 191), (191, 191, 0), (0, 191, 191), (0, 191, 0),
    (191, 0, 191), (191, 0, 0), (0, 0, 191),
)  # fmt: skip
DEFAULT_ASPECT = "16:9"


class TestcardOptions(EngineOptions):
    fps: int = Field(default=25, ge=1, le=60, description="Frames per second of the clips.")
    default_seconds: float = Field(
        default=5.0, gt=0, le=60, description="Length when a request leaves it open."
    )


def timecode(frame: int, fps: int) -> str:
    seconds, frames = divmod(frame, fps)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}:{frames:02d}"


def beeps(samples: int, sample_rate: int) -> npt.NDArray[np.float32]:
    """Silence with a 1 kHz beep at the start of each whole second (an A/V sync check)."""
    import numpy as np

    t = np.arange(samples, dtype=np.float64) / sample_rate
    on = (t % 1.0) < BEEP_SECONDS
    return (0.3 * np.sin(2 * np.pi * BEEP_HZ * t) * on).astype(np.float32)


class TestcardEngine(Engine):
    """Every capability, as a labelled test card (see the module docstring)."""

    __test__ = False  # not a pytest test class, despite the name
    name: ClassVar[str] = "testcard"
    capabilities: ClassVar[frozenset[str]] = ALL_CAPABILITIES
    Options = TestcardOptions
    requires = ("av", "cv2", "numpy", "PIL")
    options: TestcardOptions

    def load(self) -> None:
        import av  # noqa: F401
        import cv2  # noqa: F401
        import numpy  # noqa: F401

    # ---- the request's shape -------------------------------------------------------
    def _images(self, request: RenderRequest, ctx: Context) -> list[tuple[str, Frame]]:
        from kinema.media.pipeline import decode_input

        return [
            (ref.field, decode_input(ctx, ref, request))
            for ref in (request.image, request.last_image)
            if ref is not None
        ]

    def _size(self, request: RenderRequest, images: list[tuple[str, Frame]]) -> tuple[int, int]:
        from kinema.media.images import output_size

        if images:
            height, width = images[0][1].shape[:2]
            return output_size(
                request.short_side, request.aspect, request.aspect_choices, width, height
            )
        aspect = request.aspect or (
            DEFAULT_ASPECT
            if not request.aspect_choices or DEFAULT_ASPECT in request.aspect_choices
            else request.aspect_choices[0]
        )
        return output_size(request.short_side, aspect, (), 16, 9)

    def _sound(
        self, request: RenderRequest, ctx: Context, rate: int
    ) -> tuple[npt.NDArray[np.float32] | None, float | None, str]:
        """(mono samples at `rate` starting at 0 s, or None; the length they need; what
        they are, for the card)."""
        import numpy as np

        if request.audio is not None:
            from kinema.media.audio import decode_audio

            samples = decode_audio(
                ctx.fetch(request.audio), request.audio.field, request.max_audio_seconds, rate
            )
            return samples, samples.size / rate, "audio: the request's own track"
        if request.tts_text is not None and request.capability in (LIP_SYNC_TTS, DIALOGUE):
            from kinema.media.audio import resample
            from kinema.media.speech import synthesize

            field = request.tts_field or "tts_text"
            if not request.tts_text.strip():
                raise InputError(field, "there is no text to speak")
            try:
                speech = synthesize(request.tts_text, request.tts_speaker or "Auto")
            except ValueError as error:
                raise InputError("tts_speaker", str(error)) from None
            voice = resample(speech.samples, speech.sample_rate, rate)
            lead = np.zeros(round(SPEECH_LEAD_IN_SECONDS * rate), np.float32)
            joined = np.concatenate([lead, voice])
            if request.duration is not None and joined.size > request.duration * rate:
                if voice.size > request.duration * rate:
                    raise InputError(
                        field,
                        f"the text takes {speech.seconds:.1f} s to say, longer than the "
                        f"{request.duration:g} s video",
                    )
                joined = voice  # no breath when the text needs the whole clip
            return joined, joined.size / rate, "audio: the spoken text (TTS)"
        return None, None, "audio: 1 kHz beep each second" if request.generate_audio else ""

    # ---- drawing --------------------------------------------------------------------
    def _card(
        self,
        request: RenderRequest,
        width: int,
        height: int,
        images: list[tuple[str, Frame]],
        lines: list[str],
    ) -> Frame:
        import cv2
        import numpy as np

        from kinema.media.images import fit_image

        card = np.zeros((height, width, 3), np.uint8)
        bars_h = height * 2 // 5
        for i, colour in enumerate(BARS):
            x0, x1 = i * width // len(BARS), (i + 1) * width // len(BARS)
            card[:bars_h, x0:x1] = colour
        card[bars_h:] = (24, 24, 32)
        scale = max(0.35, height / 720 * 0.8)
        thick = max(1, round(height / 360))
        line_h = max(12, round(34 * scale))
        y = bars_h + line_h + 4
        font = cv2.FONT_HERSHEY_SIMPLEX
        cv2.putText(card, "KINEMA TEST CARD - not a generation", (12, y), font,
                    scale * 1.2, (255, 220, 0), thick + 1, cv2.LINE_AA)  # fmt: skip
        chars = max(16, int(width / (scale * 19)))
        for line in lines:
            for part in textwrap.wrap(line, chars)[:4] or [""]:
                y += line_h
                if y > height - 2 * line_h:
                    break
                cv2.putText(card, part, (12, y), font, scale, (235, 235, 235), thick, cv2.LINE_AA)
        # Inputs inset at the bars' right end (the last frame beside the first).
        inset_h = bars_h - 8
        x = width - 4
        for _, image in reversed(images):
            ih, iw = image.shape[:2]
            inset_w = max(2, min(width // 3, round(inset_h * iw / ih)))
            if x - inset_w < 4:
                break
            fitted = fit_image(image, inset_w, inset_h)
            card[4 : 4 + inset_h, x - inset_w : x] = fitted
            cv2.rectangle(card, (x - inset_w, 4), (x - 1, 3 + inset_h), (255, 255, 255), 1)
            x -= inset_w + 4
        return card

    def _frames(self, card: Frame, count: int, fps: int) -> Iterator[Frame]:
        """The frames, drawn into a ring of `pipeline.RING_FRAMES` reused buffers (a
        consumer is done with each before it asks for the ring's worth after it)."""
        import cv2
        import numpy as np

        from kinema.media.pipeline import RING_FRAMES

        height, width = card.shape[:2]
        scale = max(0.35, height / 720 * 0.9)
        thick = max(1, round(height / 300))
        band = max(14, round(44 * scale))
        bars_h = height * 2 // 5
        ring = [np.empty_like(card) for _ in range(min(RING_FRAMES, count))]
        for n in range(count):
            frame = ring[n % len(ring)]
            np.copyto(frame, card)
            frame[height - band - 8 :] = (0, 0, 0)
            text = f"frame {n + 1}/{count}  {timecode(n, fps)}  @{fps} fps"
            cv2.putText(frame, text, (12, height - 14), cv2.FONT_HERSHEY_SIMPLEX, scale,
                        (255, 255, 255), thick, cv2.LINE_AA)  # fmt: skip
            # A marker sweeping across the bars once per clip: motion and frame order.
            x = (n * (width - 12)) // max(1, count - 1)
            frame[bars_h - 10 : bars_h, x : x + 12] = (255, 255, 255)
            yield frame

    def generate(self, request: RenderRequest, ctx: Context) -> None:
        from kinema.media.pipeline import SAMPLE_RATE, encode

        fps = self.options.fps
        images = self._images(request, ctx)
        ctx.check_cancelled()
        width, height = self._size(request, images)
        sound, needs, sound_note = self._sound(request, ctx, SAMPLE_RATE)
        if request.duration is not None:
            seconds = float(request.duration)
        elif needs is not None:
            seconds = needs + TAIL_SECONDS
        else:
            seconds = self.options.default_seconds
        count = max(1, round(seconds * fps))
        total = count * SAMPLE_RATE // fps
        audio: Any = None
        if sound is not None:
            import numpy as np

            audio = np.zeros(total, np.float32)
            audio[: min(total, sound.size)] = sound[:total]
        elif request.generate_audio:
            audio = beeps(total, SAMPLE_RATE)
        lines = [
            f"prompt: {request.prompt}" if request.prompt else "prompt: (none)",
            f"model: {request.model}   capability: {request.capability}",
            f"{width}x{height}   {count / fps:g} s   {fps} fps   "
            + (request.aspect or "aspect from input/default"),
        ]
        if request.tts_text:
            lines.append(f"says: {request.tts_text}")
        if sound_note:
            lines.append(sound_note)
        card = self._card(request, width, height, images, lines)
        ctx.check_cancelled()
        encode(ctx, self._frames(card, count, fps), count, width, height, audio, fps=fps)
