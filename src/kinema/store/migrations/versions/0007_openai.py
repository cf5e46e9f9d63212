"""The OpenAI Videos dialect: `jobs.extras`, what a dialect records about a generation
beyond its model's parameters (the size and seconds asked for, the model alias, the video
it remixes or extends; see kinema.dialects.openai).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as jobs:
        jobs.add_column(sa.Column("extras", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as jobs:
        jobs.drop_column("extras")
