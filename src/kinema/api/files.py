"""Signed downloads of stored videos (local storage): no API key needed, like a CDN link;
Range requests supported (Starlette's FileResponse)."""

from __future__ import annotations

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse

from kinema.errors import NotFound
from kinema.storage import FILES_ROUTE, LocalStorage


def router(storage: LocalStorage) -> APIRouter:
    api = APIRouter()

    @api.get(FILES_ROUTE + "/{key:path}", include_in_schema=False, response_model=None)
    def download(key: str, expires: int = Query(...), signature: str = Query(...)) -> FileResponse:
        if not storage.signer.verify(key, expires, signature):
            raise NotFound(
                "This download link is invalid or has expired; poll the "
                "generation again for a fresh one."
            )
        try:
            path = storage.path(key)
        except ValueError:
            raise NotFound("No such file.") from None
        if not path.is_file():
            raise NotFound("No such file.")
        return FileResponse(path, media_type="video/mp4")

    return api
