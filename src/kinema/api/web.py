"""The web app: the playground and the operator console, served by the API process at
`/playground` (`/` redirects there) as static files written by hand (`kinema/web/`: no
build step, no CDN, no third-party request) on top of the JSON API.

Every page and asset goes out with a strict Content-Security-Policy: scripts and styles
only from this origin and never inline, no `eval`, no frames, no plugins, requests only
to this origin; media also from the storage's origin when videos are served from S3.
The HTML holds no secret: the API key is typed into the page and kept in the browser's
localStorage, sent only in the `Authorization` header of the page's own API calls."""

from __future__ import annotations

import hashlib
import mimetypes
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from kinema.errors import NotFound
from kinema.settings import Settings

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
PAGE = "/playground"
ASSETS = PAGE + "/assets"
ASSET_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*\.(?:js|css|svg|png|ico|txt)$")
TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".html": "text/html; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}


def media_origins(settings: Settings) -> list[str]:
    """Origins videos may be played from, besides this one: the S3 endpoint clients
    download from, and `KINEMA_PUBLIC_URL` when it names another host."""
    origins: list[str] = []
    storage = urlparse(settings.resolved_storage_url)
    if storage.scheme == "s3":
        endpoint = settings.s3_public_endpoint_url or settings.s3_endpoint_url
        if endpoint:
            origins.append(_origin(endpoint))
        else:  # AWS itself: virtual-hosted and path-style bucket URLs
            origins.append("https://*.amazonaws.com")
    if settings.public_url:
        origins.append(_origin(settings.public_url))
    return [o for o in dict.fromkeys(origins) if o]


def _origin(url: str) -> str:
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        return ""
    return f"{parsed.scheme}://{parsed.netloc}"


def content_security_policy(settings: Settings) -> str:
    media = " ".join(["'self'", "blob:", "data:", *media_origins(settings)])
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' blob: data:",
            f"media-src {media}",
            "connect-src 'self'",
            "font-src 'self'",
            "manifest-src 'self'",
            "form-action 'none'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "object-src 'none'",
        ]
    )


def security_headers(settings: Settings) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(settings),
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Resource-Policy": "same-origin",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
    }


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


def load_assets(root: Path = WEB_DIR) -> dict[str, Asset]:
    """Every file of the web app, read once at start-up (a fixed set: nothing outside
    this directory, no listing, no path from the request ever touches the disk)."""
    assets: dict[str, Asset] = {}
    if not root.is_dir():
        return assets
    for path in sorted(root.iterdir()):
        if not path.is_file() or not (ASSET_NAME.match(path.name) or path.name == "index.html"):
            continue
        body = path.read_bytes()
        media_type = TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0]
        etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        assets[path.name] = Asset(body, media_type or "application/octet-stream", etag)
    return assets


def router(settings: Settings) -> APIRouter:
    api = APIRouter(include_in_schema=False)
    assets = load_assets()
    headers = security_headers(settings)

    def serve(request: Request, name: str) -> Response:
        asset = assets.get(name)
        if asset is None:
            raise NotFound(f"Cannot GET {request.url.path}")
        # Revalidated on every load (cheap: 304), so an upgrade never mixes versions.
        cache = {"ETag": asset.etag, "Cache-Control": "no-cache"}
        if request.headers.get("if-none-match") == asset.etag:
            return Response(status_code=304, headers={**headers, **cache})
        return Response(asset.body, media_type=asset.media_type, headers={**headers, **cache})

    @api.get("/")
    def root() -> RedirectResponse:
        return RedirectResponse(PAGE, status_code=307, headers=headers)

    @api.get(PAGE)
    def page(request: Request) -> Response:
        return serve(request, "index.html")

    @api.get(PAGE + "/")
    def page_slash() -> RedirectResponse:
        return RedirectResponse(PAGE, status_code=307, headers=headers)

    @api.get(ASSETS + "/{name}")
    def asset(request: Request, name: str) -> Response:
        if not ASSET_NAME.match(name):
            raise NotFound(f"Cannot GET {request.url.path}")
        return serve(request, name)

    return api
