"""The OpenAI Videos wire format (`/v1/videos`), the common protocol of video servers
(LiteLLM, vLLM-Omni, SGLang Diffusion and FastVideo serve it): a second dialect over the
same jobs, so a generation made on `/v2` is read here and one made here is read on `/v2`.

- `POST /v1/videos` (JSON or multipart with an `input_reference` file), `GET /v1/videos`
  (pages: `after`, `limit`, `order`), `GET /v1/videos/{id}` (answered on the poll fast
  path, with `openai-poll-after-ms`), `DELETE /v1/videos/{id}` (cancels a pending one
  first), `GET /v1/videos/{id}/content?variant=video|thumbnail|spritesheet`,
  `POST /v1/videos/{id}/remix`, `POST /v1/videos/extensions`; edits and characters: 400.
- Errors in OpenAI's envelope and status codes (`openai_models.render`).
- `model` is a Kinema model id or an alias (`KINEMA_OPENAI_MODEL_ALIASES`); `seconds` and
  `size` map onto the model's own choices (`openai_params`).
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from typing import Any
from urllib.parse import unquote

from fastapi import APIRouter

from kinema.api.auth import Authenticator
from kinema.dialects.base import Dialect, Rendered
from kinema.dialects.openai_jobs import Static, describe
from kinema.dialects.openai_models import poll_headers, render, status_envelope, video_body
from kinema.dialects.openai_params import MODELS, in_openai_terms
from kinema.errors import ConfigError, NotFound, ValidationFailed
from kinema.jobs.submission import SubmitOptions, Submitted, Submitter
from kinema.storage import BlobStorage
from kinema.store import Job, JobStatus

VIDEO_PATH = re.compile(r"^/v1/videos/([^/]+)$")
NOT_IDS = frozenset({"extensions", "edits", "characters"})  # routes of their own
STATIC_CACHE = 10_000  # generations whose static description is kept (it never changes)


class OpenAIDialect(Dialect):
    name = "openai"

    def __init__(self, auth: Authenticator, submitter: Submitter, storage: BlobStorage) -> None:
        self.auth = auth
        self.submitter = submitter
        self.storage = storage
        self.settings = submitter.settings
        self.store = submitter.store
        self.aliases = dict(self.settings.openai_model_aliases)
        unknown = {alias: to for alias, to in self.aliases.items() if to not in MODELS}
        if unknown:
            raise ConfigError(
                f"KINEMA_OPENAI_MODEL_ALIASES maps to models not served on the unified route: "
                f"{unknown} (known: {', '.join(sorted(MODELS))})"
            )
        self._static: OrderedDict[str, Static] = OrderedDict()
        self._lock = threading.Lock()

    def owns(self, path: str) -> bool:
        return path == "/v1" or path.startswith("/v1/")

    # ---- errors ---------------------------------------------------------------------
    def render_error(self, error: Any, path: str, request_id: str) -> Rendered:
        return render(error)

    def render_status(self, status: int, message: str, path: str, request_id: str) -> Rendered:
        return status, status_envelope(status, message), {}

    # ---- the video object -----------------------------------------------------------
    def static_of(self, job: Job) -> Static:
        """What never changes about `job` (remembered for its polls)."""
        with self._lock:
            found = self._static.get(job.id)
        if found is None:
            found = describe(job.route, job.model, job.params, job.extras, job.output)
            with self._lock:
                self._static[job.id] = found
                while len(self._static) > STATIC_CACHE:
                    self._static.popitem(last=False)
        return found

    def forget(self, job_id: str) -> None:
        with self._lock:
            self._static.pop(job_id, None)

    def video(self, job: Job | JobStatus) -> dict[str, Any]:
        """The `video` object of a job (a JobStatus needs one read of its row, once)."""
        with self._lock:
            static = self._static.get(job.id)
        if static is None:
            row = job if isinstance(job, Job) else self.store.get_job(job.id)
            if row is None:
                raise NotFound(f"Video '{job.id}' was not found.")
            static = self.static_of(row)
        return video_body(job, static, self.settings.retention_days)

    def submit(self, route: str, body: Any, key_id: str, options: SubmitOptions) -> Submitted:
        """`Submitter.submit`, its refusals named by the OpenAI parameters."""
        try:
            return self.submitter.submit(route, body, key_id, options)
        except ValidationFailed as exc:
            raise in_openai_terms(exc) from None

    # ---- polls ----------------------------------------------------------------------
    def poll_id(self, path: str, query_string: bytes) -> str | None:
        match = VIDEO_PATH.match(path)
        if match is None or match.group(1) in NOT_IDS:
            return None
        return unquote(match.group(1))

    def render_poll(
        self, job: JobStatus, storage: BlobStorage, base_url: str, ttl: int
    ) -> Rendered:
        return 200, self.video(job), poll_headers(job)

    # ---- routes and document --------------------------------------------------------
    def router(self) -> APIRouter:
        from kinema.dialects.openai_routes import router

        return router(self)

    def document(self, schema: dict[str, Any]) -> None:
        from kinema.dialects.openai_docs import document

        document(schema, self)
