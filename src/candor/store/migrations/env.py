"""Alembic environment: runs on the connection the store hands over, never on a URL.

The store configures Alembic in code (no alembic.ini), so nothing depends on the
current directory; see candor.store.database.upgrade_to_head.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from candor.store.models import Base

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError(
        "Candor's migrations run through candor.store (Workspace.create or open), "
        "not through the alembic command line"
    )
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite alters tables by copying them; batch mode does that for later revisions.
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()
