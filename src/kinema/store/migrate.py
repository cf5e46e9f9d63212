"""Run the Alembic migrations shipped inside the package, safely from many processes:
`kinema serve` and every `kinema worker` call this at start-up."""

from __future__ import annotations

import fcntl
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text

MIGRATIONS = Path(__file__).parent / "migrations"
PG_LOCK_ID = 0x4B494E454D41  # "KINEMA": one advisory lock for schema changes


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def migrate(engine: Engine) -> None:
    """Upgrade the database to the newest schema (idempotent)."""
    config = alembic_config()
    if engine.dialect.name == "sqlite":
        database = engine.url.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
            lock_path = Path(database + ".migrate.lock")
            with open(lock_path, "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                _upgrade(engine, config)
            return
        _upgrade(engine, config)
        return
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": PG_LOCK_ID})
        conn.commit()
        try:
            _upgrade(engine, config)
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": PG_LOCK_ID})
            conn.commit()


def _upgrade(engine: Engine, config: Config) -> None:
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
