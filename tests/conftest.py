from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support import KinemaServer, MediaServer, make_face, make_image, make_speech_mp3

if TYPE_CHECKING:
    from kinema.testing import InProcess

# the upstream-provider fixtures (clip, fake_env, aiml, openai, fal, rep, gem)
pytest_plugins = ["tests.provider_fixtures"]


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MediaServer]:
    server = MediaServer(tmp_path_factory.mktemp("media"))
    server.add("portrait.jpg", make_image(480, 640, "JPEG", seed=1))
    server.add("landscape.png", make_image(960, 540, "PNG", seed=2))
    server.add("wide.jpg", make_image(1280, 720, "JPEG", seed=3))
    server.add("face.png", make_face(720))
    speech = "Hope is the thing with feathers that perches in the soul."
    server.add("hope.mp3", make_speech_mp3(speech))
    yield server
    server.close()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KinemaServer]:
    """One shared `kinema serve` (1 worker) for tests that do not stop or crash it."""
    srv = KinemaServer(Path(tmp_path_factory.mktemp("kinema")), workers=1)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcess]:
    """The whole service in this process (the configured default engines, one SQLite file,
    local storage), shared by a module's tests. No worker runs in the background: a test
    runs the queued jobs with `service.work()` (see `tests.support.finish`)."""
    from kinema.testing import in_process

    with in_process(tmp_path_factory.mktemp("in-process")) as kinema:
        yield kinema
