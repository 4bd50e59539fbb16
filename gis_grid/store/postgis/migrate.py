"""Alembic, driven from code: no alembic.ini, the scripts ship inside the package."""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

from ...errors import StoreError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _config(connection=None):
    from alembic.config import Config
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


@lru_cache(maxsize=1)
def head() -> str:
    """The newest migration's revision id."""
    from alembic.script import ScriptDirectory
    heads = ScriptDirectory.from_config(_config()).get_heads()
    if len(heads) != 1:  # a branch would make "the schema" ambiguous
        raise StoreError(f"the migrations have {len(heads)} heads {heads}; merge them")
    return heads[0]


@lru_cache(maxsize=1)
def fingerprint() -> str:
    """Head plus a digest of every migration file: a template database built from other
    migration text (an edited revision during development) is never reused."""
    digest = hashlib.sha256()
    for path in sorted((MIGRATIONS / "versions").glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return f"{head()}_{digest.hexdigest()[:8]}"


def sqlalchemy_url(conninfo: str) -> str:
    return "postgresql+psycopg://" + conninfo.split("://", 1)[1]


def upgrade(conninfo: str, revision: str = "head") -> None:
    """Migrate the database at ``conninfo`` (a postgresql:// URL) to ``revision``, in one transaction."""
    import sqlalchemy as sa
    from alembic import command
    from sqlalchemy.pool import NullPool

    engine = sa.create_engine(sqlalchemy_url(conninfo), poolclass=NullPool)
    try:
        with engine.begin() as conn:
            command.upgrade(_config(conn), revision)
    finally:
        engine.dispose()
