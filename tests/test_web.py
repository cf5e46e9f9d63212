"""The playground and the console in a real browser: Playwright driving Debian's Chromium
against a real `kinema serve` with a real worker. Each test saves a screenshot under
test-artifacts/web/ (KINEMA_TEST_ARTIFACTS moves it); KINEMA_README_SCREENSHOTS=1 also
refreshes docs/screenshots/ for the README.

Every page also checks, on the way out, that it made no request to another origin, hit
no Content-Security-Policy violation, raised no script error and opened no dialog."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import KinemaServer, make_face, make_speech_mp3, wait_for

playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = os.environ.get("KINEMA_CHROMIUM", "/usr/bin/chromium")
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get("KINEMA_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "web"
README_SHOTS = ROOT / "docs" / "screenshots"
UNIFIED = "/v2/video/generations"
FPS = 25
XSS = "<script>window.__xss = 1</script><img src=x onerror=\"window.__xss = 2\"> & 'quotes'"

PLAYGROUND_READY = (
    "() => !document.querySelector('#view-playground').hidden && "
    "document.querySelectorAll('#model option').length > 0"
)

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason=f"needs Chromium at {CHROMIUM} (apt-get install chromium; `make test` does it)",
)


# ---------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def kinema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KinemaServer]:
    server = KinemaServer(tmp_path_factory.mktemp("web"), workers=1)
    server.start()
    yield server
    server.stop()


def _cli(server: KinemaServer, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "kinema", "keys", *args, "--data-dir", str(server.data_dir)],
        env=server.env, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def admin_key(kinema: KinemaServer) -> str:
    """An operator key, made the documented way (`kinema keys create --admin`)."""
    return _cli(kinema, "create", "--name", "operator", "--admin")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("inputs")
    face = folder / "face.png"
    face.write_bytes(make_face(480))
    speech = folder / "hello.mp3"
    speech.write_bytes(make_speech_mp3("Hello! This video was made in the Kinema playground."))
    return {"face": face, "speech": speech}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM)
        yield chromium
        chromium.close()


class Watch:
    """What a page did that it must not: requests to other origins, CSP violations,
    script errors, dialogs."""

    def __init__(self, page: Any, origin: str) -> None:
        self.origin = origin
        self.foreign: list[str] = []
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.posts: list[str] = []
        self.urls: list[str] = []
        page.on("request", self._request)
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        page.on("dialog", self._dialog)

    def _request(self, request: Any) -> None:
        url = request.url
        self.urls.append(url)
        if request.method == "POST":
            self.posts.append(url)
        if not url.startswith((self.origin + "/", "blob:", "data:")):
            self.foreign.append(url)

    def _console(self, message: Any) -> None:
        # The browser logs each 4xx API answer as a failed resource load: expected here.
        if message.type == "error" and "Failed to load resource" not in message.text:
            self.errors.append(message.text)

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def check(self) -> None:
        assert self.foreign == [], f"requests to other origins: {self.foreign}"
        assert self.errors == [], f"script errors or CSP violations: {self.errors}"
        assert self.dialogs == [], f"dialogs opened: {self.dialogs}"


@pytest.fixture
def page(browser: Any, kinema: KinemaServer) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    tab = context.new_page()
    tab.set_default_timeout(20_000)
    tab.watch = Watch(tab, kinema.base_url)
    yield tab
    try:
        tab.watch.check()
    finally:
        context.close()


def screenshot(page: Any, name: str, readme: str | None = None) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    if readme and os.environ.get("KINEMA_README_SCREENSHOTS"):
        README_SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, README_SHOTS / readme)
    return path


def login(page: Any, server: KinemaServer, key: str) -> None:
    page.goto(server.base_url + "/")
    assert page.url == server.base_url + "/playground" or page.url.startswith(
        server.base_url + "/playground#"
    )
    page.fill("#api-key", key)
    page.click("#key-submit")
    page.wait_for_function(PLAYGROUND_READY)
    assert key not in page.url  # the key never goes into a URL
    assert page.evaluate("localStorage.getItem('kinema.apiKey')") == key


def data_uri(path: Path, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode()


def drop_file(page: Any, target: str, path: Path, mime: str) -> None:
    """Drag a file from the desktop onto `target` (a real `drop` event with a DataTransfer)."""
    transfer = page.evaluate_handle(
        """([name, mime, b64]) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type: mime }));
            return transfer;
        }""",
        [path.name, mime, base64.b64encode(path.read_bytes()).decode()],
    )
    for event in ("dragenter", "dragover", "drop"):
        page.dispatch_event(target, event, {"dataTransfer": transfer})


def audio_seconds(path: Path) -> float:
    from kinema.media.audio import decode_audio

    return decode_audio(path.read_bytes(), "audio_url", None).size / 48000


def new_key(server: KinemaServer, admin_key: str, name: str) -> str:
    r = httpx.post(
        server.base_url + "/v2/admin/keys", json={"name": name},
        headers={"Authorization": f"Bearer {admin_key}"},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    return str(r.json()["secret"])


# ---------------------------------------------------------------------- tests
def test_the_key_gate_refuses_a_wrong_key_and_says_so(page: Any, kinema: KinemaServer) -> None:
    page.goto(kinema.base_url + "/playground")
    assert page.is_visible("#key-gate") and not page.is_visible("#view-playground")
    page.fill("#api-key", "kn-not-a-real-key")
    page.keyboard.press("Enter")
    page.wait_for_selector("#key-error:has-text('does not accept')")
    assert page.evaluate("localStorage.getItem('kinema.apiKey')") is None
    assert not page.is_visible("#view-playground")
    screenshot(page, "key-gate")


def test_first_video_from_a_face_and_speech(
    page: Any, kinema: KinemaServer, inputs: dict[str, Path]
) -> None:
    login(page, kinema, kinema.key)
    assert page.is_hidden("#tab-console")  # not an admin key
    page.select_option("#model", "veed/fabric-1.0")
    assert page.locator("#f-resolution").input_value() != ""  # the default, pre-filled
    assert page.locator("#f-resolution option:checked").inner_text() == "480p"
    page.set_input_files("#f-image_url-file", str(inputs["face"]))
    page.set_input_files("#f-audio_url-file", str(inputs["speech"]))
    # Previews before submitting: the picture decoded, the audio playable.
    page.wait_for_function(
        "() => document.querySelector('[data-field=image_url] .preview img')?.naturalWidth === 480"
    )
    page.wait_for_function(
        "() => document.querySelector('[data-field=audio_url] .preview audio')?.duration > 1"
    )
    page.wait_for_selector("#quote:has-text('talking_head')")  # which backend renders it
    code = page.inner_text("#code-text")
    assert "curl" in code and "$KINEMA_API_KEY" in code and kinema.key not in code
    assert "face.png" in code and "hello.mp3" in code

    page.click("#submit")
    page.wait_for_selector("#run:not([hidden])")
    page.wait_for_selector("#run[data-status=completed]", timeout=60_000)
    assert any(UNIFIED + "/events?" in url for url in page.watch.urls)  # followed live
    progress = page.locator("#run-progress")
    assert progress.evaluate("el => el.value") == 100
    page.wait_for_function("() => document.querySelector('#result-video').readyState >= 2")
    duration = page.locator("#result-video").evaluate("el => el.duration")
    assert abs(duration - audio_seconds(inputs["speech"])) <= 1 / FPS
    facts = page.inner_text("#result-meta")
    assert "talking_head" in facts and "480 × 480" in facts and "Credits" in facts

    gen_id = page.inner_text("#run-id")
    with kinema.client() as api:
        body = api.get(UNIFIED, params={"generation_id": gen_id}).json()
    video = body["video"]
    with page.expect_download() as download:
        page.click("#download")
    saved = Path(download.value.path())
    assert download.value.suggested_filename == video["file_name"]
    data = saved.read_bytes()
    assert len(data) == video["file_size"] and data[4:8] == b"ftyp"

    for tab, marker in (
        ("python", "requests.post"),
        ("sdk", "videos.generate"),
        ("cli", "--audio"),
    ):
        page.click(f"#code-tab-{tab}")
        assert marker in page.inner_text("#code-text")
    page.click("#code-tab-curl")
    page.locator("#result-video").evaluate("el => { el.currentTime = 1.0; }")
    page.wait_for_function("() => document.querySelector('#result-video').readyState >= 2")
    screenshot(page, "playground", readme="playground.png")


def test_the_code_panel_runs_as_shown(
    page: Any, kinema: KinemaServer, inputs: dict[str, Path], tmp_path: Path
) -> None:
    """curl, Python (requests), the SDK and the CLI, copied from the panel and run in a
    folder holding the picked files: each makes the same generation."""
    login(page, kinema, kinema.key)
    page.select_option("#model", "veed/fabric-1.0")
    page.set_input_files("#f-image_url-file", str(inputs["face"]))
    page.set_input_files("#f-audio_url-file", str(inputs["speech"]))
    page.wait_for_selector("#quote:has-text('talking_head')")
    code = {}
    for tab in ("curl", "python", "sdk", "cli"):
        page.click(f"#code-tab-{tab}")
        code[tab] = page.inner_text("#code-text")
    for path in inputs.values():
        shutil.copy(path, tmp_path / path.name)
    env = {**os.environ, "KINEMA_API_KEY": kinema.key, "KINEMA_BASE_URL": kinema.base_url}
    bin_dir = Path(sys.executable).parent  # `kinema` and `python` of this environment
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"

    def run(*argv: str) -> str:
        done = subprocess.run(
            argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=90
        )
        assert done.returncode == 0, f"{argv[:2]}: {done.stdout}{done.stderr}"
        return done.stdout

    if shutil.which("curl"):
        submit = code["curl"].split("\n\n")[0]  # the submit, without the poll
        answer = run("bash", "-c", submit)
        assert '"status":"queued"' in answer
    assert run(sys.executable, "-c", code["python"]).startswith(kinema.base_url + "/v2/files/")
    assert run(sys.executable, "-c", code["sdk"]).strip().endswith("video.mp4")
    cli = code["cli"].split("\n", 1)[1]  # after the `export` line (a placeholder key)
    run("bash", "-c", cli)
    assert (tmp_path / "video.mp4").read_bytes()[4:8] == b"ftyp"
    page.click("#code-tab-python")
    screenshot(page, "code-panel")


def test_a_bad_field_shows_the_servers_message_beside_it(page: Any, kinema: KinemaServer) -> None:
    login(page, kinema, kinema.key)
    page.click("#presets button:has-text('PixVerse lip-sync')")  # a documented example
    assert page.input_value("#model") == "pixverse/v5/image-to-video"
    assert page.locator("#f-lip_sync_tts_speaker option:checked").inner_text() == "Chloe"
    assert "news-presenter.jpg" in page.input_value("#f-image_url")
    page.select_option("#model", "veed/fabric-1.0")
    page.select_option("#model", "pixverse/v5/image-to-video")  # a fresh, empty form
    page.wait_for_selector("#f-prompt")
    posts = len(page.watch.posts)
    page.click("#submit")  # nothing filled in: refused here, before any request
    assert page.inner_text("#f-prompt-error") == "Required"
    assert page.inner_text("#f-image_url-error") == "Required"
    page.wait_for_timeout(500)
    submits = [u for u in page.watch.posts[posts:] if "dry_run" not in u]
    assert submits == []

    page.fill("#f-prompt", "slow zoom in")
    page.fill("#f-image_url", "ftp://example.com/face.png")
    page.click("#submit")
    error = page.locator("#f-image_url-error")
    error.wait_for(state="visible")
    body = {"model": "pixverse/v5/image-to-video", "prompt": "slow zoom in",
            "image_url": "ftp://example.com/face.png", "resolution": "720p"}  # fmt: skip
    with kinema.client() as api:
        refused = api.post(UNIFIED, json=body)
    assert refused.status_code == 400
    (detail,) = refused.json()["details"]
    assert detail["field"] == "image_url"
    assert error.inner_text() == detail["message"]  # the server's own words, beside it
    assert page.get_attribute("#f-image_url", "aria-invalid") == "true"
    assert page.is_hidden("#f-prompt-error")
    screenshot(page, "bad-field")


def test_cancel_a_queued_generation(
    page: Any, kinema: KinemaServer, inputs: dict[str, Path]
) -> None:
    face = data_uri(inputs["face"], "image/png")
    with kinema.client() as api:
        # Occupy the only worker with a long job, so the page's job waits in the queue.
        blocker = api.post(UNIFIED, json={
            "model": "google/veo-3.1-i2v-fast", "prompt": "a slow push in",
            "image_url": face, "resolution": "1080p", "duration": 8,
        }).json()["id"]  # fmt: skip
        deadline = time.monotonic() + 30
        while api.get(UNIFIED, params={"generation_id": blocker}).json()["status"] == "queued":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        try:
            login(page, kinema, kinema.key)
            page.select_option("#model", "pixverse/v5/image-to-video")
            page.fill("#f-prompt", "the camera drifts left")
            drop_file(page, "[data-field=image_url] .drop", inputs["face"], "image/png")
            page.wait_for_selector("[data-field=image_url] .preview img")
            page.click("#submit")
            page.wait_for_selector("#run[data-status=queued]")
            assert "Position in queue" in page.inner_text("#run-phase") or "Next" in (
                page.inner_text("#run-phase")
            )
            page.click("#cancel")
            page.wait_for_selector("#run-status:has-text('Cancelled')")
            gen_id = page.inner_text("#run-id")
            body = api.get(UNIFIED, params={"generation_id": gen_id}).json()
            assert body["status"] == "error" and body["error"]["name"] == "Cancelled"
            assert page.is_hidden("#cancel")
            screenshot(page, "cancelled")
        finally:
            api.post(UNIFIED + "/cancel", params={"generation_id": blocker})
            wait_for(api, blocker, timeout=30)


def test_history_lists_pages_and_deletes(
    page: Any, kinema: KinemaServer, admin_key: str, inputs: dict[str, Path]
) -> None:
    key = new_key(kinema, admin_key, "history")  # a key of its own: a known history
    headers = {"Authorization": f"Bearer {key}"}
    face = data_uri(inputs["face"], "image/png")
    ids = []
    with httpx.Client(base_url=kinema.base_url, headers=headers, timeout=30) as api:
        for n in range(9):  # fail at once at the worker: nothing listens on port 9
            body = {"model": "pixverse/v5/image-to-video", "prompt": f"shot {n}",
                    "image_url": "http://127.0.0.1:9/missing.png"}  # fmt: skip
            ids.append(api.post(UNIFIED, json=body).json()["id"])
        done = {"model": "pixverse/v5/image-to-video", "prompt": "the finale",
                "image_url": face, "resolution": "360p"}  # fmt: skip
        ids.append(api.post(UNIFIED, json=done).json()["id"])
        for gen_id in ids:
            wait_for(api, gen_id, timeout=60)
    newest_first = ids[::-1]

    login(page, kinema, key)
    page.click("#tab-history")
    items = page.locator("#history-list > li")
    page.wait_for_function("() => document.querySelectorAll('#history-list > li').length === 8")
    assert [items.nth(i).get_attribute("data-id") for i in range(8)] == newest_first[:8]
    first = items.nth(0)
    assert first.get_attribute("data-status") == "completed"
    page.wait_for_function(
        "() => document.querySelector('#history-list > li video.thumb')?.readyState >= 1"
    )
    assert "InvalidInput" in items.nth(1).inner_text()  # a failed one says why
    assert page.is_disabled("#history-newer")
    page.click("#history-older")
    page.wait_for_function("() => document.querySelectorAll('#history-list > li').length === 2")
    assert [items.nth(i).get_attribute("data-id") for i in range(2)] == newest_first[8:]
    assert page.is_disabled("#history-older")
    page.click("#history-newer")
    page.wait_for_function(
        f"() => document.querySelector('#history-list > li')?.dataset.id === '{newest_first[0]}'"
    )
    screenshot(page, "history")

    victim = newest_first[1]
    page.click(f"#history-list > li[data-id='{victim}'] button:has-text('Delete')")
    page.click(f"#history-list > li[data-id='{victim}'] button:has-text('Delete for good')")
    page.wait_for_selector(f"#history-list > li[data-id='{victim}']", state="detached")
    assert page.get_attribute("#history-list > li:nth-child(2)", "data-id") == newest_first[2]
    r = httpx.get(kinema.base_url + UNIFIED, params={"generation_id": victim}, headers=headers)
    assert r.status_code == 404


def test_a_script_in_a_prompt_is_shown_as_text(
    page: Any, kinema: KinemaServer, inputs: dict[str, Path]
) -> None:
    login(page, kinema, kinema.key)
    page.select_option("#model", "pixverse/v5/image-to-video")
    page.fill("#f-prompt", XSS)
    page.set_input_files("#f-image_url-file", str(inputs["face"]))
    page.select_option("#f-resolution", label="360p")
    # In the generated code, as text (escaped for JSON and the shell, not for HTML).
    assert "<script>window.__xss = 1</script><img src=x onerror=" in page.inner_text("#code-text")
    page.click("#submit")
    page.wait_for_selector("#run[data-status=completed]", timeout=60_000)
    assert page.inner_text("#run-prompt") == XSS
    for tab in ("python", "sdk", "cli"):
        page.click(f"#code-tab-{tab}")
        assert "<script>" in page.inner_text("#code-text")
    assert page.evaluate("window.__xss") is None
    assert page.locator("img[src='x']").count() == 0
    assert page.locator("#run-prompt script, #code-text script").count() == 0
    screenshot(page, "xss-as-text")


def test_console_creates_credits_and_revokes_a_key(
    page: Any, kinema: KinemaServer, admin_key: str
) -> None:
    login(page, kinema, admin_key)
    page.wait_for_selector("#tab-console:not([hidden])")
    page.click("#tab-console")
    page.wait_for_selector("#workers-body tr th")  # the live worker
    assert "talking_head" in page.inner_text("#workers-body")
    page.wait_for_selector("#engines-body tr[data-engine=talking_head] .badge:has-text('ok')")

    name = "ci <b>bot</b>"  # shown as typed, never as markup
    page.fill("#new-key-name", name)
    page.fill("#new-key-credits", "1000000")
    page.click("#new-key-submit")
    page.wait_for_selector("#new-secret:not([hidden])")
    secret = page.input_value("#secret-value")
    assert secret.startswith("kn-")
    listed = httpx.get(
        kinema.base_url + UNIFIED + "/list", headers={"Authorization": f"Bearer {secret}"}
    )
    assert listed.status_code == 200  # the new key works
    row = page.locator("#keys-body tr", has_text=name)
    row.wait_for()
    assert page.locator("#keys-body b").count() == 0
    key_id = row.get_attribute("data-key")
    assert "1,000,000" in row.inner_text()
    screenshot(page, "console-new-key")
    page.click("#secret-done")
    assert page.input_value("#secret-value") == "" and page.is_hidden("#new-secret")
    assert secret not in page.content()  # shown once, then gone from the page

    row.locator("input[type=number]").fill("500000")
    row.locator("button:has-text('Add')").click()
    page.wait_for_selector(f"#keys-body tr[data-key={key_id}]:has-text('1,500,000')")
    row = page.locator(f"#keys-body tr[data-key={key_id}]")
    row.locator("button:has-text('Revoke')").click()
    row.locator("button:has-text('now')").click()
    page.wait_for_selector(f"#keys-body tr[data-key={key_id}] .badge:has-text('revoked')")
    deadline = time.monotonic() + 10  # past the API's short auth cache
    while True:
        refused = httpx.get(
            kinema.base_url + UNIFIED + "/list", headers={"Authorization": f"Bearer {secret}"}
        )
        if refused.status_code == 401 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert refused.status_code == 401
    audit = page.locator("#audit-body")
    audit.locator("th", has_text="key.revoke").wait_for()
    text = audit.inner_text()
    assert "key.create" in text and "key.credit" in text and key_id in text
    assert secret not in text
    page.click("#console-refresh")
    page.wait_for_timeout(500)
    screenshot(page, "console", readme="console.png")


def test_phone_width_keyboard_labels_and_contrast(
    browser: Any, kinema: KinemaServer, admin_key: str
) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    phone = context.new_page()
    phone.set_default_timeout(20_000)
    watch = Watch(phone, kinema.base_url)
    try:
        phone.goto(kinema.base_url + "/")
        # Keyboard only: the key field has focus; Enter submits; arrows move between tabs.
        phone.wait_for_function("() => document.activeElement?.id === 'api-key'")
        phone.keyboard.type(admin_key)
        phone.keyboard.press("Enter")
        phone.wait_for_function(PLAYGROUND_READY)
        phone.focus("#tab-playground")
        phone.keyboard.press("ArrowRight")
        assert phone.evaluate("document.activeElement.id") == "tab-history"
        assert phone.is_visible("#view-history")
        phone.keyboard.press("ArrowLeft")
        assert phone.is_visible("#view-playground")
        phone.select_option("#model", "veed/fabric-1.0")
        for view in ("playground", "history", "console"):
            phone.click(f"#tab-{view}")
            phone.wait_for_selector(f"#view-{view}:not([hidden])")
            phone.wait_for_timeout(300)
            overflow = phone.evaluate("document.documentElement.scrollWidth")
            assert overflow <= 390, f"{view} scrolls sideways on a phone ({overflow} px)"
            assert phone.evaluate(UNLABELLED) == [], f"controls without a label in {view}"
            assert phone.evaluate(LOW_CONTRAST) == [], f"text below 4.5:1 in {view}"
        phone.click("#tab-playground")
        screenshot(phone, "phone-390x844")
        watch.check()
    finally:
        context.close()


# Visible form controls that no label names (a <label>, aria-label or aria-labelledby).
UNLABELLED = """
[...document.querySelectorAll('input, select, textarea, button')]
  .filter(el => el.offsetParent !== null && el.type !== 'hidden')
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                && !el.getAttribute('aria-labelledby')
                && !(el.tagName === 'BUTTON' && el.textContent.trim()))
  .map(el => el.outerHTML.slice(0, 80))
"""

# Visible text whose colour against its background is under WCAG AA's 4.5:1.
LOW_CONTRAST = """
(() => {
  const rgb = s => (s.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = c => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = el => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0.5)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const bad = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    const el = node.parentElement;
    if (!node.textContent.trim() || !el || el.offsetParent === null) continue;
    if (el.closest('pre, option, [disabled], .sr-only, .skip')) continue;
    const a = lum(rgb(getComputedStyle(el).color).slice(0, 3));
    const b = lum(background(el));
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const what = node.textContent.trim().slice(0, 30);
    if (ratio < 4.5) bad.push(`${ratio.toFixed(2)} ${el.tagName} ${what}`);
  }
  return bad;
})()
"""


def test_no_key_reaches_the_server_log(kinema: KinemaServer, admin_key: str) -> None:
    log = kinema.log_path.read_text(errors="replace")
    assert "/playground" in log or "Uvicorn running" in log
    for key in (kinema.key, admin_key):
        assert key not in log
