"""The seed documents' JavaScript examples, run with `node` against a live `kinema serve`:
the ones on Node's `https` module (fabric, PixVerse legacy, Veo Lite) against
`kinema serve --tls-self-signed`, trusting its CA through NODE_EXTRA_CA_CERTS as a user
would; the fetch-based ones (Veo i2v fast, PixVerse unified with lip-sync) both over that
HTTPS and over plain HTTP. Only the base URL, the key and the media URLs change (checked
line by line); each video they get back is downloaded and checked with PyAV."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import KinemaServer, MediaServer
from tests.test_seeds import SEED_MEDIA, audio_seconds
from tests.tls_server import TlsServer
from tests.videos import assert_video, download

CLIENTS = Path(__file__).parent / "seed_clients" / "js"
SEED_BASE, SEED_KEY = "https://api.aimlapi.com", "<YOUR_AIMLAPI_KEY>"

CASES = {
    # script: (servers, seconds, short side, audio, aspect or None)
    "fabric.js": (("https",), None, 720, True, 1.0),  # length = the audio's
    "pixverse_legacy.js": (("https",), 5, 720, False, 16 / 9),  # legacy aspect default
    "veo_lite.js": (("https",), 8, 720, True, None),  # first + last frame, dialogue
    "veo_i2v_fast.js": (("https", "http"), 8, 1080, True, 9 / 16),  # portrait image
    "pixverse_unified.js": (("https", "http"), 5, 720, True, 1.0),  # TTS lip-sync
}


def node() -> str:
    path = shutil.which("node")
    if path is None:
        pytest.fail(
            "node (Node.js >= 18) is not on PATH: these tests run the seeds' JavaScript "
            "examples with it. Install it (Debian: apt-get install nodejs)."
        )
    return path


def seed_body(script: str) -> str:
    """The stored copy without its provenance header (which ends at the first blank line)."""
    return (CLIENTS / script).read_text().split("\n\n", 1)[1]


def seeds_dir() -> Path:
    """The seed documents: a copy kept beside the clients (tests/seed_clients/seeds, the
    same files as the project's shared/seeds), or KINEMA_SEEDS_DIR."""
    configured = os.environ.get("KINEMA_SEEDS_DIR")
    return Path(configured) if configured else CLIENTS.parent / "seeds"


def test_the_stored_copies_are_the_seeds_text() -> None:
    directory = seeds_dir()
    assert directory.is_dir(), f"the seed documents are not at {directory}"
    documents = {path.name: path.read_text() for path in directory.glob("*.txt")}
    for script in CASES:
        header = (CLIENTS / script).read_text().split("\n\n", 1)[0]
        seed = re.search(r"shared/seeds/(\S+?\.txt)", header)
        assert seed and seed[1] in documents, header
        assert seed_body(script) in documents[seed[1]], f"{script} is not {seed[1]}'s text"


def adapt(script: str, base_url: str, key: str, media: MediaServer) -> str:
    """The seed's code with the base URL, key and media URLs replaced, and nothing else:
    every line that differs held one of the replaced strings."""
    original = seed_body(script)
    replacements = {SEED_BASE: base_url, SEED_KEY: key}
    replacements |= {url: f"{media.base}/{name}" for url, name in SEED_MEDIA.items()}
    text = original
    for old, new in replacements.items():
        text = text.replace(old, new)
    assert SEED_BASE not in text and SEED_KEY not in text
    before, after = original.split("\n"), text.split("\n")
    assert len(before) == len(after)
    for old_line, new_line in zip(before, after, strict=True):
        if old_line != new_line:
            assert any(old in old_line for old in replacements), (old_line, new_line)
    assert "aimlapi.com" not in text.replace("AIMLAPI", ""), text
    return text


def test_adapting_changes_only_the_base_url_key_and_media(media: MediaServer) -> None:
    for script in CASES:
        text = adapt(script, "https://127.0.0.1:1", "kn-key", media)
        assert "https://127.0.0.1:1/v2" in text and '"kn-key"' in text.replace("'", '"')


def outcome(output: str) -> dict[str, str]:
    """The fields of the final poll the script printed (`console.log` of the object)."""
    assert "Processing complete:" in output, output
    final = output.rsplit("Processing complete:", 1)[1]
    fields = {}
    for name, pattern in {
        "status": r"status: '(\w+)'", "url": r"url: '([^']+)'", "width": r"width: (\d+)",
        "height": r"height: (\d+)", "file_size": r"file_size: (\d+)",
    }.items():  # fmt: skip
        match = re.search(pattern, final)
        assert match, (name, output)
        fields[name] = match[1]
    return fields


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    server = TlsServer(tmp_path_factory.mktemp("kinema-tls"), flags=["--tls-self-signed"])
    server.start()
    yield server
    server.stop()


def test_the_seed_js_examples_complete_under_node(
    tls_server: TlsServer, server: KinemaServer, media: MediaServer, tmp_path: Path
) -> None:
    executable = node()
    ca = tls_server.ca.resolve()
    assert f"NODE_EXTRA_CA_CERTS={ca}" in tls_server.log()  # what the user is told to set
    env = {**os.environ, "NODE_EXTRA_CA_CERTS": str(ca)}
    # The scripts wait 10-15 s between polls: run them side by side.
    procs = {}
    for script, (kinds, *_) in CASES.items():
        for kind in kinds:
            target = tls_server if kind == "https" else server
            path = tmp_path / f"{kind}_{script}"
            path.write_text(adapt(script, target.base_url, target.key, media))
            procs[script, kind] = subprocess.Popen(
                [executable, str(path)], env=env, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, text=True,
            )  # fmt: skip
    with tls_server.plain_client() as http:
        for (script, kind), proc in procs.items():
            output, _ = proc.communicate(timeout=600)
            assert proc.returncode == 0, output
            assert "Error" not in output, output
            fields = outcome(output)
            assert fields["status"] == "completed", output
            target = tls_server if kind == "https" else server
            assert fields["url"].startswith(f"{target.base_url}/"), output
            mp4 = download(fields["url"], tmp_path / f"{kind}_{script}.mp4", client=http)
            _, seconds, short, audio, aspect = CASES[script]
            if seconds is None:  # fabric: as long as the audio, which is what we sent
                seconds = audio_seconds(media.root / "hope.mp3")
            probe = assert_video(mp4, seconds=seconds, short_side=short, audio=audio, aspect=aspect)
            assert (int(fields["width"]), int(fields["height"])) == (probe.width, probe.height)
            assert int(fields["file_size"]) == mp4.stat().st_size


def test_https_examples_fail_without_the_ca(tls_server: TlsServer, media: MediaServer) -> None:
    """The CA is what makes them work: without NODE_EXTRA_CA_CERTS Node refuses the
    certificate (and no job is submitted)."""
    text = adapt("veo_lite.js", tls_server.base_url, tls_server.key, media)
    env = {k: v for k, v in os.environ.items() if k != "NODE_EXTRA_CA_CERTS"}
    result = subprocess.run(
        [node(), "-e", text], env=env, capture_output=True, text=True, timeout=60
    )
    assert "unable to verify the first certificate" in result.stderr, result
    assert "Generation ID" not in result.stdout
