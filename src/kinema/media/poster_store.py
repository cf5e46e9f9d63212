"""Posters stored on demand: the poster and spritesheet of a finished video are made
(`posters.make_posters`) the first time either is asked for, stored beside the video
under keys fixed at completion, and served from storage afterwards."""

from __future__ import annotations

import contextlib
import logging
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from kinema.media.posters import SPRITESHEET_TYPE, THUMBNAIL_TYPE, blob_file, make_posters

if TYPE_CHECKING:
    from kinema.storage import BlobStorage

log = logging.getLogger("kinema.media")


def poster_keys(stem: str) -> tuple[str, str]:
    """Where the poster and spritesheet of the stored video `videos/<stem>.mp4` go once
    made: deterministic, so a job records them at completion (delete and retention remove
    them whether or not they were ever made) and replicas agree on them."""
    return f"videos/{stem}.thumbnail.webp", f"videos/{stem}.spritesheet.jpg"


class Undecodable(ValueError):
    """A stored video no poster can be made from (not decodable, or no video frames)."""


class PosterMaker:
    """Posters made the first time they are asked for, not when a job completes: decoding
    the finished video again delayed every completion for images few clients fetch.

    Thread-safe: concurrent first requests for one video wait for a single making (a lock
    per video in this process; two replicas making the same deterministic images at once
    is harmless). A video that cannot be decoded is remembered, so asking again does not
    fetch and decode it again."""

    def __init__(self, storage: BlobStorage, failures_kept: int = 1024) -> None:
        self.storage = storage
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}  # video key -> lock, users
        self._failed: OrderedDict[str, str] = OrderedDict()
        self._failures_kept = failures_kept

    @contextlib.contextmanager
    def _locked(self, video_key: str) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.get(video_key, (threading.Lock(), 0))
            self._locks[video_key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, users = self._locks[video_key]
                if users == 1:
                    del self._locks[video_key]
                else:
                    self._locks[video_key] = (lock, users - 1)

    def ensure(
        self, video_key: str, thumbnail_key: str, spritesheet_key: str, wanted: Callable[[], bool]
    ) -> None:
        """Make and store the poster and spritesheet of the stored video `video_key`, unless
        both are stored already. `wanted()` is asked once they are stored: False (the job
        was deleted meanwhile, its blobs perhaps already removed) removes them again so
        none outlive their video, and raises FileNotFoundError like a video already gone.
        Undecodable if no poster can be made; storage errors propagate (worth a retry)."""
        with self._locked(video_key):
            with self._guard:
                reason = self._failed.get(video_key)
            if reason is not None:
                raise Undecodable(reason)
            if self.storage.exists(thumbnail_key) and self.storage.exists(spritesheet_key):
                return  # made by the request this one waited for
            with tempfile.TemporaryDirectory(prefix="kinema-posters-") as tmp:
                with blob_file(self.storage, video_key, Path(tmp)) as video:
                    try:
                        made = make_posters(video, Path(tmp) / "posters")
                    except Exception as exc:
                        log.warning("%s: no posters can be made", video_key, exc_info=True)
                        reason = f"its video cannot be decoded ({_why(exc)})"
                        self._remember(video_key, reason)
                        raise Undecodable(reason) from exc
                self.storage.put(spritesheet_key, made.spritesheet, SPRITESHEET_TYPE)
                self.storage.put(thumbnail_key, made.thumbnail, THUMBNAIL_TYPE)
            if not wanted():
                for key in (thumbnail_key, spritesheet_key):
                    self.storage.delete(key)
                raise FileNotFoundError(video_key)

    def _remember(self, video_key: str, reason: str) -> None:
        with self._guard:
            self._failed[video_key] = reason
            while len(self._failed) > self._failures_kept:
                self._failed.popitem(last=False)


def _why(exc: Exception) -> str:
    """What went wrong, for the client: FFmpeg's reason without the file's local path."""
    reason = getattr(exc, "strerror", None)  # PyAV's errors (an OSError's fields)
    if not reason and isinstance(exc, ValueError):
        reason = str(exc)  # make_posters' own: "<name> has no video frames"
    return str(reason or type(exc).__name__)[:200]
