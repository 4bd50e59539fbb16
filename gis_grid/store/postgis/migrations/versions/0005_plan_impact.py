"""An applied plan keeps its impact: ``plans.impact``.

Revision ID: 0005_plan_impact
Revises: 0004_least_privilege
Create Date: 2026-12-07

After an apply the grids, workers and cases have moved, so the impact cannot be
recomputed from the store; the apply writes it here in its own transaction.
Plans applied earlier have none (their impact answers 409).
"""
from alembic import op

revision = "0005_plan_impact"
down_revision = "0004_least_privilege"
branch_labels = None
depends_on = None

OWNER = "gis_grid_owner"


def upgrade() -> None:
    op.execute(f"SET LOCAL ROLE {OWNER}")
    op.execute("ALTER TABLE plans ADD COLUMN impact json")
    op.execute("RESET ROLE")


def downgrade() -> None:
    op.execute(f"SET LOCAL ROLE {OWNER}")
    op.execute("ALTER TABLE plans DROP COLUMN impact")
    op.execute("RESET ROLE")
