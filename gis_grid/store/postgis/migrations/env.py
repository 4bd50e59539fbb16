"""Alembic environment: run on the connection that ``gis_grid.store.postgis.migrate`` hands over.

There is no alembic.ini: the configuration (script location, connection) is
built in code, so ``gis-grid db upgrade`` and ``open_store(url, create=True)``
work from an installed package.
"""
from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, transaction_per_migration=False)
with context.begin_transaction():
    context.run_migrations()
