"""Least privilege: the application role writes keys, history and the audit log only through functions.

Revision ID: 0004_least_privilege
Revises: 0002_bulk_replace
Create Date: 2026-12-07

Holding ``gis_grid_app`` used to be enough to insert an API key, widen one, forge audit
records, and delete ``divisions`` history or ``grid_changes``. Those direct writes are
revoked; SECURITY DEFINER functions owned by ``gis_grid_owner`` (fixed ``search_path``) do
what the store does, and no more:

- ``gis_grid_issue_key``: inserts a key, only if this same transaction appended its
  ``key.create`` audit record (so a key cannot be minted without a chain record, and
  without the audit key that record fails ``gis-grid audit verify``);
- ``gis_grid_revoke_key``: sets ``revoked`` once (the only change a key ever gets);
- ``gis_grid_append_audit``: appends at the chain's head only (seq and prev_hash must
  link) and moves ``meta.audit_head``, which the app can no longer write itself;
- ``gis_grid_close_grids`` and ``gis_grid_record_apply``: a plan's writes to history:
  close the current versions of the replaced grids (before the new versions are COPYed in;
  a redrawn grid may keep its code), then retire codes, log the change and mark the plan
  applied; only in the system scope, and the second only on the current atlas version.

The app keeps INSERT on ``divisions`` (whole-table loads and a plan's new grids are COPYed).
CONNECT on the database is revoked from PUBLIC, so other roles of the cluster can neither
read the catalogue nor NOTIFY the replicas; the store's database copies (CREATE DATABASE
... TEMPLATE does not copy database privileges) get the same in database.create().

It follows 0003_reported_grid (issue #12).
"""
from alembic import op

revision = "0004_least_privilege"
down_revision = "0003_reported_grid"
branch_labels = None
depends_on = None

OWNER, APP = "gis_grid_owner", "gis_grid_app"

FUNCTIONS = """
CREATE FUNCTION gis_grid_append_audit(
  p_seq bigint, p_at text, p_key_id text, p_role text, p_scope text, p_action text, p_resource text,
  p_fields text, p_masked boolean, p_purpose text, p_request_id text, p_result text,
  p_prev_hash text, p_hash text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE head record;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('gis_grid.audit_log'));
  SELECT seq, hash INTO head FROM audit_log ORDER BY seq DESC LIMIT 1;
  IF p_seq IS DISTINCT FROM coalesce(head.seq, 0) + 1
     OR p_prev_hash IS DISTINCT FROM coalesce(head.hash, repeat('0', 64)) THEN
    RAISE EXCEPTION 'an audit record must extend the chain at its head' USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  IF p_hash IS NULL OR p_hash !~ '^(hmac:)?[0-9a-f]{64}$' OR p_action IS NULL OR p_at IS NULL THEN
    RAISE EXCEPTION 'an audit record needs its time, action and hash' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  INSERT INTO audit_log (seq, at, key_id, role, scope, action, resource, fields, masked, purpose, request_id,
                         result, prev_hash, hash)
  VALUES (p_seq, p_at, p_key_id, p_role, p_scope, p_action, p_resource, p_fields, p_masked, p_purpose,
          p_request_id, p_result, p_prev_hash, p_hash);
  INSERT INTO meta VALUES ('audit_head', p_seq || ':' || p_hash)
  ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value;
END $$;

CREATE FUNCTION gis_grid_issue_key(p_id text, p_role text, p_scope text, p_digest text, p_created text,
                                   p_expires text, p_note text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  -- xmin of a row this transaction inserted is its own xid (no subtransactions here)
  IF NOT EXISTS (SELECT 1 FROM audit_log WHERE action = 'key.create' AND resource = 'key/' || p_id
                 AND xmin::text::bigint = pg_current_xact_id()::text::bigint % 4294967296) THEN
    RAISE EXCEPTION 'a key is issued only with its audit record, in the same transaction'
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF p_expires::timestamptz <= p_created::timestamptz OR p_created::timestamptz > now() + interval '5 minutes' THEN
    RAISE EXCEPTION 'a key needs a lifetime after its creation' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  INSERT INTO api_keys (id, role, scope, digest, created, expires, revoked, note)
  VALUES (p_id, p_role, p_scope, p_digest, p_created, p_expires, NULL, p_note);
END $$;

CREATE FUNCTION gis_grid_revoke_key(p_id text, p_when text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  UPDATE api_keys SET revoked = p_when WHERE id = p_id AND revoked IS NULL;
  RETURN EXISTS (SELECT 1 FROM api_keys WHERE id = p_id);
END $$;

CREATE FUNCTION gis_grid_close_grids(p_close text[], p_stamp text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  IF current_setting('gis_grid.scope', true) IS DISTINCT FROM '*' THEN
    RAISE EXCEPTION 'applying a plan needs the system scope' USING ERRCODE = 'insufficient_privilege';
  END IF;
  -- only current versions: a closed version stays as it was
  UPDATE divisions SET valid_to = p_stamp
  WHERE level = 'grid' AND code = ANY(p_close) AND valid_to IS NULL;
END $$;

CREATE FUNCTION gis_grid_record_apply(p_stamp text, p_plan_id bigint, p_from_version integer,
                                      p_scope text, p_summary json, p_retired text[]) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE current integer;
BEGIN
  IF current_setting('gis_grid.scope', true) IS DISTINCT FROM '*' THEN
    RAISE EXCEPTION 'applying a plan needs the system scope' USING ERRCODE = 'insufficient_privilege';
  END IF;
  -- the caller holds this row's lock (SELECT ... FOR UPDATE); taking it here too keeps
  -- a direct call from racing an apply
  SELECT value::integer INTO current FROM meta WHERE key = 'atlas_version' FOR UPDATE;
  IF current IS DISTINCT FROM p_from_version THEN
    RAISE EXCEPTION 'the atlas is at version %, not %', current, p_from_version
      USING ERRCODE = 'serialization_failure';
  END IF;
  INSERT INTO grid_code_registry SELECT c, 'retired', p_stamp, p_plan_id FROM unnest(p_retired) AS c
  ON CONFLICT (code) DO UPDATE SET status = EXCLUDED.status, changed_at = EXCLUDED.changed_at,
                                   plan_id = EXCLUDED.plan_id;
  INSERT INTO grid_changes (plan_id, applied_at, from_version, to_version, scope, summary)
  VALUES (p_plan_id, p_stamp, current, current + 1, p_scope, p_summary);
  IF p_plan_id IS NOT NULL THEN
    UPDATE plans SET status = 'applied', applied_at = p_stamp, applied_version = current + 1 WHERE id = p_plan_id;
  END IF;
  RETURN current + 1;
END $$;

-- the chain head in meta is written by gis_grid_append_audit only
CREATE FUNCTION gis_grid_guard_meta() RETURNS trigger
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
BEGIN
  IF ((TG_OP <> 'INSERT' AND OLD.key = 'audit_head') OR (TG_OP <> 'DELETE' AND NEW.key = 'audit_head'))
     AND current_user <> 'gis_grid_owner'
     AND NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
    RAISE EXCEPTION 'meta.audit_head is written with the audit log only' USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END $$;
CREATE TRIGGER guard_audit_head BEFORE INSERT OR UPDATE OR DELETE ON meta
FOR EACH ROW EXECUTE FUNCTION gis_grid_guard_meta();

REVOKE ALL ON FUNCTION gis_grid_append_audit(bigint, text, text, text, text, text, text, text, boolean, text, text,
                                             text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION gis_grid_issue_key(text, text, text, text, text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION gis_grid_revoke_key(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION gis_grid_close_grids(text[], text) FROM PUBLIC;
REVOKE ALL ON FUNCTION gis_grid_record_apply(text, bigint, integer, text, json, text[]) FROM PUBLIC;
"""

