"""The seed documents' own example clients against a live `kinema serve`, with only the
base URL, key and media URLs changed; the videos they get back are checked with PyAV."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from tests.support import KinemaServer, MediaServer
from tests.videos import assert_video, download

CLIENTS = Path(__file__).parent / "seed_clients"
KLING = "https://s2-111386.kwimgs.com/bs2/mmu-aiplatform-temp/kling/20240620/1.jpeg"
REFERENCE = "https://raw.githubusercontent.com/aimlapi/api-docs/main/reference-files/"
SEED_MEDIA = {
    KLING: "portrait.jpg",
    REFERENCE + "news-presenter.jpg": "face.png",
    REFERENCE + "mona_lisa_extended.jpg": "face.png",
    "https://v3.fal.media/files/koala/NLVPfOI4XL1cWT2PmmqT3_Hope.png": "face.png",
    "https://v3.fal.media/files/elephant/Oz_g4AwQvXtXpUHL3Pa7u_Hope.mp3": "hope.mp3",
}
LIP_SYNC_LINE = re.compile(r"^\s*\"lip_sync_tts_\w+\".*# lip-sync\n", re.M)


# The video-01 seed document has no example script: its check runs the seeds' common
# client (the Veo 3.1 i2v fast example) with the model set to video-01.
DERIVED = {"video01.py": ("veo_i2v_fast.py", '"google/veo-3.1-i2v-fast"', '"video-01"')}


def prepare(
    script: str, server: KinemaServer, media: MediaServer, tmp: Path, drop_lip_sync: bool = False
) -> Path:
    if script in DERIVED:
        source, old_model, new_model = DERIVED[script]
        text = (CLIENTS / source).read_text().replace(old_model, new_model)
    else:
        text = (CLIENTS / script).read_text()
    text = text.replace("https://api.aimlapi.com", server.base_url)
    text = text.replace("<YOUR_AIMLAPI_KEY>", server.key)
    for seed_url, name in SEED_MEDIA.items():
        text = text.replace(seed_url, f"{media.base}/{name}")
    if drop_lip_sync:
        text = LIP_SYNC_LINE.sub("", text)
    assert "aimlapi.com" not in text.replace("AIMLAPI", "")
    target = tmp / script
    target.write_text(text)
    return target


def final_response(output: str) -> dict[str, object]:
    matches = re.findall(r"\{'id'.*\}", output)
    assert matches, output
    result: dict[str, object] = ast.literal_eval(matches[-1])
    return result


CASES = {
    # script: (seconds, short side, audio, aspect or None, drop the lip-sync lines)
    "veo_i2v_fast.py": (8, 1080, True, 9 / 16, False),  # portrait image -> 9:16
    "video01.py": (6, 720, False, 480 / 640, False),
    "pixverse_legacy.py": (5, 720, False, 16 / 9, False),  # legacy aspect default 16:9
    "pixverse_unified.py": (5, 720, False, 1.0, True),  # plain image -> video
    "pixverse_lipsync": (5, 720, True, 1.0, False),  # the seed as published: TTS lip-sync
    "fabric.py": (None, 720, True, 1.0, False),  # length = the audio's
    "veo_lite.py": (8, 720, True, None, False),  # first + last frame (tail_image_url)
}
SCRIPTS = {"pixverse_lipsync": "pixverse_unified.py"}


def test_seed_clients_complete(server: KinemaServer, media: MediaServer, tmp_path: Path) -> None:
    # The scripts sleep 10-15 s between polls: run them side by side.
    procs = {}
    for case, (*_, drop) in CASES.items():
        path = prepare(SCRIPTS.get(case, case), server, media, tmp_path, drop_lip_sync=drop)
        path = path.rename(tmp_path / f"{case.removesuffix('.py')}_client.py")
        procs[case] = subprocess.Popen(
            [sys.executable, str(path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
    for script, proc in procs.items():
        output, _ = proc.communicate(timeout=240)
        assert proc.returncode == 0, output
        assert "Processing complete" in output, output
        response = final_response(output)
        assert response["status"] == "completed", output
        seconds, short, audio, aspect, _ = CASES[script]
        video = response["video"]
        assert isinstance(video, dict)
        mp4 = download(str(video["url"]), tmp_path / f"{script}.mp4")
        if seconds is None:  # fabric: as long as the audio, which is what we sent
            seconds = audio_seconds(media.root / "hope.mp3")
        probe = assert_video(mp4, seconds=seconds, short_side=short, audio=audio, aspect=aspect)
        assert video["width"] == probe.width and video["height"] == probe.height
        assert video["file_size"] == mp4.stat().st_size


def audio_seconds(path: Path) -> float:
    import av

    with av.open(str(path)) as container:
        return float(container.duration or 0) / 1_000_000
