"""Cases keep the grid they were reported in: ``incidents.reported_grid_code``.

Revision ID: 0003_reported_grid
Revises: 0002_bulk_replace
Create Date: 2026-11-28

A boundary apply re-homes each case (``grid_code`` becomes the grid its point lies in
after the redraw); the grid it was logged in stays in this column. Existing cases have
not been re-homed yet, so it starts as a copy of ``grid_code``.
"""
from alembic import op

revision = "0003_reported_grid"
down_revision = "0002_bulk_replace"
branch_labels = None
depends_on = None

OWNER = "gis_grid_owner"


def upgrade() -> None:
    op.execute(f"SET LOCAL ROLE {OWNER}")
    op.execute("ALTER TABLE incidents ADD COLUMN reported_grid_code text")
    # incidents has forced row-level security: the copy must see every row
    op.execute("SELECT set_config('gis_grid.scope', '*', true)")
    op.execute("UPDATE incidents SET reported_grid_code = grid_code")
    op.execute("RESET ROLE")


def downgrade() -> None:
    op.execute(f"SET LOCAL ROLE {OWNER}")
    op.execute("ALTER TABLE incidents DROP COLUMN reported_grid_code")
    op.execute("RESET ROLE")