GRANT_FUNCTIONS = (f"GRANT EXECUTE ON FUNCTION gis_grid_append_audit(bigint, text, text, text, text, text, text, text, "
                   f"boolean, text, text, text, text, text), gis_grid_issue_key(text, text, text, text, text, text, text), "
                   f"gis_grid_revoke_key(text, text), gis_grid_close_grids(text[], text), gis_grid_record_apply(text, bigint, integer, text, json, text[]) "
                   f"TO {APP}")

#: what the app may no longer do directly
REVOKES = {"api_keys": "INSERT, UPDATE, DELETE", "audit_log": "INSERT", "grid_changes": "INSERT, UPDATE, DELETE",
           "grid_code_registry": "INSERT, UPDATE, DELETE", "divisions": "UPDATE, DELETE"}

CONNECT = f"""
DO $$ BEGIN
  EXECUTE format('REVOKE CONNECT ON DATABASE %I FROM PUBLIC', current_database());
  EXECUTE format('GRANT CONNECT ON DATABASE %I TO {OWNER}, {APP}', current_database());
END $$"""


def upgrade() -> None:
    op.execute(f"SET LOCAL ROLE {OWNER}")
    op.execute(FUNCTIONS)
    op.execute(GRANT_FUNCTIONS)
    for table, privileges in REVOKES.items():
        op.execute(f"REVOKE {privileges} ON {table} FROM {APP}")
    op.execute("RESET ROLE")
    op.execute(CONNECT)  # database privileges belong to its owner (or a superuser), not gis_grid_owner


def downgrade() -> None:
    op.execute(f"""
DO $$ BEGIN
  EXECUTE format('GRANT CONNECT ON DATABASE %I TO PUBLIC', current_database());
END $$""")
    op.execute(f"SET LOCAL ROLE {OWNER}")
    for table, privileges in REVOKES.items():
        op.execute(f"GRANT {privileges} ON {table} TO {APP}")
    op.execute("DROP TRIGGER guard_audit_head ON meta")
    for fn in ("gis_grid_guard_meta()", "gis_grid_close_grids(text[], text)", "gis_grid_record_apply(text, bigint, integer, text, json, text[])",
               "gis_grid_revoke_key(text, text)", "gis_grid_issue_key(text, text, text, text, text, text, text)",
               "gis_grid_append_audit(bigint, text, text, text, text, text, text, text, boolean, text, text, text, "
               "text, text)"):
        op.execute(f"DROP FUNCTION {fn}")
    op.execute("RESET ROLE")
