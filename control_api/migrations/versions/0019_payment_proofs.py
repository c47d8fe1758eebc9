"""payment proofs stored as files: the payment names its file, hash, media type, size and upload time

Revision ID: 0019
Revises: 0016
Create Date: 2026-12-11

Payments gain proof_path (the file's name in PROOF_STORAGE_DIR, a random id), proof_sha256 (indexed: the same
receipt on another payment is found), proof_mime (one of the four kinds stored), proof_size and
proof_uploaded_at. The file itself lives outside the database. Downgrading drops the columns (the files stay in
the directory; delete it by hand if wanted).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0016"
branch_labels = None
depends_on = None

MIME_TYPES = "('image/jpeg', 'image/png', 'image/webp', 'application/pdf')"


def upgrade() -> None:
    with op.batch_alter_table("payments") as batch:
        batch.add_column(sa.Column("proof_path", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("proof_sha256", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("proof_mime", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("proof_size", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("proof_uploaded_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_check_constraint(
            op.f("ck_payments_proof_complete"),
            "proof_path IS NULL OR (proof_sha256 IS NOT NULL AND proof_mime IS NOT NULL AND proof_size > 0)",
        )
        batch.create_check_constraint(
            op.f("ck_payments_proof_uploaded_when"), "(proof_sha256 IS NULL) = (proof_uploaded_at IS NULL)"
        )
        batch.create_check_constraint(
            op.f("ck_payments_proof_mime"), f"proof_mime IS NULL OR proof_mime IN {MIME_TYPES}"
        )
        batch.create_index(op.f("ix_payments_proof_sha256"), ["proof_sha256"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("payments") as batch:
        batch.drop_index(op.f("ix_payments_proof_sha256"))
        batch.drop_constraint(op.f("ck_payments_proof_mime"), type_="check")
        batch.drop_constraint(op.f("ck_payments_proof_uploaded_when"), type_="check")
        batch.drop_constraint(op.f("ck_payments_proof_complete"), type_="check")
        batch.drop_column("proof_uploaded_at")
        batch.drop_column("proof_size")
        batch.drop_column("proof_mime")
        batch.drop_column("proof_sha256")
        batch.drop_column("proof_path")
