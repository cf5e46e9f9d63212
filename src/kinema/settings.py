"""The one settings object.

Built once at the entry point (`kinema serve`, `kinema worker`, tests) and passed down;
nothing in the package reads `os.environ` at import time. Every field can be set with a
`KINEMA_<FIELD>` environment variable (e.g. `KINEMA_DATA_DIR`, `KINEMA_WORKERS`), or in a
TOML file named by `KINEMA_CONFIG` (top-level keys are the field names, e.g.
`workers = 2` or an `[engine_options.motion]` table). The environment overrides the file;
tables such as `engine_options` are merged key by key.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KINEMA_", extra="ignore")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Read when the entry point builds Settings, never at import time.
        config = os.environ.get("KINEMA_CONFIG")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if config:
            path = Path(config)
            if not path.is_file():
                raise ValueError(f"KINEMA_CONFIG names {config}, which is not a file")
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    # -- where things live -------------------------------------------------------------
    data_dir: Path = Field(
        default=Path(".kinema"),
        description="Root for the embedded defaults: SQLite database and output files.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the job store; default sqlite:///<data_dir>/kinema.db.",
    )
    storage_url: str | None = Field(
        default=None,
        description="Where outputs go; default file://<data_dir>/outputs.",
    )
    s3_endpoint_url: str | None = Field(
        default=None, description="S3 API endpoint (MinIO, moto, R2...); default: AWS."
    )
    s3_public_endpoint_url: str | None = Field(
        default=None,
        description="Endpoint used in presigned download URLs, when clients reach the store "
        "by another address than the workers do.",
    )
    s3_region: str = Field(default="us-east-1", description="S3 region.")
    s3_access_key_id: str | None = Field(
        default=None, description="S3 credentials; default: boto3's usual chain."
    )
    s3_secret_access_key: str | None = Field(default=None, description="S3 secret key.")
    s3_create_bucket: bool = Field(
        default=False,
        description="Create the bucket on the first upload if it is missing (local S3 servers).",
    )
    s3_multipart_threshold_mb: int = Field(
        default=8, description="Uploads above this size go multipart."
    )
    s3_multipart_chunksize_mb: int | None = Field(
        default=None, description="Multipart part size (default: the threshold; >= 5)."
    )
    public_url: str | None = Field(
        default=None,
        description="Base URL used in download links (default: the URL the client called).",
    )
    secret_key: str | None = Field(
        default=None,
        description="HMAC key that signs download URLs; default: generated once and kept "
        "in <data_dir>/secret.key (every process sharing the data dir uses it).",
    )

    # -- HTTP server ---------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = 8000
    ssl_certfile: Path | None = Field(
        default=None,
        description="PEM certificate (chain) to serve HTTPS with; needs ssl_keyfile.",
    )
    ssl_keyfile: Path | None = Field(
        default=None, description="The unencrypted PEM private key of ssl_certfile."
    )
    max_body_bytes: int = Field(
        default=64 * 1024 * 1024, description="Largest accepted request body (413 above)."
    )
    url_ttl_seconds: int = Field(default=3600, description="Lifetime of signed video URLs.")
    api_key: str | None = Field(
        default=None,
        description="A key registered at start-up (unlimited credits) for scripts and tests.",
    )
    max_pending_per_key: int = Field(
        default=200, description="Queued+generating jobs one key may have (429 above)."
    )
    auth_cache_seconds: float = Field(
        default=2.0, description="How long a verified key is cached in the API process."
    )

    # -- workers -------------------------------------------------------------------------
    workers: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        description="Worker processes started by `kinema serve` (0 = API only).",
    )
    engines: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["motion", "talking_head", "speaking", "morph", "dubbing"],
        description="Engines this deployment runs (comma-separated in the environment).",
    )
    engine_options: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Per-engine options, e.g. "
        '{"motion": {"fps": 30}, "wan": {"model_dir": "/models/wan"}} (JSON in the '
        "environment, `[engine_options.NAME]` tables in the KINEMA_CONFIG file). Secrets "
        'are given as "<option>_env": "VARIABLE" so they never sit in the file.',
    )
    lease_seconds: float = Field(
        default=30.0, description="A claimed job's lease; the worker heartbeat extends it."
    )
    max_attempts: int = Field(
        default=3, description="Runs a job gets when its worker dies before it is failed."
    )
    poll_interval: float = Field(default=0.2, description="Idle worker's queue poll period.")
    job_wakeup: bool = Field(
        default=True,
        description="Wake idle workers the moment a job is queued: LISTEN/NOTIFY on "
        "PostgreSQL, a Unix datagram socket per worker beside the SQLite database file "
        "(otherwise they find it at their next poll).",
    )
    drain_seconds: float = Field(
        default=60.0, description="On SIGTERM a worker finishes its job for up to this long."
    )

    # -- the job lifecycle ----------------------------------------------------------------
    start_timeout_seconds: float | None = Field(
        default=None,
        description="Default X-Kinema-Start-Timeout: a job not started this long after "
        "submit fails with Expired (not charged). None: wait for ever.",
    )
    run_timeout_seconds: float | None = Field(
        default=None,
        description="Default X-Kinema-Run-Timeout: a job running longer is stopped "
        "(TimedOut). None: no limit.",
    )
    retention_days: float | None = Field(
        default=None,
        description="Delete generations (row, inline inputs, video) this many days after "
        "they finished. None: keep them.",
    )
    webhook_retry_seconds: list[float] = Field(
        default_factory=lambda: [5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0],
        description="Delays between webhook delivery attempts (JSON list); after the last "
        "one fails the delivery is given up.",
    )
    webhook_timeout_seconds: float = Field(
        default=10.0, description="One webhook attempt's whole POST (connect to response)."
    )
    webhook_dispatch: bool = Field(
        default=True,
        description="Send due webhook deliveries from this process (API processes and "
        "workers; each attempt is claimed by exactly one of them).",
    )
    webhook_poll_seconds: float = Field(
        default=1.0, description="How often an idle dispatcher looks for due deliveries."
    )
    webhook_concurrency: int = Field(
        default=8, description="Webhook deliveries one process sends at once."
    )
    max_streams_per_key: int = Field(
        default=20, description="Open event streams one key may hold (429 above)."
    )

    # -- inputs --------------------------------------------------------------------------
    allow_private_urls: bool = Field(
        default=False,
        description="Let media URLs reach loopback/private addresses (development, tests).",
    )
    url_allowlist: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Hosts or CIDRs media URLs may reach even though they are private "
        "(comma-separated), e.g. an internal media server.",
    )
    max_input_bytes: int = Field(default=20 * 1024 * 1024, description="Per media input.")
    max_image_pixels: int = Field(default=50_000_000, description="Decompression-bomb cap.")
    fetch_timeout_seconds: float = Field(default=30.0, description="Whole fetch of one input.")

    # -- upstream providers --------------------------------------------------------------
    upstreams: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Named upstream provider instances, e.g. "
        '{"aiml": {"kind": "aimlapi", "base_url": "https://api.aimlapi.com", '
        '"api_key_env": "AIMLAPI_KEY"}} (JSON in the environment, `[upstreams.NAME]` '
        "tables in the KINEMA_CONFIG file). See the README's Providers section.",
    )
    routes: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Per model, the ordered backends (local engine or upstream names) that "
        'may render it, e.g. {"video-01": ["aiml"]}; the first that serves the request\'s '
        "capability takes it. A model with no route uses the local engines.",
    )

    # -- the OpenAI Videos dialect (/v1/videos) -------------------------------------------
    openai_model_aliases: dict[str, str] = Field(
        default_factory=lambda: {
            "sora-2": "google/veo-3.1-lite-generate-001",
            "sora-2-pro": "google/veo-3.1-lite-generate-001",
        },
        description="Model names /v1/videos accepts besides Kinema's model ids, each mapped "
        'to one, e.g. {"sora-2": "google/veo-3.1-lite-generate-001"} (JSON in the '
        "environment; replaces the default, which maps sora-2 and sora-2-pro, what OpenAI "
        "clients send by default, to veo-3.1-lite).",
    )

    # -- billing -------------------------------------------------------------------------
    prices: dict[str, int] = Field(
        default_factory=dict,
        description="Overrides of the per-second credit prices, e.g. "
        '{"video-01": 70000, "veed/fabric-1.0@720p": 300000} (JSON in the environment).',
    )

    @field_validator("engines", "url_allowlist", mode="before")
    @classmethod
    def _split_engines(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    # -- derived -------------------------------------------------------------------------
    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            url = self.database_url
            # Accept the libpq spelling; SQLAlchemy needs the driver named.
            if url.startswith("postgresql://") or url.startswith("postgres://"):
                url = "postgresql+psycopg://" + url.split("://", 1)[1]
            return url
        return f"sqlite:///{(self.data_dir / 'kinema.db').resolve()}"

    @property
    def resolved_storage_url(self) -> str:
        return self.storage_url or f"file://{(self.data_dir / 'outputs').resolve()}"

    def child_environment(self) -> dict[str, str]:
        """Environment for a child process so it rebuilds exactly these settings."""
        env: dict[str, str] = {}
        for name, value in self.model_dump(mode="json").items():
            if value is None:
                continue
            key = f"KINEMA_{name.upper()}"
            comma_separated = any(
                isinstance(m, NoDecode) or m is NoDecode
                for m in type(self).model_fields[name].metadata
            )
            if isinstance(value, list) and comma_separated:
                env[key] = ",".join(str(v) for v in value)
            elif isinstance(value, list | dict):
                env[key] = json.dumps(value)
            elif isinstance(value, bool):
                env[key] = "1" if value else "0"
            else:
                env[key] = str(value)
        return env
