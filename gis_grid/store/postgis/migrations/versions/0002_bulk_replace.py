"""Whole-table replaces without per-row index upkeep.

Revision ID: 0002_bulk_replace
Revises: 0001_initial
Create Date: 2026-11-27

Loading 610k residents row by row into three B-tree indexes costs ~3x the load
itself. ``gis_grid_begin_replace(table)`` empties a table with TRUNCATE and drops
its secondary (non-unique) indexes; ``gis_grid_end_replace()`` rebuilds them in one
pass each and ANALYZEs the replaced tables. Both run as the owner (SECURITY DEFINER: the app role may neither
truncate nor drop indexes) and only for a transaction in the system scope ('*'),
since TRUNCATE does not go through row-level security. Everything stays inside the
caller's transaction, so a failed replace leaves the old rows and indexes.
"""
from alembic import op

revision = "0002_bulk_replace"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

OWNER, APP = "gis_grid_owner", "gis_grid_app"

FUNCTIONS = """
CREATE FUNCTION gis_grid_begin_replace(tbl text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE idx record;
BEGIN
  IF current_setting('gis_grid.scope', true) IS DISTINCT FROM '*' THEN
    RAISE EXCEPTION 'replacing a whole table needs the system scope' USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF tbl NOT IN ('divisions', 'buildings', 'households', 'residents', 'workers', 'incidents') THEN
    RAISE EXCEPTION 'not a replaceable table: %', tbl USING ERRCODE = 'invalid_parameter_value';
  END IF;
  CREATE TEMP TABLE IF NOT EXISTS gis_grid_dropped_indexes (def text) ON COMMIT DROP;
  CREATE TEMP TABLE IF NOT EXISTS gis_grid_replaced (tbl text) ON COMMIT DROP;
  INSERT INTO gis_grid_replaced VALUES (tbl);
  FOR idx IN SELECT i.indexrelid::regclass AS name, pg_get_indexdef(i.indexrelid) AS def
             FROM pg_index i WHERE i.indrelid = tbl::regclass AND NOT i.indisunique LOOP
    INSERT INTO gis_grid_dropped_indexes VALUES (idx.def);
    EXECUTE format('DROP INDEX %s', idx.name);
  END LOOP;
  EXECUTE format('TRUNCATE %I', tbl);
END $$;

CREATE FUNCTION gis_grid_end_replace() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE d text;
BEGIN
  IF to_regclass('pg_temp.gis_grid_dropped_indexes') IS NULL THEN
    RETURN;
  END IF;
  FOR d IN SELECT def FROM gis_grid_dropped_indexes LOOP
    EXECUTE d;
  END LOOP;
  -- fresh planner statistics for the new content (ANALYZE counts this transaction's rows)
  FOR d IN SELECT DISTINCT tbl FROM gis_grid_replaced LOOP
    EXECUTE format('ANALYZE %I', d);
  END LOOP;
  DELETE FROM gis_grid_dropped_indexes;
  DELETE FROM gis_grid_replaced;
END $$;

REVOKE ALL ON FUNCTION gis_grid_begin_replace(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION gis_grid_end_replace() FROM PUBLIC;
"""


def upgrade() -> None:
    op.execute(f"SET LOCAL ROLE {OWNER}")
    op.execute(FUNCTIONS)
    op.execute(f"GRANT EXECUTE ON FUNCTION gis_grid_begin_replace(text), gis_grid_end_replace() TO {APP}")
    op.execute("RESET ROLE")


def downgrade() -> None:
    op.execute(f"SET LOCAL ROLE {OWNER}")
    op.execute("DROP FUNCTION gis_grid_begin_replace(text)")
    op.execute("DROP FUNCTION gis_grid_end_replace()")
    op.execute("RESET ROLE")
