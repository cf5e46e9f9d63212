"""The diffusers engines (wan, ltx) on CPU with tiny random-weight models built in code
(`tests.tiny_diffusion`), through the real worker and API (`kinema.testing.InProcess`)
and alone (`FakeContext`): the frames are noise, but every seam is real — model_index
parsing, loading with from_pretrained, the pipeline call, progress and cancellation
through `callback_on_step_end`, retiming, fitting, sound, encoding, the job's outcome."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("diffusers", reason="the diffusers extra is not installed")

import av

from kinema.engines import EngineSet
from kinema.engines.diffusion import (
    DECODE_END,
    DENOISE_END,
    DiffusionEngine,
    DiffusionOptions,
    model_frames,
    model_size,
    retime,
)
from kinema.engines.ltx import LtxEngine
from kinema.engines.wan import WanEngine
from kinema.errors import Cancelled, EngineError, InputError
from kinema.media.pipeline import SAMPLE_RATE
from kinema.media.soundtrack import lip_sync, plan_sound
from kinema.render_request import (
    DIALOGUE,
    FIRST_LAST_FRAME,
    IMAGE_TO_VIDEO,
    TEXT_TO_VIDEO,
    MediaRef,
    RenderRequest,
)
from kinema.testing import FakeContext, in_process
from tests import tiny_diffusion
from tests.support import make_face, make_image
from tests.videos import assert_video, download, probe

# Tiny and quick on CPU: few steps, a low native rate and small generated frames (the
# delivered clips are still the requested 720p at 25 fps and the requested length).
TEST_OPTIONS: dict[str, Any] = {
    "device": "cpu", "dtype": "fp32", "steps": 2, "fps": 4, "short_side": 32,
}  # fmt: skip
FIRST = make_image(640, 360, "PNG", seed=4)
LAST = make_image(640, 360, "PNG", seed=5)


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {
        "wan-ti2v": tiny_diffusion.wan_ti2v(root / "wan-ti2v"),
        "wan-i2v": tiny_diffusion.wan_i2v(root / "wan-i2v"),
        "ltx-condition": tiny_diffusion.ltx(root / "ltx-condition"),
        "ltx": tiny_diffusion.ltx(root / "ltx", condition=False),
    }


def engine_for(models: dict[str, Path], name: str, **options: Any) -> DiffusionEngine:
    cls = LtxEngine if name.startswith("ltx") else WanEngine
    return cls(DiffusionOptions(model_dir=models[name], **{**TEST_OPTIONS, **options}))


@pytest.fixture(scope="module")
def engines(models: dict[str, Path]) -> dict[str, DiffusionEngine]:
    """One loaded engine per model directory, shared by the module's tests (as a worker
    keeps its pipelines loaded between jobs)."""
    return {name: engine_for(models, name) for name in models}


def request(capability: str, **fields: Any) -> RenderRequest:
    base: dict[str, Any] = {
        "model": "test", "capability": capability, "prompt": "A red fox runs through snow.",
        "duration": 2.0, "short_side": 64, "seed": 7,
    }  # fmt: skip
    if capability in (IMAGE_TO_VIDEO, FIRST_LAST_FRAME, DIALOGUE):
        base["image"] = MediaRef("image_url", data_uri(FIRST))
    if capability == FIRST_LAST_FRAME:
        base["last_image"] = MediaRef("last_image_url", data_uri(LAST))
    return RenderRequest(**{**base, **fields})


def frames_of(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def audio_of(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.concatenate([f.to_ndarray()[0] for f in container.decode(audio=0)])


def dbfs(samples: np.ndarray) -> float:
    return 20 * math.log10(max(float(np.sqrt(np.mean(samples**2))), 1e-9))


# --------------------------------------------------------------------------- mapping
def test_duration_becomes_the_models_frame_rule_and_is_delivered_exactly() -> None:
    assert model_frames(5.0, 16, 4) == 81  # Wan's 5 s clip
    assert model_frames(6.0, 16, 4) == 97 and model_frames(8.0, 24, 4) == 193
    assert model_frames(4.0, 24, 8) == 97  # LTX-Video: 8k+1
    assert all((model_frames(s, 16, 4) - 1) % 4 == 0 for s in (0.1, 1.3, 4.0, 7.7))
    order = retime(81, 125)
    assert len(order) == 125 and order[0] == 0 and order[-1] == 80
    assert order == sorted(order)
    assert retime(5, 1) == [0]


def test_size_is_the_requested_aspect_on_the_models_multiple() -> None:
    assert model_size(1280, 720, 480, 16) == (848, 480)
    assert model_size(1280, 720, 704, 32) == (1248, 704)
    assert model_size(720, 1280, 480, 16) == (480, 848)
    assert model_size(1920, 1080, 512, 32) == (896, 512)
    assert model_size(64, 36, 480, 32) == (64, 32)  # never upscaled past the output


# --------------------------------------------------------------------------- availability
def fake_model(
    root: Path, index: dict[str, Any], transformer: dict[str, Any] | None = None
) -> Path:
    """A model directory's files as a download has them (weights empty: only the JSON
    is read until load())."""
    root.mkdir(parents=True)
    (root / "model_index.json").write_text(json.dumps(index))
    for name, spec in index.items():
        if isinstance(spec, list) and spec[0] is not None:
            (root / name).mkdir()
            (root / name / "config.json").write_text(json.dumps(transformer or {}))
            (root / name / "diffusion_pytorch_model.safetensors").write_bytes(b"")
    return root


def wan_index(cls: str, **extra: Any) -> dict[str, Any]:
    return {
        "_class_name": cls, "scheduler": ["diffusers", "UniPCMultistepScheduler"],
        "text_encoder": ["transformers", "UMT5EncoderModel"],
        "tokenizer": ["transformers", "T5TokenizerFast"],
        "transformer": ["diffusers", "WanTransformer3DModel"],
        "vae": ["diffusers", "AutoencoderKLWan"], **extra,
    }  # fmt: skip


def test_capabilities_come_from_the_model_directory(
    models: dict[str, Path], tmp_path: Path
) -> None:
    def offered(cls: type[DiffusionEngine], model_dir: Path) -> set[str]:
        engine = cls(DiffusionOptions(model_dir=model_dir))
        assert engine.unavailable() is None, engine.unavailable()
        return set(engine.offered())

    i2v = {IMAGE_TO_VIDEO, DIALOGUE}
    # Wan 2.2 TI2V-5B: one directory, text- and image-to-video.
    assert offered(WanEngine, models["wan-ti2v"]) == {TEXT_TO_VIDEO} | i2v
    # The A14B two-transformer image-to-video layout: also first+last frame.
    assert offered(WanEngine, models["wan-i2v"]) == {FIRST_LAST_FRAME} | i2v
    t2v = fake_model(tmp_path / "t2v", wan_index("WanPipeline"))
    assert offered(WanEngine, t2v) == {TEXT_TO_VIDEO}
    # Wan 2.1 I2V-14B (CLIP image encoder): image-to-video; its FLF2V sibling, whose
    # transformer takes two image embeddings, also first+last.
    clip = {"image_encoder": ["transformers", "CLIPVisionModel"],
            "image_processor": ["transformers", "CLIPImageProcessor"]}  # fmt: skip
    wan21 = fake_model(tmp_path / "i2v21", wan_index("WanImageToVideoPipeline", **clip))
    assert offered(WanEngine, wan21) == i2v
    flf = fake_model(
        tmp_path / "flf2v", wan_index("WanImageToVideoPipeline", **clip), {"pos_embed_seq_len": 514}
    )
    assert offered(WanEngine, flf) == {FIRST_LAST_FRAME} | i2v
    assert offered(LtxEngine, models["ltx-condition"]) == {TEXT_TO_VIDEO, FIRST_LAST_FRAME} | i2v
    assert offered(LtxEngine, models["ltx"]) == {TEXT_TO_VIDEO} | i2v
    # A directory of another family is refused by name.
    wrong = WanEngine(DiffusionOptions(model_dir=models["ltx"])).unavailable()
    assert wrong is not None and "LTXPipeline" in wrong and "WanPipeline" in wrong


def test_missing_or_incomplete_model_dir_says_what_to_fetch(tmp_path: Path) -> None:
    unset = WanEngine().unavailable()
    assert unset is not None and "no model_dir is set" in unset
    assert "hf download Wan-AI/Wan2.2-TI2V-5B-Diffusers --local-dir DIR" in unset
    missing = LtxEngine(DiffusionOptions(model_dir=tmp_path / "nope")).unavailable()
    assert missing is not None and "is not a directory" in missing and "hf download" in missing
    partial = fake_model(tmp_path / "partial", wan_index("WanPipeline"))
    for path in (partial / "transformer").iterdir():
        path.unlink()
    (partial / "vae" / "diffusion_pytorch_model.safetensors").unlink()
    reason = WanEngine(DiffusionOptions(model_dir=partial)).unavailable()
    assert reason is not None and "transformer/ is missing or empty" in reason
    assert "vae/ has no weights" in reason
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model_index.json").write_text("{not json")
    reason = WanEngine(DiffusionOptions(model_dir=broken)).unavailable()
    assert reason is not None and "cannot read" in reason


def test_a_missing_model_dir_disables_the_engine_and_refuses_with_a_400(tmp_path: Path) -> None:
    wan = WanEngine(DiffusionOptions(model_dir=tmp_path / "weights"))
    with in_process(tmp_path, [wan]) as kinema, kinema.client() as client:
        refused = client.post(
            "/v2/video/generations", json={"model": "video-01", "prompt": "A fox in snow."}
        )
        assert refused.status_code == 400, refused.text
        message = refused.json()["message"]
        assert "wan" in message and "model_dir" in message and "hf download" in message
        assert "wan" in client.get("/v2/models").json()["disabled_engines"]


def test_engines_are_configured_from_settings_like_any_other(models: dict[str, Path]) -> None:
    engines = EngineSet.configure(
        ["wan", "ltx"],
        {"wan": {"model_dir": str(models["wan-ti2v"]), "device": "cpu", "offload": "model"},
         "ltx": {"model_dir": str(models["ltx-condition"])}},
    )  # fmt: skip
    assert engines.routes() == {
        TEXT_TO_VIDEO: "wan", IMAGE_TO_VIDEO: "wan", DIALOGUE: "wan", FIRST_LAST_FRAME: "ltx",
    }  # fmt: skip


def test_an_api_without_the_weights_accepts_jobs_for_gpu_workers(
    models: dict[str, Path], tmp_path: Path
) -> None:
    """A CPU API box declares what the GPU workers serve; a worker checks for real."""
    declared = {"capabilities": [TEXT_TO_VIDEO, IMAGE_TO_VIDEO]}
    api = EngineSet.configure(["wan"], {"wan": declared})
    assert api.routes() == {TEXT_TO_VIDEO: "wan", IMAGE_TO_VIDEO: "wan"}
    # A worker with the same declaration but no weights is disabled when it loads...
    api.load()
    assert "no model_dir is set" in api.disabled["wan"]
    # ...and one with the weights serves what they allow of the declared list.
    worker = EngineSet.configure(
        ["wan"], {"wan": {**declared, "model_dir": str(models["wan-i2v"]), "device": "cpu"}}
    )
    assert worker.routes() == {IMAGE_TO_VIDEO: "wan"}
    api_only = WanEngine(DiffusionOptions(capabilities=[TEXT_TO_VIDEO, IMAGE_TO_VIDEO]))
    with in_process(tmp_path, [api_only]) as kinema, kinema.client() as client:
        body = {"model": "video-01", "prompt": "A fox in snow."}
        assert client.post("/v2/video/generations", json=body).status_code == 201


# --------------------------------------------------------------------------- through the worker
def generation(client: Any, kinema: Any, body: dict[str, Any], target: Path) -> Path:
    submitted = client.post("/v2/video/generations", json=body)
    assert submitted.status_code == 201, submitted.text
    gen_id = submitted.json()["id"]
    kinema.work()
    done = client.get("/v2/video/generations", params={"generation_id": gen_id}).json()
    assert done["status"] == "completed", done
    return download(done["video"]["url"], target, client)


def test_video01_prompt_only_is_text_to_video_on_wan(
    engines: dict[str, DiffusionEngine], tmp_path: Path
) -> None:
    with in_process(tmp_path, [engines["wan-ti2v"]]) as kinema, kinema.client() as client:
        body = {"model": "video-01", "prompt": "A red fox runs through fresh snow."}
        video = generation(client, kinema, body, tmp_path / "t2v.mp4")
    # video-01: 6 s at 720p, 16:9, no sound; the model made 4*6+1 = 25 frames at 4 fps.
    assert_video(video, seconds=6, short_side=720, audio=False, aspect=16 / 9)
    assert engines["wan-ti2v"].timings.frames == 25


def test_veo_image_to_video_speaks_the_quoted_words(
    engines: dict[str, DiffusionEngine], tmp_path: Path
) -> None:
    body = {
        "model": "google/veo-3.1-i2v-fast", "image_url": data_uri(FIRST), "duration": 4,
        "resolution": "720p", "prompt": "A man looks up and says: 'Hello there, friend.'",
    }  # fmt: skip
    with in_process(tmp_path, [engines["wan-ti2v"]]) as kinema, kinema.client() as client:
        video = generation(client, kinema, body, tmp_path / "i2v.mp4")
    assert_video(video, seconds=4, short_side=720, audio=True, aspect=16 / 9)
    audio = audio_of(video)
    # Speech from the lead-in on (room tone alone is -50 dBFS).
    assert dbfs(audio[int(0.3 * SAMPLE_RATE) : int(1.3 * SAMPLE_RATE)]) > -35


def test_veo_lite_first_and_last_frame_on_the_a14b_layout(
    engines: dict[str, DiffusionEngine], tmp_path: Path
) -> None:
    body = {
        "model": "google/veo-3.1-lite-generate-001", "prompt": "The scene turns into another.",
        "image_url": data_uri(FIRST), "last_image_url": data_uri(LAST), "duration": 4,
        "resolution": "720P", "aspect_ratio": "9:16",
    }  # fmt: skip
    with in_process(tmp_path, [engines["wan-i2v"]]) as kinema, kinema.client() as client:
        video = generation(client, kinema, body, tmp_path / "flf.mp4")
    assert_video(video, seconds=4, short_side=720, audio=True, aspect=9 / 16)
    assert -60 < dbfs(audio_of(video)) < -40  # room tone: no words were quoted


# --------------------------------------------------------------------------- engines alone
@pytest.mark.parametrize(
    ("model", "capability"),
    [
        ("wan-ti2v", IMAGE_TO_VIDEO),
        ("wan-i2v", IMAGE_TO_VIDEO),
        ("ltx-condition", TEXT_TO_VIDEO),
        ("ltx-condition", IMAGE_TO_VIDEO),
        ("ltx-condition", FIRST_LAST_FRAME),
        ("ltx", TEXT_TO_VIDEO),
        ("ltx", IMAGE_TO_VIDEO),
    ],
)
def test_each_layout_serves_its_capabilities(
    engines: dict[str, DiffusionEngine], tmp_path: Path, model: str, capability: str
) -> None:
    ctx = FakeContext(tmp_path)
    engines[model].generate(request(capability, generate_audio=True), ctx)
    seen = probe(ctx.output_path)
    assert (seen.width, seen.height, seen.frames, seen.has_audio) == (114, 64, 50, True)
    assert abs(seen.duration - 2.0) < 0.05
    # Progress: the denoising steps, then decode, then the encode, never backwards.
    assert ctx.reports == sorted(ctx.reports) and ctx.reports[-1] == 1.0
    steps = [r for r in ctx.reports if r <= DENOISE_END]
    assert steps == pytest.approx([DENOISE_END / 2, DENOISE_END])
    assert DECODE_END in ctx.reports


def test_the_same_seed_gives_the_same_frames(
    engines: dict[str, DiffusionEngine], tmp_path: Path
) -> None:
    engine = engines["wan-ti2v"]

    def render(name: str, seed: int | None) -> list[np.ndarray]:
        ctx = FakeContext(tmp_path, output_name=f"{name}.mp4")
        engine.generate(request(TEXT_TO_VIDEO, seed=seed), ctx)
        return frames_of(ctx.output_path)

    first, again, other = render("a", 11), render("b", 11), render("c", 12)
    assert all(np.array_equal(x, y) for x, y in zip(first, again, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(first, other, strict=True))
    # Without a seed the prompts choose it: the same request, the same video.
    unseeded = render("d", None)
    assert all(np.array_equal(x, y) for x, y in zip(unseeded, render("e", None), strict=True))


def test_cancel_mid_denoise_stops_within_one_step(models: dict[str, Path], tmp_path: Path) -> None:
    engine = engine_for(models, "wan-ti2v", steps=8)
    engine.load()
    pipe = engine._pipes[TEXT_TO_VIDEO]
    calls = {"transformer": 0, "decode": 0}
    hook = pipe.transformer.register_forward_hook(
        lambda *_: calls.__setitem__("transformer", calls["transformer"] + 1)
    )
    decode = pipe.vae.decode

    def counted_decode(*args: Any, **kwargs: Any) -> Any:
        calls["decode"] += 1
        return decode(*args, **kwargs)

    pipe.vae.decode = counted_decode
    try:
        ctx = FakeContext(tmp_path, cancel_after=2)  # cancelled once 2 steps reported
        with pytest.raises(Cancelled):
            engine.generate(request(TEXT_TO_VIDEO), ctx)
        # Steps 1 and 2 reported; step 3 ran while the cancellation was pending and the
        # pipeline stopped after it: 3 of 8 steps (2 transformer calls each: guidance),
        # and no VAE decode.
        assert len(ctx.reports) == 2
        assert calls == {"transformer": 3 * 2, "decode": 0}
        assert not ctx.output_path.exists()
        # The engine is free and its pipeline still loaded: the next job runs.
        after = FakeContext(tmp_path / "after")
        (tmp_path / "after").mkdir()
        engine.generate(request(TEXT_TO_VIDEO), after)
        assert probe(after.output_path).frames == 50 and calls["decode"] == 1
    finally:
        hook.remove()
        pipe.vae.decode = decode


def test_out_of_memory_is_a_job_error_naming_the_option(
    models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    engine = engine_for(models, "wan-ti2v")
    real_call = engine.call
    failures = iter(["denoise", "decode"])

    def oom_once(pipe: Any, arguments: dict[str, Any]) -> Any:
        phase = next(failures, None)
        if phase is None:
            return real_call(pipe, arguments)
        if phase == "decode":  # every step done: the VAE decode ran out
            for step in range(2):
                pipe._num_timesteps = 2
                arguments["callback_on_step_end"](pipe, step, 0, {})
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 22.00 GiB")

    monkeypatch.setattr(engine, "call", oom_once)
    with in_process(tmp_path, [engine]) as kinema, kinema.client() as client:
        gen_id = client.post(
            "/v2/video/generations", json={"model": "video-01", "prompt": "A fox."}
        ).json()["id"]
        kinema.work()
        body = client.get("/v2/video/generations", params={"generation_id": gen_id}).json()
        assert body["status"] == "error" and body["error"]["name"] == "OutOfMemory"
        assert "offload = 'model'" in body["error"]["message"]
        assert "short_side" in body["error"]["message"]
    with pytest.raises(EngineError, match="vae_tiling = true"):
        engine.generate(request(TEXT_TO_VIDEO), FakeContext(tmp_path))
    # The worker's engine is still loaded and serves the next job.
    ctx = FakeContext(tmp_path, output_name="next.mp4")
    engine.generate(request(TEXT_TO_VIDEO), ctx)
    assert probe(ctx.output_path).frames == 50


# --------------------------------------------------------------------------- sound
def test_words_that_do_not_fit_fail_before_any_gpu_work() -> None:
    long_words = "'" + "This sentence is far too long to be said in one second. " * 3 + "'"
    with pytest.raises(InputError, match="prompt: the quoted words take"):
        plan_sound(
            request(TEXT_TO_VIDEO, prompt=f"He says {long_words}", generate_audio=True), 25, 0
        )
    assert plan_sound(request(TEXT_TO_VIDEO), 25, 0) is None


def test_lip_sync_moves_the_mouth_of_a_face_in_the_generated_frames() -> None:
    from kinema.media.face_models import model_missing

    if model_missing() is not None:
        pytest.skip(model_missing() or "")
    import cv2

    face = cv2.cvtColor(
        cv2.imdecode(np.frombuffer(make_face(256), np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB
    )
    count = 60
    sound = plan_sound(
        request(DIALOGUE, prompt="She says: 'Open wide, everyone.'", generate_audio=True),
        count,
        7,
    )
    assert sound is not None and sound.mouth is not None
    frames: Iterator[np.ndarray] = (face.copy() for _ in range(count))
    synced = list(lip_sync(frames, sound.mouth, sound.seed))
    moving = [i for i in range(count) if sound.mouth.open[i] > 0.3]
    resting = [i for i in range(count) if max(abs(sound.mouth.open[i]), abs(sound.mouth.width[i]),
                                              abs(sound.mouth.round[i])) <= 0.01]  # fmt: skip
    assert moving and resting
    assert all(not np.array_equal(synced[i], face) for i in moving)
    assert all(np.array_equal(synced[i], face) for i in resting)
    # Only the face changes: the image's corners are untouched.
    assert all(np.array_equal(synced[i][:20, :20], face[:20, :20]) for i in moving)
