"""What a job is, independent of where it is stored: its status, and the outcome a worker
records when it finishes (a video with its media metadata, or a failure)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from kinema.errors import JobFailure


class Status(StrEnum):
    """A job's public status: exactly the AI/ML API's four values."""

    QUEUED = "queued"
    GENERATING = "generating"
    COMPLETED = "completed"
    ERROR = "error"

    @property
    def is_terminal(self) -> bool:
        """Completed or failed: the row never changes again."""
        return self in (Status.COMPLETED, Status.ERROR)


PENDING = (Status.QUEUED, Status.GENERATING)


@dataclass(frozen=True)
class VideoOutput:
    """A finished video in blob storage, with the metadata the poll reports."""

    key: str
    content_type: str
    file_name: str
    file_size: int
    duration: float
    width: int
    height: int
    has_audio: bool
    # Beside the video since the OpenAI dialect (rows from before have neither): where a
    # poster of a representative frame (WebP) and a spritesheet of evenly spaced frames
    # (JPEG) are stored once first asked for (`media.posters.PosterMaker`); they may not
    # exist yet, and deleting a missing blob is harmless on every storage.
    thumbnail_key: str | None = None
    spritesheet_key: str | None = None
    # An extension delivered stitched onto the video it continues: the seconds this job
    # generated (charged), of `duration` in all. None: all of it.
    generated_seconds: float | None = None

    def blob_keys(self) -> list[str]:
        """Every blob this output may have stored: the video, its thumbnail and
        spritesheet (the last two only if they were asked for)."""
        return [k for k in (self.key, self.thumbnail_key, self.spritesheet_key) if k]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VideoOutput:
        """From a stored row; fields added later are optional, so older rows load."""
        return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})


@dataclass(frozen=True)
class Completed:
    """The job produced `output`; the key is charged `credits`."""

    output: VideoOutput
    credits: int


@dataclass(frozen=True)
class Failed:
    """The job failed: `name` and `message` are what the poll shows. Never charged."""

    name: str
    message: str

    @classmethod
    def of(cls, failure: JobFailure) -> Failed:
        return cls(failure.name, failure.message)


Outcome = Completed | Failed
